"""The review's output folder, written so that a crash never corrupts finished work.

Layout::

    OUT/
      run.json                 provenance and settings of the latest run
      results.jsonl            one record per case of the cases file (rebuilt from the
                               case folders at the end of every run)
      summary.csv              one row per case
      agreement.json           figures against the expected values
      report.html              self-contained report, browsable offline
      cases/<case>/record.json the case's record and trace: written last, marks it done
      cases/<case>/overlay-<i>.png, report.md

Every file is written to a temporary name in the same folder, flushed to disk, then
renamed over the target (``os.replace`` is atomic on POSIX and Windows). A case whose
``record.json`` is absent was in flight and is redone; ``results.jsonl`` is rebuilt from
the records, so each case appears in it exactly once.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .records import CaseRecord

__all__ = ["ReviewStore", "atomic_write"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TMP_PREFIX = ".tmp-"


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ReviewStore:
    """Reads and writes one review's output folder."""

    def __init__(self, out: str | Path):
        self.root = Path(out).expanduser()
        self.cases_dir = self.root / "cases"

    def prepare(self) -> None:
        """Create the folder and remove temporary files a killed run left behind."""
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.root.rglob(_TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    @staticmethod
    def folder_name(case_id: str) -> str:
        """A file-system-safe folder name for a case id, unique per id."""
        safe = _UNSAFE.sub("_", case_id).strip("._") or "case"
        if safe != case_id:
            safe = f"{safe[:80]}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}"
        return safe

    def case_dir(self, case_id: str) -> Path:
        """The folder of one case's files."""
        return self.cases_dir / self.folder_name(case_id)

    def record_path(self, case_id: str) -> Path:
        """Where a case's record is (its presence marks the case done)."""
        return self.case_dir(case_id) / "record.json"

    def read_record(self, case_id: str) -> CaseRecord | None:
        """A case's record, or ``None`` when there is none or it is unreadable."""
        return _read(self.record_path(case_id))

    def write_file(self, case_id: str, name: str, data: bytes | str) -> str:
        """Write one of a case's files atomically; returns its name."""
        atomic_write(self.case_dir(case_id) / name, data)
        return name

    def write_record(self, record: CaseRecord) -> None:
        """Write a case's record last, atomically: from now on the case counts as done."""
        atomic_write(self.record_path(record.id), record.model_dump_json(indent=2) + "\n")

    def records(self, order: Iterable[str] = ()) -> list[CaseRecord]:
        """All records in the folder: cases named in ``order`` first, in that order, then
        the rest by id."""
        found: dict[str, CaseRecord] = {}
        if self.cases_dir.is_dir():
            for path in sorted(self.cases_dir.glob("*/record.json")):
                rec = _read(path)
                if rec is not None:
                    found[rec.id] = rec
        ordered = [found.pop(i) for i in order if i in found]
        return ordered + [found[k] for k in sorted(found)]

    def write_results(self, records: list[CaseRecord]) -> None:
        """Rebuild ``results.jsonl``: one line per case."""
        lines = "".join(r.model_dump_json() + "\n" for r in records)
        atomic_write(self.root / "results.jsonl", lines)

    def write_json(self, name: str, data: Any) -> None:
        """Write a JSON file at the top of the folder."""
        atomic_write(self.root / name, json.dumps(data, indent=2, default=str) + "\n")

    def write_summary(self, records: list[CaseRecord]) -> None:
        """Write ``summary.csv``: one row per case with its status and main outputs."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(SUMMARY_COLUMNS)
        for rec in records:
            writer.writerow(summary_row(rec))
        atomic_write(self.root / "summary.csv", buf.getvalue())


SUMMARY_COLUMNS = (
    "id",
    "status",
    "error",
    "seconds",
    "images",
    "steps",
    "boxes",
    "labels",
    "answers",
    "impression",
    "answer_accuracy",
    "label_f1",
    "mean_iou",
    "model",
    "started_at",
)


def _first_line(text: str, limit: int = 200) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def summary_row(rec: CaseRecord) -> list[Any]:
    """One CSV row for a case."""
    out, agr = rec.outputs or {}, rec.agreement or {}
    reports = out.get("reports", [])
    impression = next((r["impression"] or r["findings"] for r in reports if r), "")
    answers = "; ".join(a.get("answer", "") for a in out.get("answers", []))
    if not answers and out.get("final_answer"):
        answers = out["final_answer"]
    ans = agr.get("answers")
    lab = agr.get("labels")
    box = agr.get("boxes")
    err = rec.error or {}
    return [
        rec.id,
        rec.status,
        _first_line(err.get("message", "")) if err else "",
        f"{rec.seconds:.2f}",
        len(rec.images),
        len(rec.steps),
        sum(len(b) for b in out.get("boxes", [])),
        "|".join(out.get("labels", [])),
        _first_line(answers),
        _first_line(impression),
        f"{ans['correct'] / ans['n']:.3f}" if ans and ans["n"] else "",
        f"{lab['f1']:.3f}" if lab and lab.get("measured") and lab.get("f1") is not None else "",
        f"{box['mean_iou']:.3f}"
        if box and box.get("measured") and box["mean_iou"] is not None
        else "",
        rec.provenance.model,
        rec.started_at,
    ]


def _read(path: Path) -> CaseRecord | None:
    try:
        return CaseRecord.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None
