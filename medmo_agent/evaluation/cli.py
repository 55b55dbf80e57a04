"""``medmo eval``: the benchmarks of MedMO's card, prompted and scored MedEvalKit's way.

This module is imported by ``medmo --help``, so it imports nothing heavy at import time.

Exit status: 0 when every item was answered and scored; 3 when the run completed but some
items failed or are unscored (a failed judge call; the reasons are in ``items.jsonl``);
1 for an unusable command (unknown benchmark, missing data, model that does not load);
130 when interrupted (answered items are kept; run the same command again to resume).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cli_options import add_settings_options, settings_values
from ..errors import InputError
from .llm_judge import JUDGE_SETTINGS

__all__ = ["EXIT_ITEMS_FAILED", "add_eval_arguments", "run_eval_command"]

EXIT_ITEMS_FAILED = 3
EXIT_INTERRUPTED = 130

#: The settings ``medmo eval`` takes as options.
MODEL_SETTINGS = (
    "model",
    "revision",
    "backend",
    "base_url",
    "device",
    "eval_workers",
    "eval_max_new_tokens",
)

_EPILOG = """\
benchmarks: see `medmo eval --list` (id, items, source). Each loads from its Hugging Face
dataset through `datasets`, or with --data-dir DIR from DIR/<id>/ in the hub's layout.

modes: direct (one call, MedEvalKit's prompt), reason (the reason task), workflow (the
diagnostic workflow), agent (the tool-calling agent); several (--mode direct,reason)
answer the same items and paired.json gives the difference with a bootstrap interval.

outputs in OUT: run.json, total_results.json, paired.json, and per benchmark and mode
<id>/<mode>/{items.jsonl,results.json,metrics.json}. Re-running the same command skips
answered items (failed ones are retried).

exit status: 0 all items answered; 3 some items failed or unscored; 1 unusable input or model;
130 interrupted (run again to resume).
"""


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``medmo eval``'s arguments to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("benchmarks", nargs="*", metavar="BENCH", help="benchmark ids")
    parser.add_argument("--out", "-o", metavar="DIR", help="output folder (re-use it to resume)")
    parser.add_argument(
        "--list", action="store_true", help="list the benchmarks, their size and source"
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="local copies in DIR/<id>/ (default: the Hub)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="only N items per benchmark")
    parser.add_argument(
        "--seed", type=int, metavar="N", help="draw the --limit items at random with this seed"
    )
    parser.add_argument(
        "--mode",
        action="append",
        metavar="MODE",
        help="direct (default), reason, workflow or agent; repeat or comma-separate for several",
    )
    parser.add_argument(
        "--compat",
        choices=("correct", "medevalkit"),
        default="correct",
        help="correct: MedEvalKit's scoring bugs fixed (default); medevalkit: reproduced, "
        "to compare with published MedEvalKit numbers",
    )
    parser.add_argument(
        "--keep-failed", action="store_true", help="do not retry items that failed before"
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the answers already in --out again (e.g. with another --compat or a "
        "judge) without loading the model; unanswered items are left out",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_settings_options(parser.add_argument_group("model"), MODEL_SETTINGS)
    add_settings_options(parser.add_argument_group("LLM judge (open answers)"), JUDGE_SETTINGS)


def _modes(values: list[str] | None) -> list[str]:
    if not values:
        return ["direct"]
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


def list_benchmarks(data_dir: str | None = None) -> list[dict[str, Any]]:
    """One row per benchmark: id, title, items, source (counted from ``data_dir`` when
    given, else the published size, ``None`` when unknown)."""
    from .benchmarks import BENCHMARKS
    from .sources import count_items

    rows = []
    for spec in BENCHMARKS.values():
        size: int | None = spec.size
        where = spec.source
        if data_dir is not None:
            where = f"{data_dir}/{spec.id} ({spec.hub_id or spec.data_file})"
            try:
                size = count_items(spec, data_dir)
            except InputError:  # a copy not there is listed as such, not an error
                size, where = None, f"{where}: no local copy"
        rows.append({"id": spec.id, "title": spec.title, "items": size, "source": where})
    return rows


def _print_list(rows: list[dict[str, Any]], counted: bool) -> None:
    out = sys.stdout
    width = max(len(r["id"]) for r in rows)
    out.write(f"{'benchmark':<{width}}  {'items':>6}  source\n")
    for r in rows:
        items = "?" if r["items"] is None else str(r["items"])
        out.write(f"{r['id']:<{width}}  {items:>6}  {r['source']}\n")
    if not counted:
        out.write("items: the published count; with --data-dir, counted from the files\n")


def run_eval_command(args: argparse.Namespace) -> int:
    """Run ``medmo eval``; returns the exit status (see the module docstring)."""
    if args.list:
        _print_list(list_benchmarks(args.data_dir), args.data_dir is not None)
        return 0
    if not args.benchmarks:
        raise InputError(
            "No benchmark given.",
            fix="Name one or more, e.g. medmo eval vqa_rad slake --out runs/x "
            "(medmo eval --list shows them).",
        )
    if not args.out:
        raise InputError(
            "medmo eval needs --out DIR (where results go, and what a re-run resumes).",
            fix="Add --out runs/NAME.",
        )
    from ..config import Settings
    from .runner import run_eval

    settings = Settings.from_env(**settings_values(args, (*MODEL_SETTINGS, *JUDGE_SETTINGS)))
    try:
        result = run_eval(
            args.benchmarks,
            args.out,
            modes=_modes(args.mode),
            data_dir=args.data_dir,
            limit=args.limit,
            seed=args.seed,
            compat=args.compat,
            settings=settings,
            rescore=args.rescore,
            retry_failed=not args.keep_failed,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        sys.stderr.write(
            f"medmo eval: interrupted; answered items are saved in {args.out}. "
            "Run the same command again to resume.\n"
        )
        return EXIT_INTERRUPTED
    _print_summary(result)
    return EXIT_ITEMS_FAILED if result.failed or result.unscored else 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _print_summary(result: Any) -> None:
    out = sys.stdout
    out.write(f"answered {result.ran} item(s) now, {result.skipped} already done\n")
    if result.missing:
        out.write(f"{result.missing} item(s) not answered yet, left out of the re-scoring\n")
    for bench, modes in result.metrics.items():
        for mode, m in modes.items():
            total = m["total metrics"]
            line = f"{bench:<16} {mode:<9} acc {_pct(total['acc'])} "
            line += f"({total['right']}/{total['total']})"
            if "close" in m:
                line += f"  closed {_pct(m['close']['acc'])}  open {_pct(m['open']['acc'])}"
            if total.get("failed"):
                line += f"  failed {total['failed']}"
            if total.get("unscored"):
                line += f"  unscored {total['unscored']} (judge call failed; re-run to judge)"
            out.write(line + "\n")
        for pair, d in result.paired.get(bench, {}).items():
            out.write(
                f"{bench:<16} {pair}: {d['difference'] * 100:+.1f} points "
                f"({d['confidence'] * 100:.0f}% CI {d['ci_low'] * 100:+.1f} to "
                f"{d['ci_high'] * 100:+.1f}, n={d['n']})\n"
            )
    for bench, mode in result.skipped_modes:
        out.write(
            f"{bench:<16} {mode:<9} skipped: the mode does not run this benchmark "
            "(text-only, or grounding outside direct mode)\n"
        )
    failed = result.failed
    for rec in failed[:10]:
        out.write(f"  failed: {rec.benchmark}/{rec.mode}/{rec.item_id}: {rec.error}\n")
    if len(failed) > 10:
        out.write(f"  ... and {len(failed) - 10} more (see items.jsonl)\n")
    if result.out is not None:
        out.write(f"results: {result.out}\n")
    if failed:
        out.write(f"{len(failed)} item(s) failed; exit status {EXIT_ITEMS_FAILED}.\n")
    if result.unscored:
        out.write(
            f"{len(result.unscored)} item(s) unscored (judge call failed); run the same "
            f"command again to judge them; exit status {EXIT_ITEMS_FAILED}.\n"
        )
