"""The output folder of ``medmo eval``: what is written where, and how to read it back.

Layout::

    OUT/
      run.json                          provenance: model, revision, backend, package
                                        versions, seed, limit, modes, compat, benchmarks
                                        (source, config, split, items), started/finished
      total_results.json                {BENCH: {MODE: metrics}} (metrics as in metrics.json)
      paired.json                       {BENCH: {"A vs B": paired difference}} when two or
                                        more modes ran on the same items (evaluation/paired.py)
      <BENCH>/<MODE>/items.jsonl        one :class:`ItemRecord` per line, in item order
      <BENCH>/<MODE>/results.json       MedEvalKit's per-item list: the item's fields plus
                                        ``response``, ``correct`` and ``metrics``
      <BENCH>/<MODE>/metrics.json       MedEvalKit's layout: VQA benchmarks
                                        ``{"total metrics", "open", "close"}``, the others
                                        ``{"total metrics"}`` (see evaluation/aggregate.py),
                                        grounding ``{"total metrics", "per label"}``

An item record (``items.jsonl``) has ``item_id``, ``benchmark``, ``mode``,
``question_type`` (``yes_no``, ``closed``, ``open``, ``multiple_choice`` or ``grounding``),
``modality`` and ``category`` (the dataset's own labels: modality; question type,
subject or subfield; each null when the dataset has none), ``prompt_hash`` (SHA-256 of
the prompt text and the encoded images), ``prompt``, ``answer`` (the gold answer),
``raw_answer``, ``input_size`` (grounding: the image size the model saw, to read its
boxes again), ``extracted`` (the part the rules compared), ``correct`` (true, false,
or null when the item failed or its judge call failed), ``verdict`` (the rule's
details, and ``judge`` when an LLM judge scored it), ``metrics`` (open-answer metrics,
else empty), ``error`` (null, or the reason the item failed), ``fingerprint`` (what
decided the answer: model, revision, backend, mode, generation settings) and ``seconds``.

Writing: a finished item is appended to ``items.jsonl`` as one line, flushed and synced,
so a killed run loses only the items in flight. A torn last line is dropped when the file
is read; at the end of a run (and before appending to an old file) ``items.jsonl`` is
rewritten in item order, one line per item, through the same atomic write as reviews
(:func:`medmo_agent.review.store.atomic_write`), as are every JSON file here. Re-running
the same command skips items already answered with the same ``prompt_hash`` and
``fingerprint``; failed items are tried again.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from ..review.store import _TMP_PREFIX, atomic_write

__all__ = [
    "ITEMS_FILE",
    "METRICS_FILE",
    "PAIRED_FILE",
    "RESULTS_FILE",
    "RUN_FILE",
    "TOTAL_FILE",
    "EvalStore",
    "ItemRecord",
    "QuestionType",
]

RUN_FILE = "run.json"
TOTAL_FILE = "total_results.json"
PAIRED_FILE = "paired.json"
ITEMS_FILE = "items.jsonl"
RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.json"

QuestionType = Literal["yes_no", "closed", "open", "multiple_choice", "grounding"]


class ItemRecord(BaseModel):
    """One answered (or failed) benchmark item in one mode."""

    item_id: str
    benchmark: str
    mode: str
    question_type: QuestionType
    modality: str | None = None
    category: str | None = None
    prompt_hash: str
    prompt: str
    answer: str = ""
    raw_answer: str | None = None
    input_size: tuple[int, int] | None = None
    extracted: str | None = None
    correct: bool | None = None
    verdict: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    fingerprint: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the item was answered (a wrong answer is still ok)."""
        return self.error is None


class EvalStore:
    """Reads and writes one evaluation's output folder (the module's layout)."""

    def __init__(self, out: str | Path):
        self.root = Path(out).expanduser()
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Create the folder and remove temporary files a killed run left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        for tmp in self.root.rglob(_TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def mode_dir(self, benchmark: str, mode: str) -> Path:
        """The folder of one benchmark in one mode."""
        return self.root / benchmark / mode

    def items_path(self, benchmark: str, mode: str) -> Path:
        """Where the item records of one benchmark and mode are."""
        return self.mode_dir(benchmark, mode) / ITEMS_FILE

    def read_items(self, benchmark: str, mode: str) -> dict[str, ItemRecord]:
        """The records on disk by item id (a later line wins); torn lines are skipped."""
        path = self.items_path(benchmark, mode)
        found: dict[str, ItemRecord] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return found
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = ItemRecord.model_validate_json(line)
            except (ValidationError, ValueError):
                continue  # the line a killed run was writing
            found[rec.item_id] = rec
        return found

    def write_items(self, benchmark: str, mode: str, records: Iterable[ItemRecord]) -> None:
        """Rewrite ``items.jsonl`` atomically with exactly these records, in this order."""
        text = "".join(r.model_dump_json() + "\n" for r in records)
        with self._lock:
            atomic_write(self.items_path(benchmark, mode), text)

    def append_item(self, record: ItemRecord) -> None:
        """Append one finished record to its ``items.jsonl`` and sync it to disk."""
        path = self.items_path(record.benchmark, record.mode)
        line = (record.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

    def write_json(self, relative: str | Path, data: Any) -> None:
        """Write a JSON file under the folder atomically."""
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
        atomic_write(self.root / relative, text)

    def read_json(self, relative: str | Path) -> Any:
        """A JSON file under the folder, or ``None`` when it is absent."""
        try:
            return json.loads((self.root / relative).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def benchmark_file(self, benchmark: str, mode: str, name: str) -> Path:
        """Where one of a benchmark's files (``results.json``, ``metrics.json``) is."""
        return self.mode_dir(benchmark, mode) / name
