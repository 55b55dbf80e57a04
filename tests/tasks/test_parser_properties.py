"""Properties every parser keeps: arbitrary text never raises, the result validates and
keeps the raw text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medmo_agent.tasks import classify, detect, ground, reason, report, summarize, text_qa, vqa

# text with the characters parsers care about, mixed with arbitrary unicode
_SPECIAL = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<box>",
    "</box>",
    "Findings:",
    "Impression:",
    "Summary:",
    "Step 1:",
    "\n",
    "- ",
    "1. ",
    " | ",
    ", ",
    " and ",
    "(B)",
    "yes",
    "no",
    "No Finding",
    "[",
    "]",
    "{",
    "}",
    '"label": "a"',
    '"bbox": ',
    "10",
    "20.5",
    "-3",
]
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(_SPECIAL), st.text(max_size=8)), max_size=40).map("".join),
)
OPTIONS = ["Pneumonia", "Effusion", "Normal"]

PARSERS = {
    "vqa_open": lambda t: vqa.parse(t, question="Where?"),
    "vqa_closed": lambda t: vqa.parse(t, question="Is it?", question_type="closed"),
    "vqa_choice": lambda t: vqa.parse(t, question="Which?", options=OPTIONS),
    "text_qa": lambda t: text_qa.parse(t, question="Which?", options={"A": "x", "B": "y"}),
    "report": report.parse,
    "ground": lambda t: ground.parse(t, input_size=(640, 480), original_size=(1000, 750)),
    "detect": lambda t: detect.parse(t, input_size=(640, 480), original_size=(1000, 750)),
    "classify": classify.parse,
    "classify_free": lambda t: classify.parse(t, labels=[]),
    "reason": lambda t: reason.parse(t, question="Why?"),
    "summarize": summarize.parse,
}


@settings(max_examples=60, deadline=None)
@given(text=texts, name=st.sampled_from(sorted(PARSERS)))
def test_every_parser_takes_any_text_and_returns_a_valid_result(text, name):
    result = PARSERS[name](text)
    assert result.raw_text == text
    assert type(result).model_validate_json(result.model_dump_json()) == result
    assert isinstance(result.summary(), str)


@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_a_chosen_letter_is_always_one_of_the_options(text):
    result = vqa.parse(text, question="Which?", options=OPTIONS)
    assert result.choice in (None, "A", "B", "C")
    if result.choice:
        assert result.choice_text == OPTIONS["ABC".index(result.choice)]


@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_classification_labels_are_always_candidates(text):
    result = classify.parse(text)
    assert set(result.labels) <= set(classify.CHEST_XRAY14_LABELS)
    assert not (result.no_finding and set(result.labels) - {"No Finding"})
