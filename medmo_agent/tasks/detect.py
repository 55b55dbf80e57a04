"""Detection of many small objects (cells, bacteria, lesions): boxes and counts."""

from __future__ import annotations

import re
from collections import Counter

from ..errors import InputError
from ..types import MedImage, Message
from ._common import render, system_message, user_message
from .boxes import parse_boxes
from .declare import TaskCore, task
from .params import (
    Generation,
    ImageParam,
    LabelParam,
    View,
)
from .results import DetectionResult

__all__ = ["build_messages", "check_label", "detect", "parse", "plural"]

_IRREGULAR = {
    "bacterium": "bacteria",
    "bacteria": "bacteria",
    "nucleus": "nuclei",
    "nuclei": "nuclei",
    "mitosis": "mitoses",
    "mitoses": "mitoses",
    "bacterial cell": "bacterial cells",
}


def plural(label: str) -> str:
    """English plural of a label, for the prompt ('cell' -> 'cells', 'nucleus' -> 'nuclei')."""
    low = label.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if re.search(r"(s|x|z|ch|sh)$", low):
        return label + "es"
    if re.search(r"[^aeiou]y$", low):
        return label[:-1] + "ies"
    return label + "s"


def check_label(label: str) -> str:
    """The label, stripped.

    Raises:
        InputError: the label is empty.
    """
    if not isinstance(label, str) or not label.strip():
        raise InputError(
            "The object label is empty.",
            input="label",
            fix="Name what to detect, e.g. 'cell', 'bacteria', 'lesion'.",
        )
    return label.strip()


def build_messages(image: MedImage, label: str = "cell") -> list[Message]:
    """Messages asking for a box around every ``label`` in pixel values, as MedMO was
    trained on microscopy and lesion data.

    Raises:
        InputError: empty label.
    """
    label = check_label(label)
    text = render("detect", label=label, plural=plural(label))
    return [system_message(), user_message(text, image)]


def parse(
    text: str,
    *,
    input_size: tuple[int, int] | None,
    original_size: tuple[int, int],
    pixel_spacing: tuple[float, float] | None = None,
    label: str = "cell",
) -> DetectionResult:
    """Boxes in original-image pixels and counts per label; never raises on model output."""
    default = label.strip() if isinstance(label, str) and label.strip() else "object"
    found = parse_boxes(
        text,
        input_size=input_size,
        original_size=original_size,
        default_label=default,
        pixel_spacing=pixel_spacing,
    )
    return DetectionResult(
        raw_text=text,
        targets=[default],
        boxes=found.boxes,
        found=found.found,
        coordinate_space=found.coordinate_space,
        image_size=(int(original_size[0]), int(original_size[1])),
        counts=dict(Counter(b.label for b in found.boxes)),
        notes=found.notes,
    )


@task(
    name="detect",
    title="Detect and count objects",
    summary="detect and count many small objects (cells, bacteria, lesions)",
    result=DetectionResult,
    main="label",
    boxes=True,
)
def detect(
    core: TaskCore,
    image: ImageParam,
    label: LabelParam = "cell",
    *,
    view: View,
    gen: Generation,
) -> DetectionResult:
    """Detect and count many small objects of one kind: cells, bacteria, nuclei, lesions,
    polyps.

    Use on microscopy, pathology or any image with many instances to box and count; use
    `ground` for a few named findings instead. Dense images may need a larger
    `max_new_tokens` (each box costs about 20 tokens).

    Returns:
        `boxes` in original-image pixels (and normalised 0-1) and `counts` per label.
    """
    label = check_label(label)  # before loading the image
    result = core.boxes(
        lambda img: build_messages(img, label),
        parse,
        image,
        view,
        gen,
        label=label,
    )
    assert isinstance(result, DetectionResult)
    return result
