"""Read an evaluation's output folder back for reporting (tolerant of partial runs).

Layout: ``OUT/run.json`` (provenance), ``OUT/<BENCH>/<MODE>/items.jsonl`` (one record per
line), ``OUT/<BENCH>/<MODE>/metrics.json`` (MedEvalKit's layout), optional
``OUT/paired.json`` and ``OUT/total_results.json``. A folder without ``items.jsonl`` is
not a benchmark; a torn last line of ``items.jsonl`` (a killed run) is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmo_agent.errors import InputError

RUN_FILE = "run.json"
ITEMS_FILE = "items.jsonl"
METRICS_FILE = "metrics.json"
PAIRED_FILE = "paired.json"


@dataclass
class ModeRun:
    """One benchmark in one mode: its item records and its metrics (``None`` if unwritten)."""

    benchmark: str
    mode: str
    items: list[dict[str, Any]]
    metrics: dict[str, Any] | None

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Items with an error, or whose judge call failed."""
        return [i for i in self.items if i.get("error") or _judge_error(i)]


def _judge_error(item: dict[str, Any]) -> str | None:
    judge = (item.get("verdict") or {}).get("judge")
    return judge.get("error") if isinstance(judge, dict) else None


def failure_reason(item: dict[str, Any]) -> str:
    """Why an item is listed as failed (its error, or the judge's)."""
    if item.get("error"):
        return str(item["error"])
    return f"judge: {_judge_error(item)}"


@dataclass
class RunDir:
    """An evaluation's output folder, read."""

    root: Path
    run: dict[str, Any]
    modes: dict[str, dict[str, ModeRun]] = field(default_factory=dict)
    paired: dict[str, dict[str, Any]] | None = None

    def benchmarks(self) -> list[str]:
        """Benchmarks in folder-name order."""
        return list(self.modes)

    def mode_names(self) -> list[str]:
        """Every mode, in run.json's order, then any other found."""
        declared = [str(m) for m in self.run.get("modes") or []]
        found = {m for runs in self.modes.values() for m in runs}
        return [m for m in dict.fromkeys([*declared, *sorted(found)]) if m in found]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"Cannot read {path.name} of the evaluation in {path.parent}: {exc}",
            input=str(path),
            fix="Re-run the same `medmo eval` command to rewrite the run's files.",
        ) from exc


def read_items(path: Path) -> list[dict[str, Any]]:
    """The records of one ``items.jsonl``; a torn last line is skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    items = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines) - 1:
                break  # a run killed mid-write leaves at most the last line torn
            raise InputError(
                f"{path}: line {n + 1} is not JSON ({exc})",
                input=str(path),
                fix="Re-run the same `medmo eval` command; it rewrites items.jsonl.",
            ) from exc
    return items


def read_run(out_dir: str | Path) -> RunDir:
    """Read an output folder.

    A folder with ``run.json`` but no results (every mode skipped, or stopped before the
    first item) reads as a run with no benchmarks.

    Raises:
        InputError: the folder does not exist or holds neither ``run.json`` nor results,
            or a file is unreadable.
    """
    root = Path(out_dir).expanduser()
    if not root.is_dir():
        raise InputError(
            f"No evaluation output folder at {root}",
            input=str(root),
            fix="Pass the --out folder of a `medmo eval` run.",
        )
    run = _read_json(root / RUN_FILE) if (root / RUN_FILE).is_file() else {}
    result = RunDir(root, run if isinstance(run, dict) else {})
    for items_path in sorted(root.glob(f"*/*/{ITEMS_FILE}")):
        mode_dir = items_path.parent
        bench, mode = mode_dir.parent.name, mode_dir.name
        metrics_path = mode_dir / METRICS_FILE
        metrics = _read_json(metrics_path) if metrics_path.is_file() else None
        result.modes.setdefault(bench, {})[mode] = ModeRun(
            bench, mode, read_items(items_path), metrics
        )
    if not result.modes and not run:
        raise InputError(
            f"{root} holds no benchmark results (no <BENCH>/<MODE>/{ITEMS_FILE})",
            input=str(root),
            fix="Run `medmo eval BENCH --out DIR` first, then report on DIR.",
        )
    if (root / PAIRED_FILE).is_file():
        paired = _read_json(root / PAIRED_FILE)
        result.paired = paired if isinstance(paired, dict) else None
    return result
