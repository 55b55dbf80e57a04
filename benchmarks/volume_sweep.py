"""A whole CT study through the local engine: every slice one request, batched.

Writes a CT-sized synthetic volume (default 300 axial slices of 512x512, an ellipsoid
lesion inside) as NIfTI, then sweeps it with the ``ground_volume`` task through
``TransformersBackend`` on random weights in MedMO's 8B and/or 4B shape (short answers:
``--new-tokens``, 32 by default), and reports:

- slices per second and seconds for the whole study, slices in flight together;
- the same sweep one slice at a time (``volume_concurrency=1``) over the first
  ``--serial-slices`` slices, for comparison;
- prompt tokens per slice, peak memory (GPU, or resident memory on CPU), engine counters.

    python benchmarks/volume_sweep.py --shape 8b --shape 4b --json volume_sweep.json

On a machine without a GPU, ``--shape tiny`` runs the tiny test checkpoint on CPU (what
tests/test_benchmarks.py does with a few small slices). The tokenizer and processor come
from the tiny checkpoint, built on the fly, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine_info


def write_study(folder: Path, slices: int, side: int) -> Path:
    """A CT-sized NIfTI study (1 mm slices, 0.7 mm pixels) with one ellipsoid lesion."""
    from medmo_agent.testing.volumes import Phantom, write_nifti

    half = side * 0.7 / 2
    phantom = Phantom(
        shape=(slices, side, side),
        spacing=(0.7, 0.7, 1.0),
        origin=(-half, -half, 0.0),
        centre=(half / 3, -half / 4, slices * 0.5),
        radii=(max(2.0, side * 0.03), max(2.0, side * 0.03), max(1.5, slices * 0.02)),
    )
    return write_nifti(phantom, folder / "study.nii")


def load_backend(shape: str, tiny: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    """The backend and its settings: random weights of ``shape`` on the GPU, or the tiny
    checkpoint (``shape == "tiny"``) on the device asked for."""
    from medmo_agent.backends.transformers import TransformersBackend
    from medmo_agent.config import Settings

    common = dict(
        max_batch_size=args.batch_size,
        prefill_batch_size=args.prefill_batch,
        volume_concurrency=args.concurrency,
        volume_max_new_tokens=args.new_tokens,
        max_volume_slices=max(args.slices, 1),
    )
    if shape == "tiny":
        settings = Settings(model=str(tiny), device=args.device, dtype="float32", **common)
        return TransformersBackend.from_settings(settings), settings
    from _shapes import build_random_model
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    model = build_random_model(shape, processor)
    settings = Settings(device="cuda", engine="continuous", kernels=args.kernels, **common)
    backend = TransformersBackend.from_loaded(
        model, processor, settings=settings, model_id=f"random-{shape}"
    )
    return backend, settings


def _sweep(toolkit: Any, study: Path, slices: str, new_tokens: int) -> tuple[Any, float]:
    t = time.perf_counter()
    result = toolkit.ground_volume(
        str(study), slices=slices, window="400/50", max_new_tokens=new_tokens
    )
    return result, time.perf_counter() - t


def _peak_memory_gib(cuda: bool) -> float:
    if cuda:
        import torch

        return torch.cuda.max_memory_allocated() / 2**30
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bench_shape(shape: str, tiny: Path, study: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Figures for one shape: the batched sweep, then the one-at-a-time sweep."""
    import torch

    from medmo_agent.toolkit import Toolkit

    cuda = shape != "tiny" or args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    backend, settings = load_backend(shape, tiny, args)
    build_s = time.perf_counter() - t
    try:
        kit = Toolkit(backend, settings)
        # warm-up: a few slices (kernels compiled, decode graphs captured)
        _sweep(kit, study, f"0:{min(args.slices, args.warmup)}", args.new_tokens)
        before = dict(backend.stats)
        result, wall = _sweep(kit, study, "all", args.new_tokens)
        # counters as the sweep's share; high-water marks as they stand
        stats = {
            k: v if k.startswith(("largest", "max")) else v - before.get(k, 0)
            for k, v in backend.stats.items()
        }
        failed = [e.slice for e in result.per_slice if e.error is not None]
        n = len(result.slices)
        batched = {
            "slices": n,
            "seconds_per_study": wall,
            "slices_per_s": n / wall,
            "prompt_tokens_per_slice": result.usage.prompt_tokens / max(1, n),
            "completion_tokens_per_slice": result.usage.completion_tokens / max(1, n),
            "failed_slices": failed,
            "findings": len(result.findings),
            "engine_stats": stats,
        }
        serial_n = min(args.serial_slices, args.slices)
        one_kit = Toolkit(backend, settings.replace(volume_concurrency=1))
        one, one_wall = _sweep(one_kit, study, f"0:{serial_n}", args.new_tokens)
        serial = {
            "slices": len(one.slices),
            "seconds": one_wall,
            "slices_per_s": len(one.slices) / one_wall,
            "seconds_per_study_extrapolated": one_wall / len(one.slices) * n,
        }
    finally:
        backend.close()
    out = {
        "shape": shape,
        "build_s": build_s,
        "batched": batched,
        "one_at_a_time": serial,
        "speedup": batched["slices_per_s"] / serial["slices_per_s"],
        "peak_memory_gib": _peak_memory_gib(cuda),
        "peak_memory_kind": "cuda_allocated" if cuda else "process_rss",
    }
    if cuda:
        torch.cuda.empty_cache()
    return out


def versions() -> dict[str, Any]:
    import torch
    import transformers

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
        out["card"] = torch.cuda.get_device_name(0)
        out["card_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    else:
        out["card"] = "cpu"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", choices=["8b", "4b", "tiny"])
    parser.add_argument("--slices", type=int, default=300, help="slices in the study")
    parser.add_argument("--side", type=int, default=512, help="rows and columns of a slice")
    parser.add_argument("--new-tokens", type=int, default=32, help="answer length per slice")
    parser.add_argument("--batch-size", type=int, default=64, help="engine max_batch_size")
    parser.add_argument("--concurrency", type=int, default=128, help="volume_concurrency")
    parser.add_argument("--prefill-batch", type=int, default=8, help="engine prefill_batch_size")
    parser.add_argument("--serial-slices", type=int, default=40, help="one-at-a-time slices")
    parser.add_argument("--warmup", type=int, default=8, help="slices swept before timing")
    parser.add_argument("--device", default="cuda", help="device of the tiny shape")
    parser.add_argument("--no-kernels", dest="kernels", action="store_false")
    parser.add_argument("--json", type=Path, default=Path("volume_sweep.json"))
    args = parser.parse_args(argv)
    shapes = args.shape or ["8b"]

    from medmo_agent.testing.tiny import build_tiny_checkpoint

    report: dict[str, Any] = {
        "benchmark": "volume_sweep",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "versions": versions(),
        "study": {"slices": args.slices, "side": args.side, "new_tokens": args.new_tokens},
        "settings": {
            "max_batch_size": args.batch_size,
            "prefill_batch_size": args.prefill_batch,
            "volume_concurrency": args.concurrency,
        },
        "shapes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_checkpoint(Path(tmp) / "tiny")
        study = write_study(Path(tmp), args.slices, args.side)
        for shape in shapes:
            report["shapes"][shape] = bench_shape(shape, tiny, study, args)
            args.json.write_text(json.dumps(report, indent=2))
    print_table(report)
    args.json.write_text(json.dumps(report, indent=2))
    return 0


def print_table(report: dict[str, Any]) -> None:
    """The figures in a few lines (the JSON has everything)."""
    s = report["study"]
    print(
        f"\n{report['versions']['card']} | {s['slices']} slices of {s['side']}x{s['side']}, "
        f"{s['new_tokens']} new tokens each | {report['date']}"
    )
    for shape, r in report["shapes"].items():
        b, o = r["batched"], r["one_at_a_time"]
        print(
            f"[{shape}] batched: {b['slices_per_s']:.1f} slices/s, {b['seconds_per_study']:.2f} s "
            f"a study ({b['prompt_tokens_per_slice']:.0f} prompt tokens a slice, "
            f"{len(b['failed_slices'])} failed) | one at a time: {o['slices_per_s']:.2f} "
            f"slices/s ({o['seconds_per_study_extrapolated']:.1f} s a study) | "
            f"x{r['speedup']:.1f} | peak {r['peak_memory_gib']:.2f} GiB ({r['peak_memory_kind']})"
        )


if __name__ == "__main__":
    sys.exit(main())
