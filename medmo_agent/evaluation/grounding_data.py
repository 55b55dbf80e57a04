"""Grounding benchmarks in COCO-style JSON, loaded into items, and their per-item scores.

The file holds ``images`` (``id``, ``file_name``, ``width``, ``height``), ``categories``
(``id``, ``name``) and ``annotations`` (``id``, ``image_id``, ``category_id``, ``bbox`` as
``[x, y, width, height]`` in the original image's pixels, optional ``iscrowd``).

Items: with ``group="label"`` (the default) one item per image and category that has a
box, asking for that category; with ``group="image"`` one item per image with a box,
asking for all its categories. Crowd annotations (``iscrowd: 1``) are skipped, as COCO's
own evaluation ignores them; images without boxes give no item. A box may overrun the
image by at most :data:`EDGE_TOLERANCE_PX` (then it is clipped); anything else malformed
is an :class:`~medmo_agent.errors.InputError` naming the file and the annotation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medmo_agent.errors import InputError
from medmo_agent.evaluation.grounding import (
    Box,
    GroundingItem,
    LabelledBox,
    MatchMethod,
    grounding_metrics,
    items_by_label,
    match_boxes,
    normalize_label,
)

_LISTED = "List every image and category that an annotation refers to."

EDGE_TOLERANCE_PX = 1.0
"""How far (pixels) a true box may overrun the image before the file is refused."""


@dataclass(frozen=True)
class GroundingSample:
    """One grounding item: an image, the labels asked for, and the true boxes.

    Attributes:
        item_id: ``"<image id>"`` or ``"<image id>:<category>"``, stable across runs.
        image: the image file.
        size: the original image's (width, height).
        labels: the labels asked for, in category order.
        truth: the true boxes (original pixels, ``x1, y1, x2, y2``).
    """

    item_id: str
    image: Path
    size: tuple[int, int]
    labels: tuple[str, ...]
    truth: tuple[LabelledBox, ...]


def _fail(path: Path, what: str, fix: str) -> InputError:
    return InputError(f"{path.name}: {what}", input=str(path), fix=fix)


def _need(record: dict[str, Any], key: str, path: Path, where: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise _fail(path, f"{where} has no {key!r}", f"Give every {where.split()[0]} a {key!r}.")
    return record[key]


def _size(img: dict[str, Any], path: Path) -> tuple[int, int]:
    where = f"image {img.get('id')!r}"
    width, height = _need(img, "width", path, where), _need(img, "height", path, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        raise _fail(
            path,
            f"{where}: width and height {width!r} x {height!r} are not positive whole numbers",
            "Give each image its original size in pixels.",
        )
    return width, height


def _box(ann: dict[str, Any], size: tuple[int, int], path: Path) -> Box:
    where = f"annotation {ann.get('id')!r}"
    bbox = _need(ann, "bbox", path, where)
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
    ):
        raise _fail(
            path, f"{where}: bbox {bbox!r} is not [x, y, width, height]", "Use COCO's bbox."
        )
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise _fail(path, f"{where}: bbox {bbox} has no area", "Width and height must be > 0.")
    width, height = size
    tol = EDGE_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise _fail(
            path,
            f"{where}: bbox {bbox} lies outside its {width}x{height} image (more than {tol:g} px)",
            "Boxes must be in the original image's pixels, as [x, y, width, height].",
        )
    return (max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h))


def load_coco_grounding(
    annotations: str | Path,
    images_dir: str | Path | None = None,
    *,
    group: Literal["label", "image"] = "label",
) -> list[GroundingSample]:
    """Read a COCO-style grounding file into items (see the module notes for the rules).

    Args:
        annotations: the JSON file.
        images_dir: where ``file_name`` is relative to; the file's folder by default.
        group: ``"label"`` (an item per image and category) or ``"image"``.

    Raises:
        InputError: the file is unreadable or malformed (named, with the fix).
    """
    path = Path(annotations)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"cannot read COCO JSON: {exc}", "Give a COCO-style JSON file.") from exc
    if group not in ("label", "image"):
        raise ValueError(f"unknown grouping {group!r}: use 'label' or 'image'")
    root = Path(images_dir) if images_dir is not None else path.parent
    images: dict[Any, dict[str, Any]] = {}
    for img in _need(data, "images", path, "the file"):
        images[_need(img, "id", path, "image")] = img
    categories: dict[Any, str] = {}
    order: dict[str, int] = {}
    for cat in _need(data, "categories", path, "the file"):
        name = str(_need(cat, "name", path, "category"))
        categories[_need(cat, "id", path, "category")] = name
        order.setdefault(name, len(order))
    boxes: dict[Any, list[LabelledBox]] = defaultdict(list)
    for ann in _need(data, "annotations", path, "the file"):
        where = f"annotation {ann.get('id')!r}" if isinstance(ann, dict) else "annotation"
        image_id = _need(ann, "image_id", path, where)
        if image_id not in images:
            raise _fail(path, f"{where} names image {image_id!r}, which is not listed", _LISTED)
        category_id = _need(ann, "category_id", path, where)
        if category_id not in categories:
            raise _fail(
                path, f"{where} names category {category_id!r}, which is not listed", _LISTED
            )
        if ann.get("iscrowd"):
            continue
        size = _size(images[image_id], path)
        boxes[image_id].append(LabelledBox(categories[category_id], _box(ann, size, path)))
    samples: list[GroundingSample] = []
    for image_id, img in images.items():
        found = boxes.get(image_id)
        if not found:
            continue
        file = root / str(_need(img, "file_name", path, "image"))
        size = _size(img, path)
        labels = sorted({b.label for b in found}, key=order.__getitem__)
        if group == "image":
            samples.append(GroundingSample(str(image_id), file, size, tuple(labels), tuple(found)))
            continue
        for label in labels:
            truth = tuple(b for b in found if b.label == label)
            samples.append(GroundingSample(f"{image_id}:{label}", file, size, (label,), truth))
    return samples


def predicted_boxes(boxes: Iterable[Any], sample: GroundingSample) -> list[LabelledBox]:
    """Predicted boxes (``types.Box`` or dicts with ``label, x1, y1, x2, y2``) as
    :class:`LabelledBox`; for a one-label item every box takes that label, since the
    question named it and the model's own wording of it ("cells", "Cell") should not cost
    the match."""

    def get(b: Any, key: str) -> Any:
        return b[key] if isinstance(b, dict) else getattr(b, key)

    out = []
    for b in boxes:
        label = sample.labels[0] if len(sample.labels) == 1 else str(get(b, "label"))
        box = (float(get(b, "x1")), float(get(b, "y1")), float(get(b, "x2")), float(get(b, "y2")))
        out.append(LabelledBox(label, box))
    return out


def score_grounding_sample(
    sample: GroundingSample,
    predicted: Sequence[LabelledBox],
    *,
    threshold: float = 0.5,
    method: MatchMethod = "greedy",
) -> dict[str, Any]:
    """One item's grounding verdict and metrics, ready for ``items.jsonl``.

    Returns:
        ``{"correct", "mean_iou", "found", "true_boxes", "unmatched_predictions",
        "per_label": {label: [IoU of each true box]}}``; ``correct`` is whether every true
        box is found at ``threshold`` and no prediction is left unmatched.
    """
    per_label: dict[str, list[float]] = {}
    unmatched = 0
    for item in items_by_label(predicted, sample.truth):
        match = match_boxes(item.predicted, item.true, method=method)
        unmatched += match.unmatched_predictions
        if item.true:
            per_label[normalize_label(item.label)] = list(match.true_ious)
    ious = [v for vs in per_label.values() for v in vs]
    found = sum(v >= threshold for v in ious)
    return {
        "correct": found == len(ious) and unmatched == 0,
        "mean_iou": sum(ious) / len(ious) if ious else None,
        "found": found,
        "true_boxes": len(ious),
        "unmatched_predictions": unmatched,
        "per_label": per_label,
    }


def benchmark_grounding_metrics(
    scored: Iterable[tuple[GroundingSample, Sequence[LabelledBox]]],
    *,
    threshold: float = 0.5,
    method: MatchMethod = "greedy",
) -> dict[str, Any]:
    """A grounding benchmark's metrics (:func:`~medmo_agent.evaluation.grounding.
    grounding_metrics`) from each sample and its predicted boxes."""
    items: list[GroundingItem] = []
    for sample, predicted in scored:
        items.extend(items_by_label(predicted, sample.truth))
    return grounding_metrics(items, threshold=threshold, method=method)
