"""Review cases: what one case is (images with window/slice/frame/plane options, optional
clinical context and questions, and optional expected answers, labels or boxes).

Reading cases from YAML, JSON, CSV or a folder is :mod:`medmo_agent.review.case_sources`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..errors import InputError

__all__ = ["Case", "CaseFile", "ExpectedBox", "ImageSpec", "Question"]


class ImageSpec(BaseModel):
    """One image of a case and how to render it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Image file or DICOM series folder, relative to the cases.")
    window: str | None = Field(None, description="CT window: preset name, WIDTH/LEVEL, auto.")
    slice: int | None = None
    frame: int | None = None
    plane: Literal["axial", "coronal", "sagittal"] | None = None

    def options(self) -> dict[str, Any]:
        """The rendering options that were set, as keyword arguments for the toolkit."""
        opts = {"window": self.window, "slice": self.slice, "frame": self.frame}
        opts["plane"] = self.plane
        return {k: v for k, v in opts.items() if v is not None}


class Question(BaseModel):
    """A question to ask about one image of the case, with its expected answer if known."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    options: list[str] | None = Field(None, description="Answer choices (multiple choice).")
    expected: str | None = Field(None, description="Expected answer: text, yes/no, or a letter.")
    image: int = Field(0, ge=0, description="Index of the image the question is about.")


class ExpectedBox(BaseModel):
    """A reference box in original-image pixels."""

    model_config = ConfigDict(extra="forbid")

    label: str = ""
    x1: float
    y1: float
    x2: float
    y2: float
    image: int = Field(0, ge=0, description="Index of the image the box is on.")

    @model_validator(mode="after")
    def _ordered(self) -> ExpectedBox:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError("a box needs x1 < x2 and y1 < y2")
        return self


class Case(BaseModel):
    """One case of a review.

    Shorthands are accepted: ``image: path`` for a single image, plain strings for images
    and questions, ``expected: {answers, labels, boxes}`` for the expectations.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    images: list[ImageSpec] = Field(min_length=1)
    context: str | None = Field(None, description="Clinical context, e.g. '67M, smoker'.")
    questions: list[Question] = Field(default_factory=list)
    targets: list[str] | None = Field(None, description="What ground steps look for.")
    labels: list[str] | None = Field(None, description="Candidate labels for classify steps.")
    expected_labels: list[str] | None = None
    expected_boxes: list[ExpectedBox] | None = None

    _base: Path = PrivateAttr(default_factory=Path)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "id" in data and not isinstance(data["id"], str):
            data["id"] = str(data["id"])
        if "image" in data:
            if "images" in data:
                raise ValueError("give either 'image' or 'images', not both")
            data["images"] = [data.pop("image")]
        if isinstance(data.get("images"), (str, dict)):
            data["images"] = [data["images"]]
        data["images"] = [{"path": i} if isinstance(i, str) else i for i in data.get("images", [])]
        questions = data.get("questions")
        if "question" in data:
            questions = [data.pop("question"), *(questions or [])]
        if isinstance(questions, (str, dict)):
            questions = [questions]
        data["questions"] = [{"question": q} if isinstance(q, str) else q for q in questions or []]
        for key in ("targets", "labels", "expected_labels"):
            if isinstance(data.get(key), str):
                data[key] = [data[key]]
        expected = data.pop("expected", None)
        if isinstance(expected, dict):
            answers = expected.get("answers", expected.get("answer"))
            if answers is not None:
                answers = answers if isinstance(answers, list) else [answers]
                if len(answers) != len(data["questions"]):
                    raise ValueError(
                        f"{len(answers)} expected answer(s) for "
                        f"{len(data['questions'])} question(s)"
                    )
                data["questions"] = [
                    {**q, "expected": None if a is None else str(a)}
                    for q, a in zip(data["questions"], answers, strict=False)
                ]
            for key in ("labels", "boxes"):
                if expected.get(key) is not None:
                    value = expected[key]
                    data[f"expected_{key}"] = [value] if isinstance(value, str) else value
        elif expected is not None:
            raise ValueError("'expected' must be a mapping with answers, labels or boxes")
        return data

    @model_validator(mode="after")
    def _indexes(self) -> Case:
        n = len(self.images)
        for q in self.questions:
            if q.image >= n:
                raise ValueError(f"question {q.question!r} is about image {q.image}, of {n}")
        for b in self.expected_boxes or []:
            if b.image >= n:
                raise ValueError(f"an expected box is on image {b.image}, of {n}")
        return self

    def with_base(self, base: str | Path) -> Case:
        """This case with relative image paths resolved against ``base``."""
        self._base = Path(base)
        return self

    def image_path(self, index: int) -> str:
        """Where image ``index`` is on disk (relative paths resolved against the cases)."""
        path = Path(self.images[index].path).expanduser()
        return str(path if path.is_absolute() else self._base / path)

    def digest(self) -> str:
        """A short hash of the case as written: a changed case is reviewed again."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def has_expectations(self) -> bool:
        """Whether any agreement figure can be computed for this case."""
        return bool(
            self.expected_labels is not None
            or self.expected_boxes is not None
            or any(q.expected is not None for q in self.questions)
        )


class CaseFile(BaseModel):
    """What a cases source holds: the cases, and the steps it asks for (if any)."""

    cases: list[Case]
    steps: Any = None
    source: str = ""


def _build_case(item: Any, path: Path, index: int, base: Path) -> Case:
    name = item.get("id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
    try:
        return Case.model_validate(item).with_base(base)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'case'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InputError(
            f"Case {name} in {str(path)!r} is invalid: {problems}.",
            input=f"{path}:{name}",
            fix="Each case needs an 'id' and 'images'; questions are {question, expected}, "
            "expected_labels a list, expected_boxes {label, x1, y1, x2, y2} in pixels (the "
            "format `medmo review --help` and the README show).",
        ) from exc
