"""Where a decode step's time goes, and which engine variant matches ``generate`` exactly.

    python benchmarks/engine_probe.py --shape 4b

Builds a random-weight model of MedMO's shape on the GPU, then for one 1024x1024 image
prompt: profiles engine decode steps (top operators by CPU and GPU time), and compares
greedy tokens of engine variants (CUDA graphs on and off) with ``generate``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shapes import build_random_model
from gpu_decode import _first_mismatch, _gen_config, build_inputs, measure_generate_tokens


def main() -> int:
    import torch
    from transformers import AutoProcessor

    from medmo_agent.backends.engine import ContinuousBatcher, EngineRequest
    from medmo_agent.testing.tiny import build_tiny_checkpoint

    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="4b")
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        processor = AutoProcessor.from_pretrained(build_tiny_checkpoint(Path(tmp) / "t"))
    model = build_random_model(args.shape, processor)
    inputs = build_inputs(processor, seed=0)
    ref = measure_generate_tokens(model, inputs, args.tokens)

    for graphs in (True, False):
        engine = ContinuousBatcher(
            model,
            eos_token_ids=[],
            max_batch=4,
            max_len=4096,
            use_cuda_graphs=graphs,
            generation_config=_gen_config(model),
        )
        stamps: list[float] = []
        res = engine.submit(
            EngineRequest(
                inputs=inputs,
                max_new_tokens=args.tokens,
                on_token=lambda _t, s=stamps: s.append(time.perf_counter()),
            )
        ).result()
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[1 if len(stamps) > 2 else 0])
        print(
            f"graphs={graphs}: {rate:.1f} tok/s, "
            f"equal={res.tokens == ref}, first mismatch={_first_mismatch(res.tokens, ref)}"
        )
        if graphs:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                engine.submit(EngineRequest(inputs=inputs, max_new_tokens=16)).result()
            print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=18))
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))
            # bare step timing, no scheduler around it
            runs = engine.step
            torch.cuda.synchronize()
            t = time.perf_counter()
            for i in range(20):
                runs([5], [1100 + i], [1064 + i])
            torch.cuda.synchronize()
            print(f"bare step: {(time.perf_counter() - t) / 20 * 1000:.2f} ms")
            st = runs._states[1]
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(20):
                for g in st.graphs:
                    g.replay()
            torch.cuda.synchronize()
            print(f"graph replays only: {(time.perf_counter() - t) / 20 * 1000:.2f} ms per step")
        engine.close()
    _ = _gen_config
    return 0


if __name__ == "__main__":
    sys.exit(main())
