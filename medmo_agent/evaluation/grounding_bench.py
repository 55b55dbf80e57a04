"""Grounding benchmarks in the runner: COCO-style items asked through the ``ground`` task,
scored by IoU.

A grounding benchmark is a COCO-style JSON file (see
:mod:`medmo_agent.evaluation.grounding_data`); each (image, label) pair is one item asking
the registry's ``ground`` task (:func:`medmo_agent.tasks.ground.build_messages`) for that
label's boxes. The reply is kept raw with the size of the image as the model saw it, so
re-scoring parses it again (:func:`medmo_agent.tasks.ground.parse`) into original pixels.

Per item: the predicted and true boxes, each true box's IoU after matching
(:func:`~medmo_agent.evaluation.grounding.match_boxes`, greedy), and ``correct`` = every
true box found at IoU 0.5 and no prediction left over. Per benchmark (``metrics.json``):
``{"total metrics": {total, right, acc, items, true_boxes, unmatched_predictions,
mean_iou, acc@0.5}, "per label": {...}}``; mean IoU and ``acc@0.5`` are over true boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .grounding import GroundingItem, LabelledBox, grounding_metrics, items_by_label
from .grounding_data import load_coco_grounding, predicted_boxes, score_grounding_sample
from .items import EvalItem, ImageSource

if TYPE_CHECKING:
    from ..toolkit import Toolkit
    from .records import ItemRecord

__all__ = [
    "IOU_THRESHOLD",
    "ground_answer",
    "grounding_items",
    "grounding_metrics_of",
    "score_grounding",
]

IOU_THRESHOLD = 0.5
"""The IoU at which a true box counts as found (``acc@0.5``), as detection benchmarks use."""


def grounding_prompt(labels: Sequence[str]) -> str:
    """The user text the ``ground`` task sends for these labels (an image without a
    modality, as PNG and JPEG files are, is named "image")."""
    from ..tasks.ground import build_messages

    return build_messages(None, list(labels))[-1].text  # type: ignore[arg-type]


def grounding_items(benchmark: str, annotations: Path, images_dir: Path | None) -> list[EvalItem]:
    """One item per (image, label) of a COCO-style file.

    Raises:
        InputError: the file is unreadable or malformed (named, with the fix).
    """
    items = []
    for sample in load_coco_grounding(annotations, images_dir):
        prompt = grounding_prompt(sample.labels)
        items.append(
            EvalItem(
                item_id=sample.item_id,
                benchmark=benchmark,
                question_type="grounding",
                prompt=prompt,
                reason_prompt=prompt,
                question=", ".join(sample.labels),
                answer="; ".join(f"{b.label} {list(b.box)}" for b in sample.truth),
                images=[ImageSource(path=sample.image)],
                category=sample.labels[0] if len(sample.labels) == 1 else None,
                grounding=sample,
            )
        )
    return items


def ground_answer(
    toolkit: Toolkit, item: EvalItem, max_new_tokens: int
) -> tuple[str, tuple[int, int] | None]:
    """Ask the model for the item's boxes with the ``ground`` task's messages; the raw
    reply and the (width, height) the model saw."""
    from ..backends.base import GenerationRequest
    from ..imaging import load_image
    from ..tasks.ground import build_messages

    sample = item.grounding
    assert sample is not None
    # the ordinary loader, so the image caps apply as for every other item
    image = load_image(item.images[0].read_bytes(toolkit.settings), settings=toolkit.settings)
    request = GenerationRequest(
        build_messages(image, list(sample.labels)), max_new_tokens=max_new_tokens, temperature=0.0
    )
    completion = toolkit.backend.generate(request)
    sizes = completion.image_input_sizes or []
    return completion.text, (tuple(sizes[0]) if sizes else None)  # type: ignore[return-value]


def _boxes(boxes: Sequence[LabelledBox]) -> list[list[Any]]:
    return [[b.label, *(round(v, 3) for v in b.box)] for b in boxes]


def score_grounding(
    item: EvalItem, response: str, input_size: tuple[int, int] | None
) -> tuple[str, bool, dict[str, Any]]:
    """Parse a reply into boxes in original pixels and score them against the truth.

    Returns:
        ``(extracted, correct, verdict)``: the boxes as text, whether every true box was
        found with nothing left over, and the verdict (``predicted``, ``truth`` as
        ``[label, x1, y1, x2, y2]`` lists, plus :func:`score_grounding_sample`'s fields).
    """
    from ..tasks.ground import parse

    sample = item.grounding
    assert sample is not None
    result = parse(
        response,
        input_size=input_size,
        original_size=sample.size,
        targets=list(sample.labels),
    )
    predicted = predicted_boxes(result.boxes, sample)
    scored = score_grounding_sample(sample, predicted, threshold=IOU_THRESHOLD)
    verdict = {
        "rule": "grounding_iou",
        "coordinate_space": result.coordinate_space,
        "predicted": _boxes(predicted),
        "truth": _boxes(sample.truth),
        **scored,
    }
    extracted = "; ".join(f"{b.label} {list(b.box)}" for b in predicted)
    return extracted, bool(scored["correct"]), verdict


def _labelled(rows: Any) -> list[LabelledBox]:
    return [
        LabelledBox(str(r[0]), (float(r[1]), float(r[2]), float(r[3]), float(r[4]))) for r in rows
    ]


def grounding_metrics_of(records: Sequence[ItemRecord]) -> dict[str, Any]:
    """A grounding benchmark's metrics from its answered records (module notes)."""
    items: list[GroundingItem] = []
    for rec in records:
        predicted = _labelled(rec.verdict.get("predicted") or [])
        items.extend(items_by_label(predicted, _labelled(rec.verdict.get("truth") or [])))
    metrics: dict[str, Any] = grounding_metrics(items, threshold=IOU_THRESHOLD)
    right = sum(bool(r.correct) for r in records)
    total = metrics["total metrics"]
    metrics["total metrics"] = {
        "total": len(records),
        "right": right,
        "acc": right / len(records) if records else None,
        **total,
    }
    return metrics
