"""Grounding benchmarks: matching several boxes to several (greedy and optimal, per label),
COCO-style files loaded into items, and per-item and per-benchmark scores."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo_agent.errors import InputError
from medmo_agent.evaluation.grounding import (
    LabelledBox,
    iou,
    items_by_label,
    match_boxes,
    normalize_label,
)
from medmo_agent.evaluation.grounding_data import (
    benchmark_grounding_metrics,
    load_coco_grounding,
    predicted_boxes,
    score_grounding_sample,
)
from medmo_agent.tasks.ground import parse as parse_ground

# ----- matching -----

T0, T1 = (0, 0, 10, 10), (8, 0, 18, 10)
P0 = (2, 0, 12, 10)  # IoU 2/3 with T0, 1/4 with T1
P1 = (0, 0, 6, 10)  # IoU 0.6 with T0, none with T1


def test_greedy_takes_the_best_pair_and_can_strand_a_true_box():
    m = match_boxes([P0, P1], [T0, T1])
    assert m.pred_for_true == (0, None)
    assert m.true_ious == pytest.approx((2 / 3, 0.0))
    assert m.unmatched_predictions == 1


def test_optimal_maximises_the_total_iou():
    m = match_boxes([P0, P1], [T0, T1], method="optimal")
    assert m.pred_for_true == (1, 0)
    assert m.true_ious == pytest.approx((0.6, 0.25))
    assert m.unmatched_predictions == 0


def test_optimal_never_pairs_boxes_that_do_not_overlap():
    m = match_boxes([(50, 50, 60, 60)], [T0], method="optimal")
    assert m == match_boxes([(50, 50, 60, 60)], [T0])
    assert (m.pred_for_true, m.unmatched_predictions) == ((None,), 1)
    assert match_boxes([], [T0], method="optimal").true_ious == (0.0,)
    assert match_boxes([T0], [], method="optimal").unmatched_predictions == 1


def test_an_unknown_matching_is_refused():
    with pytest.raises(ValueError, match="'greedy' or 'optimal'"):
        match_boxes([T0], [T0], method="best")  # type: ignore[arg-type]


coord = st.integers(min_value=0, max_value=40)
box = st.builds(lambda x, y, w, h: (x, y, x + w, y + h), coord, coord, coord, coord)


def _brute_force_best(pred, true) -> float:
    if len(pred) >= len(true):
        perms = itertools.permutations(range(len(pred)), len(true))
        return max(sum(iou(pred[p], true[t]) for t, p in enumerate(perm)) for perm in perms)
    perms = itertools.permutations(range(len(true)), len(pred))
    return max(sum(iou(pred[p], true[t]) for p, t in enumerate(perm)) for perm in perms)


@settings(max_examples=150, deadline=None)
@given(pred=st.lists(box, max_size=4), true=st.lists(box, max_size=4))
def test_matchings_are_one_to_one_and_optimal_is_the_best_total(pred, true):
    best = _brute_force_best(pred, true)
    for method in ("greedy", "optimal"):
        m = match_boxes(pred, true, method=method)
        owners = [o for o in m.pred_for_true if o is not None]
        assert len(owners) == len(set(owners))
        assert m.unmatched_predictions == len(pred) - len(owners)
        for t, o in enumerate(m.pred_for_true):
            expected = 0.0 if o is None else iou(pred[o], true[t])
            assert m.true_ious[t] == pytest.approx(expected)
            assert o is None or expected > 0
    greedy = sum(match_boxes(pred, true).true_ious)
    optimal = sum(match_boxes(pred, true, method="optimal").true_ious)
    assert optimal == pytest.approx(best)
    assert greedy <= optimal + 1e-9


@given(true=st.lists(box.filter(lambda b: b[2] > b[0] and b[3] > b[1]), max_size=5))
def test_predicting_the_truth_scores_one_everywhere(true):
    for method in ("greedy", "optimal"):
        m = match_boxes(list(true), list(true), method=method)
        assert m.true_ious == pytest.approx((1.0,) * len(true))
        assert m.unmatched_predictions == 0


def test_labels_match_only_their_own_kind_after_normalising():
    assert normalize_label("  Pleural_Thickening ") == "pleural thickening"
    predicted = [LabelledBox("NODULE", T0), LabelledBox("mass", T1)]
    true = [LabelledBox("nodule", T0), LabelledBox("effusion", T1)]
    items = items_by_label(predicted, true)
    assert [(it.label, len(it.predicted), len(it.true)) for it in items] == [
        ("effusion", 0, 1),
        ("mass", 1, 0),
        ("nodule", 1, 1),
    ]


# ----- COCO-style files -----


def _coco(tmp_path: Path, **changes) -> Path:
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
            {"id": 2, "file_name": "b.png", "width": 50, "height": 50},
            {"id": 3, "file_name": "empty.png", "width": 50, "height": 50},
        ],
        "categories": [{"id": 7, "name": "Cell"}, {"id": 3, "name": "Nucleus"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20]},
            {"id": 11, "image_id": 1, "category_id": 7, "bbox": [50, 40, 30.5, 20]},
            {"id": 12, "image_id": 1, "category_id": 3, "bbox": [12, 12, 5, 5]},
            {"id": 13, "image_id": 2, "category_id": 7, "bbox": [0, 0, 50.5, 50]},
            {"id": 14, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2], "iscrowd": 1},
        ],
    }
    data.update(changes)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_loads_one_item_per_image_and_category_in_original_pixels(tmp_path):
    samples = load_coco_grounding(_coco(tmp_path))
    assert [s.item_id for s in samples] == ["1:Cell", "1:Nucleus", "2:Cell"]
    cell = samples[0]
    assert cell.image == tmp_path / "a.png" and cell.size == (100, 80)
    assert cell.labels == ("Cell",)
    assert [b.box for b in cell.truth] == [(10, 10, 30, 30), (50, 40, 80.5, 60)]
    # half a pixel over the edge is clipped; the crowd box is skipped; no box, no item
    assert [b.box for b in samples[2].truth] == [(0, 0, 50, 50)]


def test_coco_by_image_asks_for_every_category_of_the_image(tmp_path):
    samples = load_coco_grounding(_coco(tmp_path), tmp_path / "imgs", group="image")
    assert [(s.item_id, s.labels, len(s.truth)) for s in samples] == [
        ("1", ("Cell", "Nucleus"), 3),
        ("2", ("Cell",), 1),
    ]
    assert samples[0].image == tmp_path / "imgs" / "a.png"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"annotations": [{"id": 5, "image_id": 9, "category_id": 7, "bbox": [0, 0, 1, 1]}]},
            "annotation 5 names image 9, which is not listed",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 8, "bbox": [0, 0, 1, 1]}]},
            "annotation 5 names category 8",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 7, "bbox": [90, 0, 20, 5]}]},
            "annotation 5: bbox [90, 0, 20, 5] lies outside its 100x80 image",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 7, "bbox": [0, 0, 0, 5]}]},
            "has no area",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 7, "bbox": [0, 0, 5]}]},
            "is not [x, y, width, height]",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 7}]},
            "annotation 5 has no 'bbox'",
        ),
        ({"categories": None}, "the file has no 'categories'"),
        (
            {"images": [{"id": 1, "file_name": "a.png", "width": 0, "height": 80}]},
            "image 1: width and height 0 x 80 are not positive whole numbers",
        ),
    ],
)
def test_malformed_coco_is_refused_naming_the_file_and_annotation(tmp_path, change, message):
    path = _coco(tmp_path, **change)
    if change.get("categories", 0) is None:
        data = json.loads(path.read_text())
        del data["categories"]
        path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        load_coco_grounding(path)
    assert message in str(info.value)
    assert "coco.json" in str(info.value)


def test_unreadable_json_is_refused(tmp_path):
    path = tmp_path / "coco.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="cannot read COCO JSON"):
        load_coco_grounding(path)


# ----- scores, from the model's own words -----


def test_a_medmo_answer_is_scored_per_item_and_per_benchmark(tmp_path):
    samples = load_coco_grounding(_coco(tmp_path))
    cell_1, nucleus_1, cell_2 = samples
    answer = "Cells: <box> [ 10, 10, 30, 30 ] [ 60, 40, 80, 60 ] [ 0, 70, 5, 75 ] </box>"
    parsed = parse_ground(answer, input_size=(100, 80), original_size=(100, 80), targets="Cell")
    predicted = predicted_boxes(parsed.boxes, cell_1)
    assert [b.label for b in predicted] == ["Cell"] * 3  # the asked label, not "Cells"

    score = score_grounding_sample(cell_1, predicted)

    second = 400 / 610  # [60,40,80,60] inside [50,40,80.5,60]
    assert score["per_label"]["cell"] == pytest.approx([1.0, second])
    assert score["found"] == 2 and score["true_boxes"] == 2
    assert score["unmatched_predictions"] == 1
    assert score["correct"] is False  # a stray box
    assert score["mean_iou"] == pytest.approx((1 + second) / 2)

    missed = score_grounding_sample(nucleus_1, predicted_boxes([], nucleus_1))
    assert (missed["mean_iou"], missed["correct"]) == (0.0, False)
    exact = score_grounding_sample(
        cell_2, predicted_boxes([{"label": "x", "x1": 0, "y1": 0, "x2": 50, "y2": 50}], cell_2)
    )
    assert exact["correct"] is True

    metrics = benchmark_grounding_metrics(
        [(cell_1, predicted), (nucleus_1, []), (cell_2, predicted_boxes([], cell_2))]
    )
    total = metrics["total metrics"]
    assert total["true_boxes"] == 4 and total["unmatched_predictions"] == 1
    assert total["mean_iou"] == pytest.approx((1 + second + 0 + 0) / 4)
    assert total["acc@0.5"] == pytest.approx(2 / 4)
    assert metrics["per label"]["nucleus"]["mean_iou"] == 0.0
    assert metrics["per label"]["cell"]["acc@0.5"] == pytest.approx(2 / 3)


def test_image_items_match_per_label(tmp_path):
    (image_1, _) = load_coco_grounding(_coco(tmp_path), group="image")
    predicted = predicted_boxes(
        [
            {"label": "nucleus", "x1": 10, "y1": 10, "x2": 30, "y2": 30},  # a cell's box
            {"label": "cell", "x1": 10, "y1": 10, "x2": 30, "y2": 30},
        ],
        image_1,
    )
    score = score_grounding_sample(image_1, predicted)
    assert score["per_label"]["cell"] == pytest.approx([1.0, 0.0])
    assert score["per_label"]["nucleus"] == pytest.approx([25 / 400])
    assert score["found"] == 1
