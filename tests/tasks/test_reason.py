"""Reasoning: prompt with <think>/<answer> instructions, and thinking/steps/answer parsing."""

from __future__ import annotations

import pytest

from medmo_agent.errors import InputError
from medmo_agent.tasks import reason


def test_prompt_ends_with_think_and_answer_instructions(image):
    text = reason.build_messages(image, "What is the diagnosis?", context="Fever.")[-1].text
    assert text.startswith("Clinical context: Fever.\nWhat is the diagnosis?\n")
    assert text.rstrip().endswith(
        "<think> reasoning process here </think><answer> answer here </answer>."
    )


def test_an_empty_question_is_an_input_error(image):
    with pytest.raises(InputError):
        reason.build_messages(image, " ")


def test_tagged_reasoning_gives_thinking_steps_and_answer():
    text = (
        "<think>\n1. The heart is enlarged.\n2. There are bilateral effusions.\n"
        "3. Kerley B lines suggest edema.\n</think>\n<answer>Congestive heart failure</answer>"
    )
    result = reason.parse(text, question="Diagnosis?")
    assert result.steps == [
        "The heart is enlarged.",
        "There are bilateral effusions.",
        "Kerley B lines suggest edema.",
    ]
    assert result.answer == "Congestive heart failure"
    assert result.thinking.startswith("1. The heart")
    assert result.notes == []


def test_step_n_markers_split_steps_even_inline():
    result = reason.parse(
        "<think>Step 1: look. Step 2: compare.</think><answer>Normal</answer>", question="q"
    )
    assert result.steps == ["look.", "compare."]


def test_unnumbered_thinking_splits_into_sentences():
    result = reason.parse(
        "<think>The lung is dark. No vessels reach the edge.</think><answer>PTX</answer>",
        question="q",
    )
    assert result.steps == ["The lung is dark.", "No vessels reach the edge."]


@pytest.mark.parametrize(
    "text",
    [
        "<think>Dark lung.<answer>Pneumothorax",  # no closing tags at all
        "<think>Dark lung.</think><answer>Pneumothorax",  # answer cut off
        "<think>Dark lung.</think>\n\nPneumothorax",  # no answer tag
        "Dark lung.\n\nPneumothorax",  # no tags at all
    ],
)
def test_missing_tags_are_tolerated(text):
    result = reason.parse(text, question="q")
    assert result.answer == "Pneumothorax"
    assert result.thinking == "Dark lung."


def test_reasoning_cut_off_before_any_answer_uses_its_last_step():
    result = reason.parse("<think>1. Dark lung.\n2. Probably a pneumothorax", question="q")
    assert result.answer == "Probably a pneumothorax"
    assert any("not finished" in n for n in result.notes)
