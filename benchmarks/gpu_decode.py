"""Decode performance of MedMO's shapes on the GPU, with random weights.

Builds a random-weight Qwen3-VL in MedMO-8B's (or 4B's) exact shape on the GPU in bf16, and
measures, for one 1024x1024 image plus a short question:

- plain ``model.generate`` (the baseline): time to first token, batch-1 decode speed, and
  pre-built batches of 8 and 32;
- the project's decode engine (static KV cache, CUDA-graph decode steps, continuous
  batching): time to first token, batch-1 decode speed, whether its greedy tokens equal
  ``generate``'s token for token, and 32 concurrent requests from separate callers arriving
  over time through ``TransformersBackend`` (the backend the MCP server uses);
- the memory-bandwidth floor of batch-1 decode (decoder bytes read per token over the
  measured copy bandwidth) and peak GPU memory.

    python benchmarks/gpu_decode.py --shape 8b --shape 4b --json results.json

Prints a table and writes JSON (card, versions, figures). The tokenizer and processor come
from the tiny test checkpoint (built on the fly), so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shapes import build_random_model


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def copy_bandwidth_gbs() -> float:
    """Device-to-device copy rate, counting bytes read plus written."""
    import torch

    n = 1 << 30  # 1 GiB per buffer, bf16 elements
    a = torch.empty(n // 2, dtype=torch.bfloat16, device="cuda").normal_()
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    _sync()
    times = []
    for _ in range(10):
        t = time.perf_counter()
        b.copy_(a)
        _sync()
        times.append(time.perf_counter() - t)
    del a, b
    return 2 * n / statistics.median(times) / 1e9


def decoder_bytes_per_token(model: Any) -> int:
    """Bytes of weights one decode step reads: every decoder layer, the final norm and the
    LM head (the embedding reads one row)."""
    lm = model.model.language_model
    total = sum(p.numel() * p.element_size() for p in lm.layers.parameters())
    total += sum(p.numel() * p.element_size() for p in lm.norm.parameters())
    total += model.lm_head.weight.numel() * model.lm_head.weight.element_size()
    return total


def build_inputs(processor: Any, seed: int, side: int = 1024) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(seed)
    img = Image.fromarray((rng.rand(side, side, 3) * 255).astype("uint8"))
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {
                    "type": "text",
                    "text": f"Describe the findings in this chest X-ray, case {seed}.",
                },
            ],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    budget = {"shortest_edge": 65_536, "longest_edge": side * side}
    return dict(processor(text=[text], images=[img], size=budget, return_tensors="pt"))


def _gen_config(model: Any) -> Any:
    from transformers import GenerationConfig

    cfg = GenerationConfig(
        do_sample=False,
        eos_token_id=None,  # random weights: run every request to its full length
        pad_token_id=model.config.get_text_config().pad_token_id,
    )
    return cfg


def measure_generate(
    model: Any,
    inputs: dict[str, Any],
    new_tokens: int,
    policy: bool = False,
    batches: tuple[int, ...] = (8, 32),
) -> dict[str, Any]:
    """Figures from plain ``model.generate``: PyTorch's default attention dispatch (the
    baseline), or under the project's flash-first attention policy (``policy``)."""
    import torch

    from medmo_agent.backends.engine.step import DEFAULT_SDPA_BACKENDS, attention_policy

    gen = _gen_config(model)
    dev = {k: v.to("cuda") for k, v in inputs.items()}

    def run(batch: int, n: int) -> tuple[float, Any]:
        # every tensor, pixel_values and image_grid_thw included, repeats along dim 0
        batched = {k: torch.cat([v] * batch) for k, v in dev.items()}
        _sync()
        t = time.perf_counter()
        backends = DEFAULT_SDPA_BACKENDS if policy else None
        with torch.inference_mode(), attention_policy(backends, torch.device("cuda")):
            out = model.generate(
                **batched, max_new_tokens=n, min_new_tokens=n, generation_config=gen
            )
        _sync()
        return time.perf_counter() - t, out

    run(1, 2)  # warm-up
    ttft = statistics.median(run(1, 1)[0] for _ in range(7))
    t_full, out = run(1, new_tokens)
    tokens = out[0, dev["input_ids"].shape[1] :].tolist()
    result = {
        "ttft_ms": ttft * 1000,
        "batch1_tokens_per_s": (new_tokens - 1) / (t_full - ttft),
        "reference_tokens": tokens,
    }
    for batch in batches:
        t1, _ = run(batch, 1)
        tn, _ = run(batch, new_tokens)
        result[f"batch{batch}_tokens_per_s"] = batch * (new_tokens - 1) / (tn - t1)
    return result


def measure_engine(
    model: Any,
    inputs: dict[str, Any],
    reference: list[int],
    new_tokens: int,
    extra_inputs: list[dict[str, Any]],
    extra_refs: list[list[int]],
    kernels: bool,
) -> dict[str, Any]:
    """Figures from the decode engine alone: TTFT, batch-1 speed, exactness, and the decode
    rate of 8 and 32 requests submitted together."""
    from medmo_agent.backends.engine import ContinuousBatcher, EngineRequest

    t = time.perf_counter()
    engine = ContinuousBatcher(
        model,
        eos_token_ids=[],
        max_batch=32,
        generation_config=_gen_config(model),
        kernels=None if kernels else False,
    )
    setup_s = time.perf_counter() - t

    prefill_parts: list[tuple[float, float]] = []

    def one(inp: dict[str, Any], n: int) -> tuple[list[int], list[float], float]:
        stamps: list[float] = []
        req = EngineRequest(
            inputs=inp, max_new_tokens=n, on_token=lambda _tok: stamps.append(time.perf_counter())
        )
        start = req.submitted
        res = engine.submit(req).result()
        prefill_parts.append((res.queue_seconds, res.first_token_seconds))
        return res.tokens, stamps, start

    t = time.perf_counter()
    one(inputs, 4)  # captures the batch-1 graphs
    capture_s = time.perf_counter() - t
    ttfts = []
    prefill_parts.clear()
    for _ in range(7):
        _, stamps, start = one(inputs, 1)
        ttfts.append(stamps[0] - start)
    queue_ms = statistics.median(q for q, _ in prefill_parts) * 1000
    prefill_ms = statistics.median(p for _, p in prefill_parts) * 1000
    tokens, stamps, _ = one(inputs, new_tokens)
    decode_rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    exact = [tokens == reference]
    for inp, ref in zip(extra_inputs, extra_refs, strict=True):
        exact.append(one(inp, new_tokens)[0] == ref)
    together = {}
    for batch in (8, 32):
        one(inputs, 4)  # nothing else running
        together[f"batch{batch}"] = _decode_together(engine, inputs, batch, 2 * new_tokens)
    stats = dict(engine.stats)
    engine.close()
    return {
        "kernels": engine.step.kernels,
        "decode_together": together,
        "setup_s": setup_s,
        "first_capture_s": capture_s,
        "kv_cache_positions_per_request": engine.max_len,
        "kv_cache_gib": engine.cache.plan.total_bytes / 2**30,
        "ttft_ms": statistics.median(ttfts) * 1000,
        "ttft_queue_ms": queue_ms,
        "ttft_prefill_ms": prefill_ms,
        "batch1_tokens_per_s": decode_rate,
        "greedy_equals_generate": exact,
        "first_mismatch": _first_mismatch(tokens, reference),
        "stats": stats,
    }


def _decode_together(engine: Any, inputs: dict[str, Any], batch: int, n: int) -> dict[str, Any]:
    """``batch`` requests submitted at once; the decode rate once every row is running."""
    from medmo_agent.backends.engine import EngineRequest

    stamps: list[list[float]] = [[] for _ in range(batch)]
    futures = [
        engine.submit(
            EngineRequest(
                inputs=inputs,
                max_new_tokens=n,
                on_token=lambda _t, s=s: s.append(time.perf_counter()),
            )
        )
        for s in stamps
    ]
    for f in futures:
        f.result()
    all_running = max(s[0] for s in stamps)
    end = max(s[-1] for s in stamps)
    tokens = sum(1 for s in stamps for t in s if t > all_running)
    return {
        "requests": batch,
        "new_tokens": n,
        "tokens_per_s": tokens / (end - all_running),
        "step_ms": (end - all_running) / max(1, tokens / batch) * 1000,
        "all_prefilled_after_s": all_running - min(s[0] for s in stamps),
    }


def _first_mismatch(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def measure_concurrent(
    backend: Any, processor_inputs: Any, callers: int, new_tokens: int, spread_s: float
) -> dict[str, Any]:
    """``callers`` threads each submit one request at a random moment within ``spread_s``."""
    from medmo_agent.backends.base import GenerationRequest

    rng = random.Random(0)
    delays = sorted(rng.uniform(0, spread_s) for _ in range(callers))
    results: list[Any] = [None] * callers
    latencies: list[float] = [0.0] * callers
    go = threading.Event()
    t0 = [0.0]

    def caller(i: int) -> None:
        go.wait()
        target = t0[0] + delays[i]
        while time.perf_counter() < target:
            time.sleep(0.001)
        req = GenerationRequest(messages=processor_inputs(i), max_new_tokens=new_tokens)
        start = time.perf_counter()
        results[i] = backend.generate(req)
        latencies[i] = time.perf_counter() - start

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for th in threads:
        th.start()
    t0[0] = time.perf_counter()
    go.set()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0[0]
    done = [r for r in results if r is not None]
    tokens = sum(r.completion_tokens for r in done)
    lat = sorted(latencies)
    return {
        "callers": callers,
        "arrival_spread_s": spread_s,
        "completed": len(done),
        "lost": callers - len(done),
        "all_full_length": all(r.completion_tokens == new_tokens for r in done),
        "aggregate_tokens_per_s": tokens / wall,
        "latency_p50_s": lat[len(lat) // 2],
        "latency_p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))],
        "wall_s": wall,
    }


def bench_shape(shape: str, tiny_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dir)
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    model = build_random_model(shape, processor)
    build_s = time.perf_counter() - t
    inputs = build_inputs(processor, seed=0)
    extra = [build_inputs(processor, seed=s) for s in (1, 2)]
    prompt_tokens = int(inputs["input_ids"].shape[1])
    floor = args.bandwidth_gbs * 1e9 / decoder_bytes_per_token(model)
    out: dict[str, Any] = {
        "shape": shape,
        "build_s": build_s,
        "prompt_tokens": prompt_tokens,
        "decoder_gb_per_token": decoder_bytes_per_token(model) / 1e9,
        "batch1_floor_tokens_per_s": floor,
    }
    base = measure_generate(model, inputs, args.new_tokens)
    again = measure_generate_tokens(model, inputs, args.new_tokens, policy=False)
    policy = measure_generate(model, inputs, args.new_tokens, policy=True)
    out["generate"] = {k: v for k, v in base.items() if k != "reference_tokens"}
    out["generate_flash_first"] = {k: v for k, v in policy.items() if k != "reference_tokens"}
    out["flash_first_equals_default"] = policy["reference_tokens"] == base["reference_tokens"]
    # PyTorch's default dispatch can pick different kernels run to run (it re-plans cuDNN
    # attention per key length): is plain generate even reproducible under it?
    out["default_generate_reproducible"] = again == base["reference_tokens"]
    reference = policy["reference_tokens"]
    if args.kernels:
        from medmo_agent.backends.engine.fused import install_fused_kernels

        # The engine installs its fused kernels into the model; from here on plain
        # generate runs on them too, and is the reference the engine must equal.
        install_fused_kernels(model)
        fused = measure_generate(model, inputs, args.new_tokens, policy=True, batches=())
        out["generate_fused"] = {k: v for k, v in fused.items() if k != "reference_tokens"}
        out["fused_vs_stock_first_mismatch"] = _first_mismatch(fused["reference_tokens"], reference)
        reference = fused["reference_tokens"]
    refs = [measure_generate_tokens(model, x, args.new_tokens) for x in extra]
    out["engine"] = measure_engine(
        model, inputs, reference, args.new_tokens, extra, refs, kernels=args.kernels
    )
    out["concurrent"] = bench_backend(model, processor, args)
    out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del model
    torch.cuda.empty_cache()
    return out


def measure_generate_tokens(
    model: Any, inputs: dict[str, Any], n: int, policy: bool = True
) -> list[int]:
    """Greedy tokens of plain ``generate`` (under the flash-first policy by default)."""
    import torch

    from medmo_agent.backends.engine.step import DEFAULT_SDPA_BACKENDS, attention_policy

    dev = {k: v.to("cuda") for k, v in inputs.items()}
    backends = DEFAULT_SDPA_BACKENDS if policy else None
    with torch.inference_mode(), attention_policy(backends, torch.device("cuda")):
        out = model.generate(
            **dev, max_new_tokens=n, min_new_tokens=n, generation_config=_gen_config(model)
        )
    return out[0, dev["input_ids"].shape[1] :].tolist()


def bench_backend(model: Any, processor: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``args.callers`` concurrent callers through TransformersBackend, the backend the MCP
    server uses: images preprocessed on each caller's thread, decoding on the engine's."""
    import numpy as np

    from medmo_agent.backends.transformers import TransformersBackend
    from medmo_agent.config import Settings
    from medmo_agent.types import ImageMeta, ImagePart, MedImage, Message, TextPart

    settings = Settings(
        device="cuda",
        max_batch_size=args.callers,
        max_pixels=1024 * 1024,
        engine="continuous",
        kernels=args.kernels,
    )
    backend = TransformersBackend.from_loaded(
        model, processor, settings=settings, model_id=f"random-{args.current_shape}"
    )
    images = []
    for i in range(4):
        pixels = (np.random.RandomState(100 + i).rand(1024, 1024, 3) * 255).astype("uint8")
        meta = ImageMeta(source="inline", format="png", original_size=(1024, 1024))
        images.append(MedImage(pixels, meta))

    def messages(i: int) -> list[Message]:
        parts = [ImagePart(images[i % len(images)]), TextPart(f"Describe the findings, {i}.")]
        return [Message("user", parts)]

    try:
        # warm up: captures the decode graphs of every batch size the load will use
        measure_concurrent(backend, messages, args.callers, 8, 0.0)
        runs = {}
        for tokens, spread in ((args.new_tokens, args.spread_s), (args.long_tokens, 1.0)):
            runs[f"{tokens}_tokens_{spread:g}s"] = measure_concurrent(
                backend, messages, args.callers, tokens, spread
            )
        return runs
    finally:
        backend.close()


def versions() -> dict[str, Any]:
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "card": torch.cuda.get_device_name(0),
        "card_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", choices=["8b", "4b"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument(
        "--spread-s",
        type=float,
        default=2.0,
        help="concurrent callers arrive at random moments within this window",
    )
    parser.add_argument(
        "--long-tokens",
        type=int,
        default=512,
        help="new tokens of the second concurrent run (callers arriving within 1 s)",
    )
    parser.add_argument(
        "--no-kernels",
        dest="kernels",
        action="store_false",
        help="the engine without its Triton kernels (the model keeps its stock modules)",
    )
    parser.add_argument("--json", type=Path, default=Path("gpu_decode.json"))
    args = parser.parse_args(argv)
    shapes = args.shape or ["8b"]

    from medmo_agent.testing.tiny import build_tiny_checkpoint

    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "versions": versions()}
    args.bandwidth_gbs = copy_bandwidth_gbs()
    report["copy_bandwidth_gbs"] = args.bandwidth_gbs
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_checkpoint(Path(tmp) / "tiny")
        report["shapes"] = {}
        for shape in shapes:
            args.current_shape = shape
            report["shapes"][shape] = bench_shape(shape, tiny, args)
            args.json.write_text(json.dumps(report, indent=2))
    print_table(report)
    args.json.write_text(json.dumps(report, indent=2))
    return 0


def print_table(report: dict[str, Any]) -> None:
    """The figures as a short table (the JSON has everything)."""
    v = report["versions"]
    print(
        f"\n{v['card']} | torch {v['torch']} | transformers {v['transformers']} | "
        f"copy {report['copy_bandwidth_gbs']:.0f} GB/s"
    )
    for shape, r in report["shapes"].items():
        g, f, e = r["generate"], r["generate_flash_first"], r["engine"]
        fused = r.get("generate_fused", {})
        print(
            f"\n[{shape}] prompt {r['prompt_tokens']} tokens, batch-1 floor "
            f"{r['batch1_floor_tokens_per_s']:.0f} tok/s, peak {r['peak_memory_gib']:.1f} GiB"
        )
        print(f"  {'':<28}{'generate':>12}{'gen+flash':>12}{'gen fused':>12}{'engine':>12}")
        rows = [
            ("time to first token (ms)", "ttft_ms"),
            ("batch-1 decode (tok/s)", "batch1_tokens_per_s"),
            ("batch 8 pre-built (tok/s)", "batch8_tokens_per_s"),
            ("batch 32 pre-built (tok/s)", "batch32_tokens_per_s"),
        ]
        for label, key in rows:
            cells = "".join(
                f"{d[key]:>12.1f}" if key in d else f"{'':>12}" for d in (g, f, fused, e)
            )
            print(f"  {label:<28}{cells}")
        for d in e.get("decode_together", {}).values():
            print(
                f"  engine, {d['requests']} submitted together: {d['tokens_per_s']:.0f} tok/s "
                f"({d['step_ms']:.2f} ms a step)"
            )
        print(
            f"  default generate reproducible run to run: {r['default_generate_reproducible']}; "
            f"flash-first generate equals it: {r['flash_first_equals_default']}"
        )
        if "fused_vs_stock_first_mismatch" in r:
            print(
                f"  fused vs stock generate, first differing token: "
                f"{r['fused_vs_stock_first_mismatch']}"
            )
        print(
            f"  engine tokens equal generate on the same model: {e['greedy_equals_generate']} "
            f"(first mismatch {e['first_mismatch']}); engine TTFT: queue "
            f"{e['ttft_queue_ms']:.1f} ms + prefill {e['ttft_prefill_ms']:.1f} ms"
        )
        for name, c in r.get("concurrent", {}).items():
            print(
                f"  {c['callers']} callers ({name}) via TransformersBackend: "
                f"{c['aggregate_tokens_per_s']:.0f} tok/s, p50 {c['latency_p50_s']:.2f} s, "
                f"p95 {c['latency_p95_s']:.2f} s, lost {c['lost']}, "
                f"all full length {c['all_full_length']}"
            )


if __name__ == "__main__":
    sys.exit(main())
