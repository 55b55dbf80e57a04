"""Grounding scores: IoU, matching several predicted to several true boxes, summaries.

Boxes are ``(x1, y1, x2, y2)`` in the same pixel frame for prediction and truth.

Matching (one label at a time; a prediction never matches a true box of another label):

* ``"greedy"`` (default): every (predicted, true) pair with IoU > 0 is ranked by IoU,
  highest first, ties by predicted index then true index; a pair is taken when neither box
  is taken yet.
* ``"optimal"``: the one-to-one assignment with the largest total IoU (the Hungarian
  method); pairs of IoU 0 are not matches. It can beat greedy when one prediction overlaps
  two true boxes.

Either way each true box scores the IoU of its match, 0 when unmatched; predicted boxes
left over are counted as ``unmatched_predictions`` (false positives), never averaged in.
Labels compare after :func:`normalize_label` (case, underscores and spacing ignored).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Box = tuple[float, float, float, float]
MatchMethod = Literal["greedy", "optimal"]
MATCH_METHODS: tuple[MatchMethod, ...] = ("greedy", "optimal")


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


def match_boxes(
    predicted: Sequence[Box], true: Sequence[Box], *, method: MatchMethod = "greedy"
) -> Match:
    """Match predicted to true boxes one to one (the module's stated rules).

    Args:
        predicted: the predicted boxes.
        true: the true boxes.
        method: ``"greedy"`` or ``"optimal"``.
    """
    if method == "greedy":
        pairs = _greedy_pairs(predicted, true)
    elif method == "optimal":
        pairs = _optimal_pairs(predicted, true)
    else:
        raise ValueError(f"unknown box matching {method!r}: use 'greedy' or 'optimal'")
    ious = [0.0] * len(true)
    owner: list[int | None] = [None] * len(true)
    for pi, ti, value in pairs:
        owner[ti], ious[ti] = pi, value
    return Match(tuple(ious), tuple(owner), len(predicted) - len(pairs))


def _greedy_pairs(predicted: Sequence[Box], true: Sequence[Box]) -> list[tuple[int, int, float]]:
    ranked = sorted(
        (-v, pi, ti)
        for pi, p in enumerate(predicted)
        for ti, t in enumerate(true)
        if (v := iou(p, t)) > 0
    )
    used_pred: set[int] = set()
    used_true: set[int] = set()
    pairs = []
    for neg, pi, ti in ranked:
        if pi in used_pred or ti in used_true:
            continue
        used_pred.add(pi)
        used_true.add(ti)
        pairs.append((pi, ti, -neg))
    return pairs


def _optimal_pairs(predicted: Sequence[Box], true: Sequence[Box]) -> list[tuple[int, int, float]]:
    n = max(len(predicted), len(true))
    if not predicted or not true:
        return []
    gain = [[0.0] * n for _ in range(n)]
    for pi, p in enumerate(predicted):
        for ti, t in enumerate(true):
            gain[pi][ti] = iou(p, t)
    assignment = _hungarian([[-g for g in row] for row in gain])
    return [
        (pi, ti, gain[pi][ti])
        for pi, ti in enumerate(assignment)
        if pi < len(predicted) and ti < len(true) and gain[pi][ti] > 0
    ]


def _hungarian(cost: list[list[float]]) -> list[int]:
    """Minimum-cost assignment of a square matrix: the column of each row (O(n^3))."""
    n = len(cost)
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    row_of = [0] * (n + 1)  # row_of[j]: the row assigned to column j (1-based, 0: none)
    way = [0] * (n + 1)
    for i in range(1, n + 1):
        row_of[0], j0 = i, 0
        minv, used = [inf] * (n + 1), [False] * (n + 1)
        while row_of[j0] != 0:
            used[j0] = True
            i0, delta, j1 = row_of[j0], inf, 0
            for j in range(1, n + 1):
                if not used[j]:
                    reduced = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if reduced < minv[j]:
                        minv[j], way[j] = reduced, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
        while j0:
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    column = [0] * n
    for j in range(1, n + 1):
        column[row_of[j] - 1] = j - 1
    return column


def normalize_label(label: str) -> str:
    """A label as labels are compared: lowercase, ``_`` as space, single spaces."""
    return " ".join(label.replace("_", " ").lower().split())


@dataclass(frozen=True)
class GroundingItem:
    """One grounding item: its label, predicted boxes and true boxes."""

    label: str
    predicted: Sequence[Box]
    true: Sequence[Box]


@dataclass(frozen=True)
class LabelledBox:
    """A box with its label (original pixels)."""

    label: str
    box: Box


def items_by_label(
    predicted: Sequence[LabelledBox], true: Sequence[LabelledBox]
) -> list[GroundingItem]:
    """Split one image's boxes into one :class:`GroundingItem` per label.

    Labels present only among the predictions give items without true boxes (they add
    unmatched predictions, no IoU). Items come sorted by normalised label, named by the
    first spelling seen in ``true`` (else in ``predicted``).
    """
    names: dict[str, str] = {}
    for b in [*true, *predicted]:
        names.setdefault(normalize_label(b.label), b.label)
    return [
        GroundingItem(
            names[key],
            [b.box for b in predicted if normalize_label(b.label) == key],
            [b.box for b in true if normalize_label(b.label) == key],
        )
        for key in sorted(names)
    ]


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
    items: Sequence[GroundingItem], *, threshold: float = 0.5, method: MatchMethod = "greedy"
) -> dict[str, dict[str, float | int | None] | dict[str, dict[str, float | int | None]]]:
    """Mean IoU and accuracy at an IoU threshold, overall and per label.

    Both are over true boxes (an unmatched true box scores IoU 0; a box counts as found
    when its IoU is at least ``threshold``). Per label groups items by
    :func:`normalize_label`.

    Args:
        items: one item per (image, label).
        threshold: the IoU at which a true box counts as found.
        method: box matching, ``"greedy"`` or ``"optimal"``.

    Returns:
        ``{"total metrics": {...}, "per label": {label: {...}}}`` with ``items``,
        ``true_boxes``, ``unmatched_predictions``, ``mean_iou`` and ``acc@<threshold>``.
    """
    matches = [match_boxes(it.predicted, it.true, method=method) for it in items]
    by_label: dict[str, list[Match]] = defaultdict(list)
    for it, m in zip(items, matches, strict=True):
        by_label[normalize_label(it.label)].append(m)
    return {
        "total metrics": _summary(matches, threshold),
        "per label": {label: _summary(ms, threshold) for label, ms in sorted(by_label.items())},
    }
