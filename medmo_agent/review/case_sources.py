"""Cases from a CSV file or from a folder with one sub-folder per case.

See :mod:`medmo_agent.review.cases` for the columns and the folder layout.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from .cases import Case, _build_case, _read_structured

__all__ = ["from_csv", "from_folder"]

_IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".webp",
    ".gif",
    ".dcm",
    ".dicom",
    ".ima",
    ".nii",
    ".nii.gz",
)
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_CASE_FILES = ("case.yaml", "case.yml", "case.json")


def _split(value: str | None, sep: str) -> list[str]:
    return [p.strip() for p in (value or "").split(sep) if p.strip()]


def _parse_csv_boxes(text: str, where: str) -> list[dict[str, Any]]:
    text = text.strip()
    if text.startswith("["):
        try:
            boxes = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"expected_boxes of {where} is not valid JSON: {exc}.",
                input=where,
                fix='Write e.g. [{"label": "nodule", "x1": 10, "y1": 20, "x2": 50, "y2": 60}].',
            ) from exc
        keys = ("x1", "y1", "x2", "y2")
        return [dict(zip(keys, b, strict=False)) if isinstance(b, list) else b for b in boxes]
    out = []
    for part in _split(text, ";"):
        label, _, coords = part.rpartition(":")
        try:
            x1, y1, x2, y2 = (float(v) for v in coords.split(","))
        except ValueError as exc:
            raise InputError(
                f"expected_boxes of {where} has a malformed box {part!r}.",
                input=where,
                fix="Write boxes as label:x1,y1,x2,y2 separated by ';'.",
            ) from exc
        out.append({"label": label.strip(), "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return out


def from_csv(path: Path) -> list[Case]:
    """Cases from a CSV file: one row per case; rows repeating an id add questions."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(
            f"Cannot read cases CSV {str(path)!r}: {exc}.",
            input=str(path),
            fix="Check that the file is a readable UTF-8 CSV with a header row.",
        ) from exc
    merged: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        case_id = row.get("id", "")
        where = f"{path}:{line}"
        if not case_id:
            raise InputError(
                f"Row {line} of {str(path)!r} has no id.",
                input=where,
                fix="Give every row an 'id' column value.",
            )
        item = merged.setdefault(case_id, {"id": case_id, "questions": []})
        images = _split(row.get("image") or row.get("images"), ";")
        if images and "images" not in item:
            opts = {k: row[k] for k in ("window", "plane") if row.get(k)}
            for key in ("slice", "frame"):
                if row.get(key):
                    try:
                        opts[key] = int(row[key])
                    except ValueError as exc:
                        raise InputError(
                            f"Row {line} of {str(path)!r}: {key} {row[key]!r} is not a number.",
                            input=where,
                            fix=f"Write the {key} index as a whole number.",
                        ) from exc
            item["images"] = [{"path": p, **opts} for p in images]
        if row.get("context"):
            item["context"] = row["context"]
        if row.get("question"):
            q: dict[str, Any] = {"question": row["question"]}
            if row.get("options"):
                q["options"] = _split(row["options"], "|")
            if row.get("expected_answer"):
                q["expected"] = row["expected_answer"]
            item["questions"].append(q)
        for key in ("labels", "targets", "expected_labels"):
            if row.get(key):
                item[key] = _split(row[key], "|")
        if row.get("expected_boxes"):
            item["expected_boxes"] = _parse_csv_boxes(row["expected_boxes"], where)
    return [_build_case(item, path, i, path.parent) for i, item in enumerate(merged.values())]


def _is_image(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and not name.startswith(".") and name.endswith(_IMAGE_SUFFIXES)


def from_folder(root: Path) -> list[Case]:
    """Cases from a folder: each sub-folder is a case named by the folder."""
    cases = []
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for i, sub in enumerate(subdirs):
        case_file = next((sub / n for n in _CASE_FILES if (sub / n).is_file()), None)
        if case_file is not None:
            data = _read_structured(case_file)
            if isinstance(data, dict):
                data.setdefault("id", sub.name)
            cases.append(_build_case(data, case_file, i, sub))
            continue
        item: dict[str, Any] = {"id": sub.name, "images": _folder_images(sub)}
        if not item["images"]:
            raise InputError(
                f"Case folder {str(sub)!r} holds no image.",
                input=str(sub),
                fix="Put the case's images (or a DICOM series folder) in it, or a case.yaml.",
            )
        if (sub / "context.txt").is_file():
            item["context"] = (sub / "context.txt").read_text(encoding="utf-8").strip()
        if (sub / "questions.txt").is_file():
            lines = (sub / "questions.txt").read_text(encoding="utf-8").splitlines()
            item["questions"] = [q.strip() for q in lines if q.strip()]
        cases.append(_build_case(item, sub, i, sub))
    return cases


def _folder_images(sub: Path) -> list[str]:
    files = sorted(p for p in sub.iterdir() if _is_image(p))
    dicoms = [p for p in files if p.name.lower().endswith(_DICOM_SUFFIXES)]
    images = [p.name for p in files if p not in dicoms]
    if len(dicoms) == 1:
        images.insert(0, dicoms[0].name)
    elif dicoms:
        images.insert(0, ".")  # loose DICOM files of one series: the folder is the image
    nested = sorted(p for p in sub.iterdir() if p.is_dir() and not p.name.startswith("."))
    images.extend(p.name for p in nested)
    return images
