"""Grounding: IoU, greedy matching, mean IoU, accuracy at 0.5, per label."""

import pytest

from medmo_agent.evaluation.grounding import GroundingItem, grounding_metrics, iou, match_boxes


def test_iou_hand_worked():
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_greedy_takes_the_best_pair_first():
    true = [(0, 0, 10, 10), (20, 20, 30, 30)]
    pred = [(0, 0, 10, 5), (0, 0, 10, 10), (100, 100, 110, 110)]
    m = match_boxes(pred, true)
    assert m.pred_for_true == (1, None)  # IoU 1.0 beats the earlier 0.5
    assert m.true_ious == (1.0, 0.0)
    assert m.unmatched_predictions == 2


def test_one_prediction_serves_one_true_box():
    true = [(0, 0, 10, 10), (0, 0, 10, 10)]
    m = match_boxes([(0, 0, 10, 10)], true)
    assert m.true_ious == (1.0, 0.0)


def test_metrics_overall_and_per_label():
    items = [
        GroundingItem("cell", [(0, 0, 10, 10)], [(0, 0, 10, 10)]),
        GroundingItem("cell", [(0, 0, 10, 5)], [(0, 0, 10, 10)]),
        GroundingItem("nucleus", [], [(0, 0, 4, 4)]),
    ]
    m = grounding_metrics(items)
    assert m["total metrics"]["mean_iou"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert m["total metrics"]["acc@0.5"] == pytest.approx(2 / 3)
    assert m["per label"]["cell"]["mean_iou"] == pytest.approx(0.75)
    assert m["per label"]["nucleus"] == {
        "items": 1,
        "true_boxes": 1,
        "unmatched_predictions": 0,
        "mean_iou": 0.0,
        "acc@0.5": 0.0,
    }
