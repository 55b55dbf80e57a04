"""Reading review cases from YAML, JSON, CSV or a folder (what a case is: :mod:`.cases`).

A case has an id, one or more images (with window/slice/frame/plane options), optional
clinical context and questions, and optional expected answers, labels or boxes. Image
paths are relative to the file (or folder) the cases came from.

YAML/JSON: a list of cases, or a mapping with ``cases:`` and optionally ``steps:``::

    steps: [{ground: nodule}, {vqa: "What is the {label} at {box}?", for_each: box}, report]
    cases:
      - id: case-001
        images: [{path: ct/series01, window: lung}]
        context: 67M, smoker, cough for 3 weeks
        questions:
          - {question: "Is there a nodule?", expected: "yes"}
        expected_labels: [Nodule]
        expected_boxes: [{label: nodule, x1: 100, y1: 120, x2: 160, y2: 170}]

CSV: one row per case (rows repeating an id add questions); columns ``id``, ``image``
(several separated by ``;``), ``window``, ``slice``, ``frame``, ``plane``, ``context``,
``question``, ``options`` and ``expected_answer``, ``labels``, ``targets`` and
``expected_labels`` (separated by ``|``), ``expected_boxes`` (JSON, or
``label:x1,y1,x2,y2`` separated by ``;``).

Folder: one sub-folder per case, named by its id, holding either a ``case.yaml`` /
``case.json`` (same fields as above; paths relative to the sub-folder) or just its
images (a nested folder of DICOM files is one series; several loose DICOM files are one
series too), with optional ``context.txt`` and ``questions.txt`` (one question a line).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from .cases import Case, CaseFile, _build_case

__all__ = ["from_csv", "from_folder", "load_case_file", "load_cases"]

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


def load_cases(source: str | Path) -> list[Case]:
    """Read cases from a YAML, JSON or CSV file, or a folder with one sub-folder per case.

    Raises:
        InputError: The source is missing, unreadable or malformed; the message names the
            file and the case.
    """
    return load_case_file(source).cases


def load_case_file(source: str | Path) -> CaseFile:
    """Like :func:`load_cases`, also returning the ``steps:`` a YAML/JSON file names."""
    path = Path(source).expanduser()
    if path.is_dir():
        cases = from_folder(path)
        steps = None
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv":
            cases, steps = from_csv(path), None
        elif suffix in (".yaml", ".yml", ".json"):
            cases, steps = _from_mapping(_read_structured(path), path, path.parent)
        else:
            raise InputError(
                f"Cannot tell what kind of cases file {path.name!r} is.",
                input=str(path),
                fix="Use a .yaml, .yml, .json or .csv file, or a folder with one sub-folder "
                "per case.",
            )
    else:
        raise InputError(
            f"Cases not found: {str(path)!r} does not exist.",
            input=str(path),
            fix="Pass a YAML/JSON/CSV cases file or a folder of case sub-folders.",
        )
    _check_unique(cases, path)
    if not cases:
        raise InputError(
            f"No cases in {str(path)!r}.", input=str(path), fix="Add at least one case."
        )
    return CaseFile(cases=cases, steps=steps, source=str(path))


def _read_structured(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"Cannot read cases file {str(path)!r}: {exc}.",
            input=str(path),
            fix="Check that the file exists, is readable and is UTF-8 text.",
        ) from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise different error types
        raise InputError(
            f"Cases file {str(path)!r} is not valid {path.suffix.lstrip('.').upper()}: {exc}",
            input=str(path),
            fix="Fix the syntax error at the position given.",
        ) from exc


def _from_mapping(data: Any, path: Path, base: Path) -> tuple[list[Case], Any]:
    steps = None
    if isinstance(data, dict):
        if "cases" not in data:
            raise InputError(
                f"Cases file {str(path)!r} has no 'cases' list.",
                input=str(path),
                fix="Give a list of cases, or a mapping with a 'cases:' list (and 'steps:').",
            )
        unknown = set(data) - {"cases", "steps"}
        if unknown:
            raise InputError(
                f"Cases file {str(path)!r} has unknown top-level key(s): "
                f"{', '.join(sorted(unknown))}.",
                input=str(path),
                fix="Only 'cases' and 'steps' are allowed at the top level.",
            )
        steps, data = data.get("steps"), data["cases"]
    if not isinstance(data, list):
        raise InputError(
            f"Cases file {str(path)!r} must hold a list of cases.",
            input=str(path),
            fix="Write the cases as a list (YAML '- id: ...' items or a JSON array).",
        )
    return [_build_case(item, path, i, base) for i, item in enumerate(data)], steps


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


def _check_unique(cases: list[Case], source: Path) -> None:
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise InputError(
                f"Case id {case.id!r} appears twice in {str(source)!r}.",
                input=case.id,
                fix="Give every case a unique id (results are filed by id).",
            )
        seen.add(case.id)
