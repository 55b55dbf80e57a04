"""Grounding scores: IoU, matching several predicted to several true boxes, summaries.

Boxes are ``(x1, y1, x2, y2)`` in the same pixel frame for prediction and truth.

Matching rule (greedy by IoU): every (predicted, true) pair with IoU > 0 is ranked by IoU,
highest first, ties by predicted index then true index; a pair is taken when neither box is
taken yet. Each true box scores the IoU of its match, 0 when unmatched; predicted boxes left
over are counted as ``unmatched_predictions`` (false positives), never averaged in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when the union has no area."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Match:
    """The matching of one item: the IoU per true box and the matched predicted index."""

    true_ious: tuple[float, ...]
    pred_for_true: tuple[int | None, ...]
    unmatched_predictions: int


def match_boxes(predicted: Sequence[Box], true: Sequence[Box]) -> Match:
    """Match predicted to true boxes greedily by IoU (the module's stated rule)."""
    pairs = sorted(
        (
            (-iou(p, t), pi, ti)
            for pi, p in enumerate(predicted)
            for ti, t in enumerate(true)
            if iou(p, t) > 0
        ),
    )
    used_pred: set[int] = set()
    ious = [0.0] * len(true)
    owner: list[int | None] = [None] * len(true)
    for neg, pi, ti in pairs:
        if pi in used_pred or owner[ti] is not None:
            continue
        used_pred.add(pi)
        owner[ti], ious[ti] = pi, -neg
    return Match(tuple(ious), tuple(owner), len(predicted) - len(used_pred))


@dataclass(frozen=True)
class GroundingItem:
    """One grounding item: its label, predicted boxes and true boxes."""

    label: str
    predicted: Sequence[Box]
    true: Sequence[Box]


def _summary(matches: Sequence[Match], threshold: float) -> dict[str, float | int | None]:
    ious = [v for m in matches for v in m.true_ious]
    n = len(ious)
    return {
        "items": len(matches),
        "true_boxes": n,
        "unmatched_predictions": sum(m.unmatched_predictions for m in matches),
        "mean_iou": sum(ious) / n if n else None,
        f"acc@{threshold:g}": sum(v >= threshold for v in ious) / n if n else None,
    }


def grounding_metrics(
    items: Sequence[GroundingItem], *, threshold: float = 0.5
) -> dict[str, dict[str, float | int | None] | dict[str, dict[str, float | int | None]]]:
    """Mean IoU and accuracy at an IoU threshold, overall and per label.

    Both are over true boxes (an unmatched true box scores IoU 0; a box counts as found
    when its IoU is at least ``threshold``).

    Returns:
        ``{"total metrics": {...}, "per label": {label: {...}}}`` with ``items``,
        ``true_boxes``, ``unmatched_predictions``, ``mean_iou`` and ``acc@<threshold>``.
    """
    matches = [match_boxes(it.predicted, it.true) for it in items]
    by_label: dict[str, list[Match]] = defaultdict(list)
    for it, m in zip(items, matches, strict=True):
        by_label[it.label].append(m)
    return {
        "total metrics": _summary(matches, threshold),
        "per label": {label: _summary(ms, threshold) for label, ms in sorted(by_label.items())},
    }
