"""Agreement figures against expected answers, labels and boxes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medmo_agent.review import Case, aggregate_agreement, case_agreement, run_review
from medmo_agent.review.agreement import answer_matches, normalize_answer

from .conftest import write_cases, write_png


@pytest.mark.parametrize(
    ("expected", "answer", "options", "agrees"),
    [
        ("yes", {"answer": "Yes.", "yes_no": True}, None, True),
        ("no", {"answer": "Yes, there is.", "yes_no": None}, None, False),
        ("No", {"answer": "no"}, None, True),
        ("B", {"answer": "B", "choice": "B"}, ["CT", "MRI"], True),
        ("MRI", {"answer": "B. MRI", "choice": "B"}, ["CT", "MRI"], True),
        ("CT", {"answer": "B", "choice": "B"}, ["CT", "MRI"], False),
        ("the left lung", {"answer": "Left lung."}, None, True),
        ("left lung", {"answer": "right lung"}, None, False),
    ],
)
def test_answers_agree_after_normalisation_by_polarity_or_by_option_letter(
    expected, answer, options, agrees
):
    assert answer_matches(expected, answer, options) is agrees


def _case(**fields):
    return Case.model_validate({"id": "c", "image": "x.png", **fields})


def test_labels_compare_as_sets_with_precision_recall_and_f1():
    case = _case(expected_labels=["Pleural_Thickening", "Nodule"])
    outputs = {"labels": ["nodule", "Effusion"], "classified": True}
    lab = case_agreement(case, outputs, [(100, 100)])["labels"]
    assert (lab["tp"], lab["fp"], lab["fn"], lab["exact"]) == (1, 1, 1, False)
    assert lab["precision"] == lab["recall"] == lab["f1"] == 0.5
    none = case_agreement(
        _case(expected_labels=["No Finding"]),
        {"labels": [], "no_finding": True, "classified": True},
        [(1, 1)],
    )
    assert none["labels"]["exact"] is True
    missed = case_agreement(
        _case(expected_labels=["Nodule"]), {"labels": [], "classified": True}, [(1, 1)]
    )["labels"]
    assert (missed["precision"], missed["recall"], missed["f1"]) == (None, 0.0, 0.0)


def test_boxes_score_best_iou_and_one_to_one_hits_at_half_overlap():
    case = _case(
        expected_boxes=[
            {"label": "a", "x1": 0, "y1": 0, "x2": 10, "y2": 10},
            {"label": "b", "x1": 0, "y1": 0, "x2": 10, "y2": 20},
        ]
    )
    found = [{"label": "x", "x1": 0, "y1": 0, "x2": 10, "y2": 10}]
    box = case_agreement(case, {"boxes": [found], "grounded": True}, [(100, 100)])["boxes"]
    assert [m["best_iou"] for m in box["matches"]] == [1.0, 0.5]
    # one found box can match only one expected box
    assert (box["hits"], box["recall"], box["precision"], box["mean_iou"]) == (1, 0.5, 1.0, 0.75)


def test_without_a_classify_or_ground_step_labels_and_boxes_are_not_measured():
    case = _case(expected_labels=["Nodule"], expected_boxes=[{"x1": 0, "y1": 0, "x2": 1, "y2": 1}])
    agr = case_agreement(case, {"labels": [], "boxes": [[]]}, [(10, 10)])
    assert agr["labels"]["measured"] is False and agr["boxes"]["measured"] is False
    assert case_agreement(_case(), {}, [(10, 10)]) is None


def test_review_figures_are_exact_on_a_scripted_model(tmp_path, scripted, scripted_settings):
    write_png(tmp_path / "a.png")
    cases = write_cases(
        tmp_path / "cases.yaml",
        [
            {
                "id": "agree",
                "image": "a.png",
                "questions": [
                    {"question": "Is there a nodule?", "expected": "yes"},
                    {"question": "Is there a fracture?", "expected": "yes"},
                ],
                "expected_labels": ["Nodule", "Effusion"],
                "expected_boxes": [{"label": "nodule", "x1": 40, "y1": 40, "x2": 100, "y2": 100}],
            },
            {
                "id": "partly",
                "image": "a.png",
                "questions": [
                    {"question": "Which modality?", "options": ["CT", "X-ray"], "expected": "X-ray"}
                ],
                "expected_labels": ["Nodule"],
                "expected_boxes": [{"label": "nodule", "x1": 70, "y1": 40, "x2": 130, "y2": 100}],
            },
            {"id": "broken", "image": "missing.png", "expected_labels": ["Nodule"]},
        ],
    )
    result = run_review(
        cases,
        steps="ground,vqa,classify",
        backend=scripted,
        out=tmp_path / "out",
        settings=scripted_settings,
    )
    agr = result.agreement
    assert agr["cases"] == {"total": 3, "ok": 2, "failed": 1}
    assert agr["answers"] == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert agr["labels"]["exact"] == 1 and agr["labels"]["n_cases"] == 2
    assert agr["labels"]["precision"] == pytest.approx(3 / 4)
    assert agr["labels"]["recall"] == 1.0
    # the second expected box overlaps the found one by 30 of 90 px in x: IoU 1/3
    assert agr["boxes"]["mean_iou"] == pytest.approx((1 + 1 / 3) / 2, abs=1e-3)
    assert agr["boxes"]["recall_at_0.5"] == 0.5
    saved = (tmp_path / "out" / "agreement.json").read_text()
    assert '"accuracy": 0.6666' in saved


_coord = st.floats(min_value=0, max_value=500, allow_nan=False)


@given(
    boxes=st.lists(st.tuples(_coord, _coord, _coord, _coord), min_size=1, max_size=6),
    shift=st.floats(min_value=0, max_value=50, allow_nan=False),
)
def test_box_figures_stay_within_bounds_and_are_perfect_on_identical_boxes(boxes, shift):
    rects = [
        {"label": "f", "x1": min(a, c), "y1": min(b, d), "x2": max(a, c) + 1, "y2": max(b, d) + 1}
        for a, b, c, d in boxes
    ]
    case = _case(expected_boxes=rects)
    same = case_agreement(case, {"boxes": [rects], "grounded": True}, [(600, 600)])["boxes"]
    assert same["mean_iou"] == pytest.approx(1.0) and same["recall"] == 1.0
    moved = [{**r, "x1": r["x1"] + shift, "x2": r["x2"] + shift} for r in rects]
    box = case_agreement(case, {"boxes": [moved], "grounded": True}, [(600, 600)])["boxes"]
    assert 0.0 <= box["mean_iou"] <= 1.0
    assert box["hits"] <= min(box["n_expected"], box["n_predicted"])


@given(st.text(max_size=40))
def test_normalising_an_answer_twice_changes_nothing(text):
    assert normalize_answer(normalize_answer(text)) == normalize_answer(text)


def test_failed_cases_count_but_add_no_figures():
    class Rec:
        status, agreement = "failed", None

    assert aggregate_agreement([Rec()]) == {"cases": {"total": 1, "ok": 0, "failed": 1}}
