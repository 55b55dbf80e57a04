"""What ``run_eval`` returns: the records, metrics and paired differences of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import ItemRecord

__all__ = ["EvalResult"]


@dataclass
class EvalResult:
    """What a run did: records and metrics per benchmark and mode.

    Attributes:
        records: ``{benchmark: {mode: [ItemRecord, ...]}}`` for the selected items.
        metrics: ``{benchmark: {mode: metrics}}`` in MedEvalKit's layout.
        paired: ``{benchmark: {"A vs B": {...}}}`` when several modes ran.
        out: the output folder, if any.
        ran: items answered now.
        skipped: items already answered in an earlier run.
        missing: items not answered yet, left out of a re-scoring run.
        skipped_modes: ``(benchmark, mode)`` pairs not run (text-only in an image mode).
        interrupted: the run was stopped before the end.
    """

    records: dict[str, dict[str, list[ItemRecord]]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    paired: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None
    ran: int = 0
    skipped: int = 0
    missing: int = 0
    skipped_modes: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[ItemRecord]:
        """Every item record that failed."""
        return [
            r for modes in self.records.values() for rs in modes.values() for r in rs if r.error
        ]

    @property
    def unscored(self) -> list[ItemRecord]:
        """Answered item records whose judge call failed (judged again on a re-run)."""
        return [
            r
            for modes in self.records.values()
            for rs in modes.values()
            for r in rs
            if r.ok and isinstance(j := r.verdict.get("judge"), dict) and j.get("correct") is None
        ]

    def accuracy(self, benchmark: str, mode: str = "direct") -> float | None:
        """The overall accuracy of one benchmark in one mode."""
        return self.metrics[benchmark][mode]["total metrics"]["acc"]
