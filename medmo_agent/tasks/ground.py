"""Grounding: boxes for named findings or anatomy, or for every abnormality."""

from __future__ import annotations

from ..errors import InputError
from ..types import MedImage, Message
from ._common import image_kind, render, system_message, user_message
from .boxes import parse_boxes
from .declare import TaskCore, task
from .params import (
    Generation,
    ImageParam,
    TargetsParam,
    View,
)
from .results import GroundingResult

__all__ = ["build_messages", "ground", "normalize_targets", "parse"]


def normalize_targets(targets: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Targets as a clean list; a string may list several, separated by commas or newlines.

    Raises:
        InputError: targets of the wrong type.
    """
    if targets is None:
        return []
    if isinstance(targets, str):
        targets = [t for part in targets.split("\n") for t in part.split(",")]
    if not isinstance(targets, (list, tuple)):
        raise InputError(
            f"Targets must be a list of findings or anatomy names, not {type(targets).__name__}.",
            input="targets",
            fix='Pass e.g. ["left lung", "heart"], or nothing to find all abnormalities.',
        )
    out: list[str] = []
    for t in targets:
        t = str(t).strip()
        if t and t.lower() not in (o.lower() for o in out):
            out.append(t)
    return out


def build_messages(
    image: MedImage, targets: str | list[str] | tuple[str, ...] | None = None
) -> list[Message]:
    """Messages asking for boxes in pixel values, worded as MedMO was trained: the named
    ``targets``, or every visible abnormality when there are none."""
    names = normalize_targets(targets)
    kind = image_kind(image)
    if names:
        text = render("ground_targets", image_kind=kind, targets=", ".join(names))
    else:
        text = render("ground_all", image_kind=kind)
    return [system_message(), user_message(text, image)]


def parse(
    text: str,
    *,
    input_size: tuple[int, int] | None,
    original_size: tuple[int, int],
    pixel_spacing: tuple[float, float] | None = None,
    targets: str | list[str] | tuple[str, ...] | None = None,
) -> GroundingResult:
    """Boxes in original-image pixels; never raises on model output.

    Args:
        text: The model's answer.
        input_size: (width, height) the model saw (``Completion.image_input_sizes``).
        original_size: (width, height) of the original image.
        pixel_spacing: (row, column) mm per pixel, when known.
        targets: What was asked for (unlabelled boxes take the only target's name).
    """
    try:
        names = normalize_targets(targets)
    except InputError:
        names = []
    default = names[0] if len(names) == 1 else "finding"
    found = parse_boxes(
        text,
        input_size=input_size,
        original_size=original_size,
        default_label=default,
        pixel_spacing=pixel_spacing,
    )
    return GroundingResult(
        raw_text=text,
        targets=names,
        boxes=found.boxes,
        found=found.found,
        coordinate_space=found.coordinate_space,
        image_size=(int(original_size[0]), int(original_size[1])),
        notes=found.notes,
    )


@task(
    name="ground",
    title="Localise findings with boxes",
    summary="localise findings or anatomy with boxes",
    result=GroundingResult,
    main="targets",
    boxes=True,
)
def ground(
    core: TaskCore,
    image: ImageParam,
    targets: TargetsParam = None,
    *,
    view: View,
    gen: Generation,
) -> GroundingResult:
    """Localise findings or anatomy in a medical image with labelled bounding boxes.

    Use to answer "where": where a lesion, fracture, nodule or organ is: named targets
    ("nodule", "left lung", "fracture") or, with no targets, every visible abnormality.
    Boxes come back in the original image's pixel coordinates (x1, y1, x2, y2, origin
    top-left) and normalised 0-1, with sizes in mm when the pixel spacing is known.
    `found` is false when the model saw nothing. For many small objects of one kind
    (cells, bacteria) use `detect` instead.

    Returns:
        `boxes` (label and coordinates), `found` (False when the model reported no
        finding), the image size, and notes on anything repaired or dropped.
    """
    names = normalize_targets(targets)
    return core.boxes(
        lambda img: build_messages(img, names),
        parse,
        image,
        view,
        gen,
        targets=names,
    )
