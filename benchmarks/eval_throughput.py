"""Items per second of ``medmo eval`` on a VQA-RAD-shaped run: one at a time vs concurrent.

    python benchmarks/eval_throughput.py --shape 8b --items 256 --workers 1 --workers 32
    python benchmarks/eval_throughput.py --shape tiny --items 8    # CPU, the tiny checkpoint

Writes a VQA-RAD-shaped benchmark copy (random 512x512 images; half yes/no, half open
questions, in the hub's parquet layout) and runs it through ``run_eval`` (the same loader,
prompts, runner and files as ``medmo eval``) with ``--workers`` items in flight, on a
random-weight model of MedMO's shape (GPU, bf16, the continuous engine) or the tiny test
checkpoint (CPU). Random weights rarely stop early, so every item decodes
``--max-new-tokens`` tokens. Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine_info

_QUESTIONS = [
    ("Is there a pneumothorax?", "yes"),
    ("Is the heart enlarged?", "no"),
    ("Which organ is abnormal?", "left lung"),
    ("What modality is this?", "x-ray"),
]


def write_vqa_rad_like(root: Path, items: int, size: int = 512) -> Path:
    """A ``vqa_rad`` copy of ``items`` rows with random grey images, in the hub layout."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rows: dict[str, list[Any]] = {"image": [], "question": [], "answer": []}
    for i in range(items):
        pixels = (rng.random((size, size)) * 255).astype("uint8")
        question, answer = _QUESTIONS[i % len(_QUESTIONS)]
        rows["image"].append(Image.fromarray(pixels).convert("RGB"))
        rows["question"].append(f"{question} ({i})")
        rows["answer"].append(answer)
    features = datasets.Features(
        image=datasets.Image(), question=datasets.Value("string"), answer=datasets.Value("string")
    )
    path = root / "vqa_rad" / "data" / "test-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return root


def build_backend(shape: str, tmp: Path, max_batch: int) -> tuple[Any, Any]:
    """The backend and settings: a random model of ``shape`` on the GPU, or the tiny one."""
    from medmo_agent.config import Settings
    from medmo_agent.testing.tiny import build_tiny_checkpoint

    tiny = build_tiny_checkpoint(tmp / "tiny")
    if shape == "tiny":
        from medmo_agent.backends.transformers import TransformersBackend

        settings = Settings(
            model=str(tiny), backend="transformers", device="cpu", dtype="float32",
            max_batch_size=max_batch,
        )  # fmt: skip
        return TransformersBackend.from_settings(settings), settings
    from _shapes import build_random_model
    from transformers import AutoProcessor

    from medmo_agent.backends.transformers import TransformersBackend

    processor = AutoProcessor.from_pretrained(tiny)
    model = build_random_model(shape, processor)
    settings = Settings(
        device="cuda", engine="continuous", max_batch_size=max_batch, max_pixels=1024 * 1024
    )
    backend = TransformersBackend.from_loaded(
        model, processor, settings=settings, model_id=f"random-{shape}"
    )
    return backend, settings


def measure(backend: Any, settings: Any, data: Path, out: Path, workers: int, args: Any) -> dict:
    """One ``run_eval`` over the whole copy with ``workers`` items in flight."""
    from medmo_agent.evaluation.runner import run_eval

    t0 = time.perf_counter()
    result = run_eval(
        "vqa_rad",
        out,
        data_dir=data,
        backend=backend,
        settings=settings,
        workers=workers,
        max_new_tokens=args.max_new_tokens,
    )
    seconds = time.perf_counter() - t0
    records = result.records["vqa_rad"]["direct"]
    return {
        "workers": workers,
        "items": len(records),
        "failed": len(result.failed),
        "seconds": round(seconds, 3),
        "items_per_s": round(len(records) / seconds, 3),
        "mean_item_s": round(sum(r.seconds for r in records) / max(1, len(records)), 3),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "datasets"):
        out[name] = version(name)
    try:
        import torch

        if torch.cuda.is_available():
            out["card"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="8b", choices=["8b", "4b", "tiny"])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--workers", type=int, action="append", help="repeatable (1 and 32)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path, default=Path("eval_throughput.json"))
    args = parser.parse_args(argv)
    workers = args.workers or [1, 32]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = write_vqa_rad_like(tmp / "data", args.items)
        backend, settings = build_backend(args.shape, tmp, max(workers))
        try:
            # warm up (CUDA graphs, kernels, caches) outside the timed runs
            measure(backend, settings, data, tmp / "warm", max(workers), args)
            runs = [measure(backend, settings, data, tmp / f"run-{w}", w, args) for w in workers]
        finally:
            backend.close()
    report = {
        "benchmark": "eval_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "versions": versions(),
        "shape": args.shape,
        "items": args.items,
        "max_new_tokens": args.max_new_tokens,
        "runs": runs,
        "speedup": round(runs[-1]["items_per_s"] / runs[0]["items_per_s"], 2),
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"eval throughput, {args.shape} shape, {args.items} VQA-RAD-shaped items, "
          f"{args.max_new_tokens} new tokens each")  # fmt: skip
    for r in runs:
        print(
            f"  workers {r['workers']:>3}: {r['items_per_s']:8.2f} items/s "
            f"({r['seconds']:.1f} s, {r['failed']} failed)"
        )
    print(f"  speedup {report['speedup']}x; figures in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
