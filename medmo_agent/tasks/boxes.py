"""THE box parser: every box shape MedMO (or its Qwen3-VL base) writes, to original pixels.

MedMO answers boxes in many shapes (see the golden tests for each)::

    Fractures <box>[[156, 516, 231, 607], [240, 529, 296, 581]]</box>
    Cell: [ [10, 20, 30, 40], [50, 60, 70, 80] ]
    fracture: [ 10, 20, 30, 40 ]                         (one per line)
    <answer>\\nLabel: <box> 10, 20, 30, 40 </box>\\n</answer>
    Cell: <box> [ 10, 20, 30, 40 ] [ 50, 60, 70, 80 ] </box>
    {"detections": [{"label": "liver", "bbox": [10, 20, 30, 40]}]}
    Difference detected: [ [10, 20, 30, 40] ]
    [{"bbox_2d": [100, 200, 300, 400], "label": "nodule"}]  (Qwen, 0-1000 grid)
    No Finding / No bacteria found. / No disease found      (negatives)

How it reads them: JSON-like objects (``{... "bbox": [..] ...}``, fenced or not, even when
the list around them is truncated) are read first, by their keys; then every other group
of four numbers in brackets, in a ``<box>`` tag or as ``(x1,y1),(x2,y2)`` is a box whose
label is the text just before it (boxes separated only by brackets, commas or tags share
the label before the first one).

Coordinate space (:func:`detect_space`): MedMO was trained on pixels of the image it was
shown, Qwen3-VL answers ``bbox_2d`` on a 0-1000 grid. The rule, in order:

1. any coordinate above 1000 -> ``pixel`` (a 0-1000 answer cannot exceed 1000);
2. any box given under a ``bbox_2d`` key -> ``relative_1000`` (Qwen's own format);
3. every coordinate inside the model-input image -> ``pixel`` (MedMO's training format);
4. otherwise (coordinates beyond the input image yet all <= 1000) -> ``relative_1000``,
   since a pixel answer would not point outside the image it describes.

Pixel answers are scaled from ``input_size`` (the (width, height) the model actually saw,
``Completion.image_input_sizes``) to ``original_size``; then corners are ordered, boxes
clipped to the image, and boxes with no area left dropped with a note. The parser never
raises on model output: junk gives no boxes and a note.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, SupportsInt, TypeGuard, cast

from ..errors import InputError
from ..types import Box
from ._text import remove_closed_blocks, strip_edges

__all__ = ["BoxParse", "RawBox", "detect_space", "extract_raw_boxes", "parse_boxes"]

CoordinateSpace = Literal["pixel", "relative_1000", "none"]

_NUM = r"[-+]?\d+(?:\.\d+)?"
_SEP = r"(?:\s*[,;]\s*|\s+)"
_QUAD = rf"({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})"
#: A box: ``[a, b, c, d]``; ``<box> a, b, c, d </box>`` (closing tag optional when the answer
#: was cut off); or Qwen2-style ``(a, b), (c, d)``.
_BOX_RE = re.compile(
    rf"\[\s*{_QUAD}\s*,?\s*\]"
    rf"|<box>\s*{_QUAD}\s*,?\s*(?=</box>|\n|$)"
    rf"|\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)"
)
#: Innermost JSON-like objects; detections are always leaves of the JSON tree.
_OBJECT_RE = re.compile(r"\{[^{}]*\}")
_BOX_KEY_RE = re.compile(
    r"[\"']?(bbox_2d|bbox|box_2d|box|bounding_box|boundingbox|coordinates|coords|xyxy)[\"']?\s*:",
    re.IGNORECASE,
)
_LABEL_KEY_RE = re.compile(
    r"[\"']?(label|name|class|category|finding|object|type)[\"']?\s*:\s*[\"']([^\"']*)[\"']",
    re.IGNORECASE,
)
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<\|?/?[a-zA-Z_]+\|?>")
_NEGATIVE_RE = re.compile(
    r"\bno\s+(?:\w+\s+){0,3}?(?:findings?|abnormalit(?:y|ies)|diseases?|lesions?|bacteri(?:a|um)"
    r"|cells?|objects?|nodules?|masses|fractures?|detections?|differences?|regions?)\b"
    r"|\b(?:none|nothing)\s+(?:found|detected|seen|visible|identified)\b"
    r"|\bnot\s+(?:found|detected|present|visible|identified|seen)\b"
    # [^\w\n] rather than \W: \W also crosses newlines, so a run of blank lines would be
    # rescanned from every line start (quadratic)
    r"|^[^\w\n]*none[^\w\n]*$|^[^\w\n]*normal[^\w\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
_MAX_LABEL = 80
#: Characters trimmed from both ends of a label (with whitespace).
_LABEL_EDGES = ":=-[](){},.;"


@dataclass(frozen=True)
class RawBox:
    """A box as the model wrote it, before any mapping."""

    label: str
    coords: tuple[float, float, float, float]
    qwen_key: bool = False  # given under a ``bbox_2d`` key


@dataclass
class BoxParse:
    """What :func:`parse_boxes` found.

    Attributes:
        boxes: Boxes in original-image pixels (and 0-1), clipped, positive area.
        coordinate_space: How the model answered: ``pixel``, ``relative_1000`` or ``none``.
        found: Whether the model reported anything (False for "No Finding" and empty text).
        notes: Remarks on what was repaired, dropped or guessed.
    """

    boxes: list[Box] = field(default_factory=list)
    coordinate_space: CoordinateSpace = "none"
    found: bool = False
    notes: list[str] = field(default_factory=list)


def answer_region(text: str) -> str:
    """The part of a reply that holds the answer: inside ``<answer>`` when present, else the
    text with ``<think>`` blocks removed (the whole text if nothing else is left)."""
    m = _ANSWER_RE.search(text)
    if m and m.group(1).strip():
        return m.group(1)
    stripped = remove_closed_blocks(text, "think")
    return stripped if stripped.strip() else text


def _clean_label(segment: str) -> str:
    """The label a box follows: the last line with letters in ``segment``, tidied."""
    segment = _TAG_RE.sub(" ", segment)
    lines = [ln for ln in re.split(r"[\n\r]+", segment) if re.search(r"[A-Za-z]", ln)]
    if not lines:
        return ""
    label = lines[-1]
    label = re.sub(r"^[\s\-*•#>\d.)]+(?=\D)", "", label)  # list markers
    label = re.sub(r"[\"'`*_]+", " ", label)
    label = strip_edges(label, _LABEL_EDGES)
    label = re.sub(r"\s+", " ", label).strip()
    if len(label) > _MAX_LABEL:
        label = strip_edges(label[-_MAX_LABEL:].split(" ", 1)[-1], _LABEL_EDGES)
    return label


def _floats(groups: tuple[str | None, ...]) -> tuple[float, float, float, float] | None:
    vals = [g for g in groups if g is not None]
    if len(vals) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in vals)
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    return x1, y1, x2, y2


def extract_raw_boxes(text: str) -> list[RawBox]:
    """All boxes written in ``text``, with their labels, in the model's own coordinates."""
    region = answer_region(text)
    raws: list[tuple[int, RawBox]] = []
    masked = list(region)

    for obj in _OBJECT_RE.finditer(region):
        body = obj.group(0)
        key = _BOX_KEY_RE.search(body)
        if not key:
            continue
        label_m = _LABEL_KEY_RE.search(body)
        label = label_m.group(2).strip() if label_m else ""
        qwen = key.group(1).lower() in ("bbox_2d", "box_2d")
        for m in _BOX_RE.finditer(body, key.end()):
            coords = _floats(m.groups())
            if coords is not None:
                raws.append((obj.start() + m.start(), RawBox(label, coords, qwen)))
        masked[obj.start() : obj.end()] = " " * (obj.end() - obj.start())

    rest = "".join(masked)
    prev_end = 0
    prev_label = ""
    for m in _BOX_RE.finditer(rest):
        coords = _floats(m.groups())
        if coords is None:
            continue
        between = rest[prev_end : m.start()]
        if re.search(r"[A-Za-z]", _TAG_RE.sub(" ", between)):
            prev_label = _clean_label(between)
        raws.append((m.start(), RawBox(prev_label, coords)))
        prev_end = m.end()

    raws.sort(key=lambda item: item[0])
    return [r for _, r in raws]


def _checked_input_size(size: object) -> tuple[int, int]:
    """``size`` as (width, height) in whole pixels, or a clear error."""
    w: object
    h: object
    try:
        w, h = cast("Iterable[object]", size)  # not iterable or not two: refused below
    except (TypeError, ValueError):
        w = h = None
    if not (_whole_above_zero(w) and _whole_above_zero(h)):
        raise InputError(
            f"The model-input size must be (width, height) in whole pixels above 0; got {size!r}.",
            input="input_size",
            fix="Pass the size the model saw (Completion.image_input_sizes), or None when it "
            "is unknown (the original size is then assumed).",
        )
    return int(w), int(h)


def _whole_above_zero(value: object) -> TypeGuard[SupportsInt]:
    """Whether ``value`` is a real number (not a bool) that is whole and above 0."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and float(value).is_integer()
        and float(value) > 0
    )


def detect_space(raws: list[RawBox], input_size: tuple[int, int]) -> CoordinateSpace:
    """Which coordinate space the boxes are in (the rule is in the module docstring)."""
    if not raws:
        return "none"
    coords = [v for r in raws for v in r.coords]
    if max(coords) > 1000:
        return "pixel"
    if any(r.qwen_key for r in raws):
        return "relative_1000"
    w, h = input_size
    inside = all(
        max(r.coords[0], r.coords[2]) <= w * 1.01 and max(r.coords[1], r.coords[3]) <= h * 1.01
        for r in raws
    )
    return "pixel" if inside else "relative_1000"


def parse_boxes(
    text: str,
    *,
    input_size: tuple[int, int] | None,
    original_size: tuple[int, int],
    default_label: str = "finding",
    pixel_spacing: tuple[float, float] | None = None,
) -> BoxParse:
    """Read every box in a model answer and map it to original-image pixels.

    Args:
        text: The model's answer, verbatim.
        input_size: (width, height) of the image as the model saw it (after the processor's
            resize); ``None`` when unknown, in which case the original size is assumed.
        original_size: (width, height) of the original image.
        default_label: Label for boxes written without one.
        pixel_spacing: (row, column) mm per pixel, to fill the boxes' sizes in mm.

    Returns:
        A :class:`BoxParse`; never raises on malformed text.

    Raises:
        InputError: ``input_size`` is not two positive whole numbers (a caller's mistake,
            not the model's: boxes cannot be scaled from an image of no size).
    """
    result = BoxParse()
    ow, oh = (int(v) for v in original_size)
    if ow <= 0 or oh <= 0:
        result.notes.append(f"Original image size {ow}x{oh} is not usable; no boxes mapped.")
        return result
    if input_size is None:
        result.notes.append("Model-input size unknown; coordinates read as original pixels.")
        input_size = (ow, oh)
    iw, ih = _checked_input_size(input_size)
    text = text if isinstance(text, str) else str(text or "")

    raws = extract_raw_boxes(text)
    if not raws:
        region = answer_region(text)
        if not region.strip():
            result.notes.append("The model gave an empty answer.")
        elif _NEGATIVE_RE.search(region):
            result.notes.append("The model reported no findings.")
        else:
            result.found = True
            result.notes.append("No bounding boxes could be read from the answer.")
        return result

    space = detect_space(raws, (iw, ih))
    result.coordinate_space = space
    result.found = True
    if space == "relative_1000":
        sx, sy = ow / 1000.0, oh / 1000.0
        result.notes.append("Coordinates read on the 0-1000 grid and scaled to the image.")
    else:
        sx, sy = ow / iw, oh / ih

    swapped = clipped = 0
    for raw in raws:
        x1, y1, x2, y2 = raw.coords
        if x1 > x2 or y1 > y2:
            swapped += 1
            x1, x2 = min(x1, x2), max(x1, x2)
            y1, y2 = min(y1, y2), max(y1, y2)
        px = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
        cx = (
            min(max(px[0], 0.0), ow),
            min(max(px[1], 0.0), oh),
            min(max(px[2], 0.0), ow),
            min(max(px[3], 0.0), oh),
        )
        if cx != px:
            clipped += 1
        label = raw.label or default_label
        box = Box.from_pixels(label, cx, (ow, oh), pixel_spacing)
        if box.x2 - box.x1 <= 0 or box.y2 - box.y1 <= 0:
            result.notes.append(
                f"Dropped box {label!r} {list(raw.coords)}: no area left inside the image."
            )
            continue
        result.boxes.append(box)
    if swapped:
        result.notes.append(f"Reordered the corners of {swapped} box(es).")
    if clipped:
        result.notes.append(f"Clipped {clipped} box(es) to the image.")
    return result
