"""Where time to first token goes: one 1024x1024 image and a question, prefilled by a
random-weight model of MedMO's shape on the GPU.

Times, each the median of several runs: the processor (CPU), moving its output to the GPU,
the vision encoder alone, one forward pass of the whole model over the prompt, and
``generate`` for one token (what the engine runs to prefill); the vision encoder's first and
second call on an image of a new size (768x768); then the heaviest operators
of that ``generate`` call by GPU and by CPU time (torch.profiler).

    python benchmarks/prefill_probe.py --shape 8b --json prefill.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shapes import build_random_model
from gpu_decode import _gen_config, build_inputs, versions


def _timed(fn, repeats: int = 5) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def probe(shape: str, tiny: Path, fused: bool) -> dict[str, Any]:
    """Milliseconds per stage, and the profiler's top operators."""
    import torch
    from transformers import AutoProcessor

    from medmo_agent.backends.engine.fused import install_fused_kernels
    from medmo_agent.backends.engine.step import DEFAULT_SDPA_BACKENDS, attention_policy

    processor = AutoProcessor.from_pretrained(tiny)
    model = build_random_model(shape, processor)
    if fused:
        install_fused_kernels(model)
    cpu_inputs = build_inputs(processor, seed=0)
    inputs = {k: v.to("cuda") for k, v in cpu_inputs.items()}

    def policy() -> Any:  # a fresh context manager each time (they are one-shot)
        return attention_policy(DEFAULT_SDPA_BACKENDS, torch.device("cuda"))

    gen = _gen_config(model)
    out: dict[str, Any] = {"shape": shape, "fused": fused}

    out["processor_ms"] = _timed(lambda: build_inputs(processor, seed=0), repeats=3)
    out["to_gpu_ms"] = _timed(lambda: {k: v.to("cuda") for k, v in cpu_inputs.items()})

    def vision() -> None:
        with torch.inference_mode(), policy():
            model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])

    def forward() -> None:
        from transformers import DynamicCache

        with torch.inference_mode(), policy():
            model(**inputs, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)

    def generate() -> None:
        with torch.inference_mode(), policy():
            model.generate(**inputs, max_new_tokens=1, generation_config=gen)

    out["vision_encoder_ms"] = _timed(vision)
    out["forward_ms"] = _timed(forward)
    out["generate_1_token_ms"] = _timed(generate)

    # An image of a size not seen before: kernels that plan per shape (cuDNN's attention)
    # pay once for it.
    other = {k: v.to("cuda") for k, v in build_inputs(processor, seed=1, side=768).items()}

    def vision_other() -> None:
        with torch.inference_mode(), policy():
            model.model.get_image_features(other["pixel_values"], other["image_grid_thw"])

    firsts = []
    for _ in range(2):
        torch.cuda.synchronize()
        t = time.perf_counter()
        vision_other()
        torch.cuda.synchronize()
        firsts.append((time.perf_counter() - t) * 1000)
    out["vision_new_size_first_ms"], out["vision_new_size_second_ms"] = firsts

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        generate()
        torch.cuda.synchronize()
    averages = prof.key_averages()
    out["top_cuda"] = averages.table(sort_by="cuda_time_total", row_limit=12)
    out["top_cpu"] = averages.table(sort_by="cpu_time_total", row_limit=12)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="8b", choices=["8b", "4b"])
    parser.add_argument("--json", type=Path, default=Path("prefill_probe.json"))
    args = parser.parse_args(argv)
    from medmo_agent.testing.tiny import build_tiny_checkpoint

    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "versions": versions()}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_checkpoint(Path(tmp) / "tiny")
        report["runs"] = []
        for fused in (False, True):
            report["runs"].append(probe(args.shape, tiny, fused))
            import torch

            torch.cuda.empty_cache()
    for run in report["runs"]:
        label = "fused" if run["fused"] else "stock"
        stages = {k: round(v, 1) for k, v in run.items() if k.endswith("_ms")}
        print(f"[{run['shape']} {label}] {stages}")
    print(report["runs"][0]["top_cuda"])
    print(report["runs"][0]["top_cpu"])
    args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
