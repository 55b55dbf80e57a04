"""Worst-case parsing time of the task parsers: adversarial answers at growing sizes.

    python benchmarks/parser_worst_case.py                         # 8 KB to 512 KB, 3 repeats
    python benchmarks/parser_worst_case.py --json parser_worst_case.json
    python benchmarks/parser_worst_case.py --sizes 4000 16000 --repeats 1   # a smoke run

Each family of :mod:`medmo_agent.testing.adversarial` repeats a unit that once made a
parser's regular expressions rescan the text from every position: ``'<think>' * 3915``
(27 KB) took over 2 s, as did ``'a' + ' ,' * 7235 + 'b [1,2,3,4]'``. For each family and
size the best of ``--repeats`` runs is kept; the figures are:

- ``us_per_kb``: microseconds per KB of answer at each size (flat when linear);
- ``exponent``: the slope of log(time) against log(size) between the smallest and largest
  size (1 for linear growth, 2 for quadratic);
- ``bound_us_per_kb``: the largest per-KB time over all families and sizes: every
  adversarial answer of L KB parses in at most ``L * bound_us_per_kb`` microseconds on
  this machine.

The run fails (exit 1) when a family grows faster than ``--max-exponent`` (default 1.5).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from _machine import machine_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medmo_agent.testing.adversarial import FAMILIES, parsers

DEFAULT_SIZES = (8_000, 32_000, 128_000, 512_000)


def time_family(family: Any, parse: Any, sizes: list[int], repeats: int) -> dict[str, Any]:
    """Best-of-``repeats`` parse time of ``family`` at each size."""
    parse(family.sized(1000))  # compile the regexes and warm caches before timing
    rows = []
    for size in sizes:
        text = family.sized(size)
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            parse(text)
            best = min(best, time.perf_counter() - t0)
        rows.append({"chars": len(text), "seconds": best})
    first, last = rows[0], rows[-1]
    exponent = (
        math.log(max(last["seconds"], 1e-7) / max(first["seconds"], 1e-7))
        / math.log(last["chars"] / first["chars"])
        if last["chars"] > first["chars"]
        else float("nan")
    )
    return {
        "family": family.name,
        "parser": family.parser,
        "why": family.why,
        "chars": [r["chars"] for r in rows],
        "seconds": [round(r["seconds"], 6) for r in rows],
        "us_per_kb": [round(r["seconds"] * 1e6 / (r["chars"] / 1000), 2) for r in rows],
        "exponent": round(exponent, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", action="append", help="time only this family (repeatable)")
    p.add_argument("--max-exponent", type=float, default=1.5)
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)

    table = parsers()
    families = [f for f in FAMILIES if not args.only or f.name in args.only]
    sizes = sorted(args.sizes)
    results = []
    print(f"{'family':24s} {'parser':14s} " + " ".join(f"{s // 1000:>7d}KB" for s in sizes))
    for family in families:
        row = time_family(family, table[family.parser], sizes, args.repeats)
        results.append(row)
        print(
            f"{family.name:24s} {family.parser:14s} "
            + " ".join(f"{s * 1e3:7.1f}ms" for s in row["seconds"])
            + f"   {row['us_per_kb'][-1]:7.1f} us/KB  exponent {row['exponent']:.2f}",
            flush=True,
        )
    bound = max(v for r in results for v in r["us_per_kb"])
    worst = max(results, key=lambda r: r["exponent"])
    too_fast_growing = [r["family"] for r in results if r["exponent"] > args.max_exponent]
    print(
        f"\nbound: every adversarial answer parses in at most {bound:.0f} us per KB "
        f"({bound * sizes[-1] / 1000 / 1e6:.2f} s for {sizes[-1] // 1000} KB); "
        f"steepest growth: {worst['family']} (exponent {worst['exponent']:.2f})"
    )
    res = {
        "benchmark": "parser_worst_case",
        "machine": machine_info(),
        "sizes": sizes,
        "repeats": args.repeats,
        "results": results,
        "bound_us_per_kb": bound,
        "max_exponent": worst["exponent"],
        "exponent_limit": args.max_exponent,
        "too_fast_growing": too_fast_growing,
    }
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    if too_fast_growing:
        print(f"growth above exponent {args.max_exponent}: {', '.join(too_fast_growing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
