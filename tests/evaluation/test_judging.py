"""Judging rules, hand-worked, including the traps."""

import pytest

from medmo_agent.evaluation.judging import (
    choice_pick,
    judge_closed,
    judge_multiple_choice,
    judge_yes_no,
    most_similar_index,
)


@pytest.mark.parametrize(
    ("answer", "response", "expected"),
    [
        ("yes", "Yes.", True),
        ("no", "No", True),
        ("yes", "No.", False),
        # the trap: "normal" contains "no", so it reads as a "no"
        ("no", "The study is normal", True),
        ("yes", "The study is normal", False),
        # both words present: never right
        ("yes", "yes and no", False),
        # "not" contains "no"; "yes" is also there -> rejected
        ("yes", "yes, it is not absent", False),
        ("yes", "Thinking... \\boxed{yes}", True),
        ("no", "<answer>no</answer>", True),
    ],
)
def test_yes_no(answer, response, expected):
    assert judge_yes_no(answer, response) is expected


def test_slake_closed_needs_exact_equality():
    assert judge_closed("Lung", "lung") is True
    assert judge_closed("lung", "Lung.") is True  # dots and newlines go, case goes
    assert judge_closed("lung", "the lung") is False
    assert judge_closed("lung", "lungs") is False
    # no stripping: a marker split leaves the space and the item is wrong (as in MedEvalKit)
    assert judge_closed("lung", "Answer: lung") is False
    assert judge_closed("lung", "Answer:lung") is True


def test_slake_chinese_closed_items():
    assert judge_closed("肺", "肺") is True
    assert judge_closed("肺", "肺。") is False  # only ASCII dots are removed
    assert judge_closed("心脏", "答案:心脏") is True
    assert judge_closed("肺", "左肺") is False


OPTIONS = ["A. Pneumonia", "B. Pleural effusion", "C. Pneumothorax", "D. Normal"]


@pytest.mark.parametrize(
    ("response", "answer", "expected"),
    [
        ("B", "B", True),  # bare letter
        ("b\n\nBecause fluid.", "B", True),  # bare-letter first paragraph wins
        ("Reasoning first.\n\nC. Pneumothorax", "C", True),  # letter before '.' of last paragraph
        ("The answer is C.", "C", True),  # marker split, then before first '.'
        ("\\boxed{D}", "D", True),
        ("A", "B", False),
        # letter picked whose option is not the answer: no similarity fallback
        ("Answer: A", "B", False),
        # nothing parseable: most similar option to the whole response
        ("Probably pleural effusion on the left", "B", True),
        ("Probably pleural effusion on the left", "A", False),
    ],
)
def test_multiple_choice(response, answer, expected):
    assert judge_multiple_choice(OPTIONS, answer, response) is expected


def test_multiple_choice_text_answers_and_picks():
    opts = ["yes", "no", "maybe"]
    assert judge_multiple_choice(opts, "no", "B") is True  # letter -> option text
    assert judge_multiple_choice(opts, "B", "no") is True  # option text -> letter
    assert choice_pick("Final choice: b. because", 3) == " b"
    assert choice_pick("option: b", 3) == " b"  # not stripped after ':' (MedEvalKit)


def test_most_similar_ties_and_zero():
    assert most_similar_index(["abc", "abc"], "abc") == 0
    assert most_similar_index(["x", "y"], "") == 0
