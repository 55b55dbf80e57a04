"""``medmo review``: run scripted multi-step reviews over many cases, resumably.

This module is imported by ``medmo --help``, so it imports nothing heavy at import time.

Exit status: 0 when every selected case was reviewed; 3 when the run completed but some
cases failed (their number is printed, their reasons are in the records); 1 for an
unusable command (bad cases file, unknown step, model that does not load); 130 when
interrupted (finished cases are kept; run the same command again to resume).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cli_options import add_settings_options, settings_values

__all__ = [
    "EXIT_CASES_FAILED",
    "EXIT_INTERRUPTED",
    "add_review_arguments",
    "run_review_command",
]

EXIT_CASES_FAILED = 3
EXIT_INTERRUPTED = 130

#: The settings ``medmo review`` takes as options.
MODEL_SETTINGS = ("model", "revision", "backend", "base_url", "device", "max_new_tokens")

_EPILOG = """\
cases: a YAML/JSON/CSV file or a folder with one sub-folder per case. A YAML case:
  - id: case-001
    images: [{path: ct/series01, window: lung}]   # or image: chest.png
    context: 67M, smoker
    questions: [{question: "Is there a nodule?", expected: "yes"}]
    expected_labels: [Nodule]
    expected_boxes: [{label: nodule, x1: 100, y1: 120, x2: 160, y2: 170}]
A YAML file may also say `steps:` (the --steps option wins).

steps: `workflow` (default: vqa, ground, verify, classify, report, reason), `agent`,
a YAML/JSON file with a list of steps, or a compact list such as
`ground:nodule,vqa,report` (task[:main argument], comma-separated).

outputs in OUT: cases/<id>/{record.json,overlay-N.png,report.md}, results.jsonl,
summary.csv, agreement.json, run.json, report.html (self-contained, offline).
Re-running the same command skips finished cases (failed ones are retried).

exit status: 0 all cases reviewed; 3 some cases failed (count printed);
1 unusable input or model; 130 interrupted (run again to resume).
"""


def add_review_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``medmo review``'s arguments to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("cases", help="cases file (YAML, JSON, CSV) or folder of case folders")
    parser.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="DIR",
        help="output folder (created; re-use it to resume)",
    )
    parser.add_argument(
        "--steps",
        metavar="SPEC",
        help="workflow (default), agent, a steps YAML/JSON file, or a compact "
        "list like ground:nodule,vqa,report",
    )
    parser.add_argument(
        "--workers",
        "-j",
        type=int,
        default=1,
        metavar="N",
        help="cases reviewed at once (the backend batches; default 1)",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="review only the first N cases")
    parser.add_argument(
        "--only", action="append", metavar="ID", help="review only this case (repeatable)"
    )
    parser.add_argument(
        "--keep-failed",
        action="store_true",
        help="do not retry cases that failed in an earlier run",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--include-paths",
        action="store_true",
        default=None,
        help="name image paths in the files written (they may identify patients; "
        "default: a label, or MEDMO_INCLUDE_PATHS)",
    )
    add_settings_options(parser.add_argument_group("model"), MODEL_SETTINGS)


def _settings(args: argparse.Namespace) -> Any:
    from ..config import Settings

    return Settings.from_env(**settings_values(args, MODEL_SETTINGS))


def run_review_command(args: argparse.Namespace) -> int:
    """Run ``medmo review``; returns the exit status (see the module docstring).

    ``MedmoError`` is left to the ``medmo`` command, which prints it and exits with 1.
    """
    from .runner import run_review

    try:
        result = run_review(
            args.cases,
            steps=args.steps,
            out=args.out,
            settings=_settings(args),
            workers=args.workers,
            limit=args.limit,
            only=args.only,
            retry_failed=not args.keep_failed,
            progress=not args.no_progress,
            include_paths=args.include_paths,
        )
    except KeyboardInterrupt:
        sys.stderr.write(
            f"medmo review: interrupted; finished cases are saved in {args.out}. "
            "Run the same command again to resume.\n"
        )
        return EXIT_INTERRUPTED
    _print_summary(result)
    return EXIT_CASES_FAILED if result.failed else 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _print_summary(result: Any) -> None:
    out = sys.stdout
    n, failed = len(result.records), result.failed
    out.write(
        f"reviewed {n} case(s): {n - len(failed)} ok, {len(failed)} failed "
        f"({result.ran} run now, {result.skipped} already done)\n"
    )
    for rec in failed[:20]:
        out.write(f"  failed: {rec.id}: {(rec.error or {}).get('message', 'unknown error')}\n")
    if len(failed) > 20:
        out.write(f"  ... and {len(failed) - 20} more (see summary.csv)\n")
    agr = result.agreement
    if "answers" in agr:
        a = agr["answers"]
        out.write(f"answers: {_pct(a['accuracy'])} agree ({a['correct']}/{a['n']})\n")
    if "labels" in agr:
        lab = agr["labels"]
        out.write(f"labels: exact {_pct(lab['exact_accuracy'])}, F1 {_pct(lab['f1'])}\n")
    if "boxes" in agr:
        b = agr["boxes"]
        out.write(f"boxes: mean IoU {b['mean_iou']:.3f}, recall@0.5 {_pct(b['recall_at_0.5'])}\n")
    if result.out is not None:
        out.write(f"report: {result.out / 'report.html'}\n")
    if failed:
        out.write(f"{len(failed)} case(s) failed; exit status {EXIT_CASES_FAILED}.\n")
