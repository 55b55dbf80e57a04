"""Long adversarial answers: what each parser reads from them.

These answers once took seconds (quadratic or cubic regular expressions); the parsers now
scan them in linear time (timed at growing sizes by ``benchmarks/parser_worst_case.py``,
not here). Here: the rewritten pieces read exactly what the old expressions read on short
texts, and long adversarial texts are read correctly.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo_agent.errors import InputError
from medmo_agent.tasks import classify, ground, reason, report, summarize, vqa
from medmo_agent.tasks._text import remove_closed_blocks, strip_edges
from medmo_agent.tasks.boxes import _LABEL_EDGES, _MAX_LABEL, parse_boxes
from medmo_agent.testing.adversarial import FAMILIES, parsers

LONG = st.integers(min_value=2_000, max_value=30_000)
SPACES = st.sampled_from([" ", "\t", " \t"])

# ---- the rewritten pieces read what the old expressions read (short texts) -------------

_OLD_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_OLD_TRIM = re.compile(r"^[\s:=\-\[\](){},.;]+|[\s:=\-\[\](){},.;]+$")
_OLD_YES_NO = re.compile(r"\banswer\s*(?:is|:)?\s*\W*(yes|no)\b", re.IGNORECASE)
_pieces = st.lists(
    st.sampled_from(
        ["<think>", "</think>", "<THINK>", "a", " ", "\n", ",", ":", "-", "é", "\u00a0"]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_pieces)
def test_closed_think_blocks_are_removed_as_the_regex_removed_them(text):
    assert remove_closed_blocks(text, "think") == _OLD_THINK.sub(" ", text)


@settings(max_examples=300, deadline=None)
@given(text=_pieces)
def test_label_edges_are_trimmed_as_the_regex_trimmed_them(text):
    assert strip_edges(text, _LABEL_EDGES) == _OLD_TRIM.sub("", text)


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["answer", " is", "is", ":", " ", "\t", "**", "yes", "no", "x"]),
        max_size=12,
    ).map("".join)
)
def test_the_yes_no_after_answer_reads_as_before(text):
    old = _OLD_YES_NO.search(text)
    new = vqa._YES_NO_ANSWER.search(text)
    assert (old and (old.start(), old.group(1))) == (new and (new.start(), new.group(1)))


# ---- long adversarial answers are read correctly ---------------------------------------


@settings(max_examples=15, deadline=None)
@given(n=LONG)
def test_a_long_unclosed_think_hides_no_box_and_finds_none(n):
    found = parse_boxes("<think>" * n, input_size=(640, 480), original_size=(640, 480))
    assert found.boxes == [] and found.found
    after = parse_boxes(
        "<think>" * n + "\nnodule: [10, 20, 30, 40]",
        input_size=(640, 480),
        original_size=(640, 480),
    )
    assert [(b.label, b.xyxy) for b in after.boxes] == [("nodule", (10.0, 20.0, 30.0, 40.0))]


@settings(max_examples=15, deadline=None)
@given(n=LONG, junk=st.sampled_from(["[1, 2", "x", "\n", "<think>"]))
def test_a_long_closed_think_block_is_ignored(n, junk):
    text = "<think>" + junk * n + "</think>fracture: [1, 2, 30, 40]"
    found = parse_boxes(text, input_size=(100, 100), original_size=(200, 200))
    assert [(b.label, b.xyxy) for b in found.boxes] == [("fracture", (2.0, 4.0, 60.0, 80.0))]


@settings(max_examples=20, deadline=None)
@given(n=LONG, sep=st.sampled_from([" ,", " ", ", ", " -", ":", "(", ")", " ;", "\t", "{"]))
def test_a_label_after_a_long_run_of_separators_is_tidy(n, sep):
    found = parse_boxes(
        "a" + sep * n + "b [1,2,3,4]", input_size=(640, 480), original_size=(640, 480)
    )
    (box,) = found.boxes
    assert box.xyxy == (1.0, 2.0, 3.0, 4.0)
    assert box.label.endswith("b") and len(box.label) <= _MAX_LABEL
    assert box.label == strip_edges(box.label, _LABEL_EDGES)


@settings(max_examples=15, deadline=None)
@given(n=LONG, line=st.sampled_from(["\n", "\t \n", " \n", "\r\n"]))
def test_long_blank_runs_around_none_still_read_as_no_finding(n, line):
    assert not ground.parse(
        "x\n" + line * n + " None. " + line * n, input_size=(9, 9), original_size=(9, 9)
    ).found
    assert ground.parse(line * n + "y", input_size=(9, 9), original_size=(9, 9)).found


@settings(max_examples=15, deadline=None)
@given(n=LONG, space=SPACES, word=st.sampled_from(["yes", "no", "unclear"]))
def test_yes_or_no_after_a_long_gap_is_read(n, space, word):
    result = vqa.parse(f"The answer{space * n}{word}", question="Is it?", question_type="closed")
    assert result.yes_no is {"yes": True, "no": False, "unclear": None}[word]


@settings(max_examples=15, deadline=None)
@given(n=LONG, space=SPACES, letter=st.sampled_from("ABC"))
def test_an_option_after_a_long_gap_is_chosen(n, space, letter):
    result = vqa.parse(
        f"I think the answer is{space * n}({letter})",
        question="Which?",
        options=["Pneumonia", "Effusion", "Normal"],
    )
    assert result.choice == letter


@settings(max_examples=10, deadline=None)
@given(n=LONG)
def test_many_lone_letters_name_one_option(n):
    result = vqa.parse("B " * n, question="Which?", options=["Pneumonia", "Effusion", "Normal"])
    assert result.choice == "B"


@settings(max_examples=15, deadline=None)
@given(n=LONG, space=SPACES)
def test_labels_separated_by_a_long_gap_are_both_read(n, space):
    result = classify.parse(f"Effusion{space * n}, {space * n}Nodule")
    assert result.labels == ["Effusion", "Nodule"]


@settings(max_examples=5, deadline=None)
@given(n=st.integers(min_value=2_000, max_value=6_000))
def test_thousands_of_free_labels_are_kept_once_each_in_order(n):
    terms = [f"t{i}" for i in range(n)]
    result = classify.parse(", ".join(terms + terms), labels=[])
    assert result.labels == terms


@settings(max_examples=15, deadline=None)
@given(n=LONG, space=SPACES, stars=st.sampled_from(["", "**"]))
def test_report_headings_with_long_gaps_are_read(n, space, stars):
    text = f"{space * n}{stars}Findings{space * n}{stars}:{space}clear lungs\nImpression: normal"
    result = report.parse(text)
    assert result.findings == "clear lungs" and result.impression == "normal"
    assert report.parse("findings" + space * n + "x").findings.endswith("x")


@settings(max_examples=15, deadline=None)
@given(n=LONG, space=SPACES)
def test_a_summary_line_with_long_gaps_is_read(n, space):
    result = summarize.parse(f"- nodule\nSummary{space * n}:{space * n}one nodule")
    assert result.key_findings == ["nodule"] and result.summary_text == "one nodule"
    assert summarize.parse("a:" + space * n + "x").key_findings


@settings(max_examples=15, deadline=None)
@given(n=LONG, space=SPACES)
def test_steps_separated_by_long_gaps_are_split(n, space):
    text = f"<think>Step 1: look.{space * n}Step 2: compare.</think><answer>B</answer>"
    result = reason.parse(text, question="Why?")
    assert result.steps == ["look.", "compare."] and result.answer == "B"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_worst_case_family_gives_a_valid_result(family):
    result = parsers()[family.parser](family.sized(40_000))
    assert type(result).model_validate_json(result.model_dump_json()) == result


# ---- the model-input size -------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [(0, 480), (640, 0), (0.5, 480), (640.5, 480), ("640", 480), (640,), 7, (True, 1)]
)
def test_a_model_input_size_that_is_not_two_positive_whole_numbers_is_a_clear_error(size):
    with pytest.raises(InputError, match="model-input size") as info:
        parse_boxes("[1, 2, 3, 4]", input_size=size, original_size=(640, 480))
    assert info.value.input == "input_size" and "Completion.image_input_sizes" in info.value.fix


def test_a_whole_float_model_input_size_is_accepted():
    found = parse_boxes("[1, 2, 3, 4]", input_size=(320.0, 240.0), original_size=(640, 480))
    assert found.boxes[0].xyxy == (2.0, 4.0, 6.0, 8.0)
