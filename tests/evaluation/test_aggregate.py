"""Per-benchmark metrics in MedEvalKit's layout, both compat modes for each bug."""

import pytest

from medmo_agent.evaluation.aggregate import choice_metrics, score_vqa_item, vqa_metrics
from medmo_agent.evaluation.compat import Deviation, check_compat

# VQA-RAD-shaped: 3 closed (2 right, one via "normal"), 2 open (1 exact match)
RAD = [
    ("yes", "Yes"),
    ("no", "The lungs are normal."),
    ("yes", "No"),
    ("left lung", "Left lung"),
    ("left lung", "the left lung"),
]


def _rad(compat="correct"):
    return [score_vqa_item("vqa_rad", a, r, compat=compat) for a, r in RAD]


def test_vqa_rad_rules_and_layout():
    m = vqa_metrics("vqa_rad", _rad())
    assert set(m) == {"total metrics", "open", "close"}
    assert m["total metrics"] == {"total": 5, "right": 3, "acc": 3 / 5}
    assert m["close"] == {"total": 3, "right": 2, "acc": 2 / 3}
    assert m["open"]["acc"] == 0.5
    assert m["open"]["em"] == 0.5
    assert m["open"]["f1"] == pytest.approx((1.0 + 0.8) / 2)


def test_open_acc_divided_twice_only_in_compat():
    bug = vqa_metrics("vqa_rad", _rad("medevalkit"), compat="medevalkit")
    assert bug["open"]["acc"] == pytest.approx(0.5 / 2)
    # the F1 labels move in compat: "f1" holds recall (1.0 and 1.0)
    assert bug["open"]["f1"] == pytest.approx(1.0)
    assert bug["open"]["precision"] == pytest.approx((1.0 + 0.8) / 2)


def test_pathvqa_judge_closed_counts():
    items = [score_vqa_item("path_vqa", a, r) for a, r in RAD]
    judge = [False, False, False, True, True]  # closed verdicts are not the judge's business
    fixed = vqa_metrics("path_vqa", items, judge=judge)
    assert fixed["close"]["right"] == 2
    assert fixed["open"]["right"] == 2
    assert fixed["total metrics"]["right"] == 4
    bug = vqa_metrics("path_vqa", items, judge=judge, compat="medevalkit")
    assert bug["close"]["right"] == 0
    assert bug["total metrics"]["right"] == 2


SLAKE = [
    ("yes", "Yes", "CLOSED"),
    ("Lung", "lung", "CLOSED"),
    ("肺", "左肺", "CLOSED"),  # Chinese closed item: exact equality, wrong
    ("left", "left", "OPEN"),
]


def _slake():
    return [score_vqa_item("slake", a, r, answer_type=t) for a, r, t in SLAKE]


def test_slake_rules():
    m = vqa_metrics("slake", _slake())
    assert m["close"] == {"total": 3, "right": 2, "acc": 2 / 3}
    assert m["open"]["right"] == 1
    assert m["total metrics"]["right"] == 3


def test_slake_judge_counts_closed_twice_only_in_compat():
    judge = [True, False, True, True]
    fixed = vqa_metrics("slake", _slake(), judge=judge)
    assert fixed["close"]["right"] == 2
    assert fixed["total metrics"]["right"] == 3
    bug = vqa_metrics("slake", _slake(), judge=judge, compat="medevalkit")
    assert bug["close"]["right"] == 2 + 2  # rules' 2 plus the judge's 2 closed
    assert bug["total metrics"]["right"] == 5  # more right than the 4 items


def test_slake_needs_answer_type_and_judge_length_is_checked():
    with pytest.raises(ValueError, match="answer_type"):
        score_vqa_item("slake", "yes", "yes")
    with pytest.raises(ValueError, match="2 verdicts for 4 items"):
        vqa_metrics("slake", _slake(), judge=[True, True])


def test_empty_parts_have_no_accuracy():
    m = vqa_metrics("vqa_rad", [score_vqa_item("vqa_rad", "yes", "yes")])
    assert m["open"]["acc"] is None and m["open"]["f1"] is None
    assert m["close"]["acc"] == 1.0


def test_choice_metrics_and_compat_names():
    assert choice_metrics([True, False, True, True]) == {
        "total metrics": {"total": 4, "right": 3, "acc": 0.75}
    }
    assert len(Deviation) == 5
    with pytest.raises(ValueError, match="'nltk'"):
        check_compat("nltk")
