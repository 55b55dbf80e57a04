"""Prompts per question type, character for character as MedEvalKit builds them."""

import pytest

from medmo_agent.evaluation.prompts import (
    OptionStyle,
    closed_prompt,
    format_options,
    mmmu_prompt,
    multiple_choice_prompt,
    open_prompt,
    pubmedqa_prompt,
    yes_no_prompt,
)


def test_yes_no_open_closed_suffixes():
    assert yes_no_prompt("Is there a mass?") == (
        "Is there a mass?\nPlease output 'yes' or 'no'(no extra output)."
    )
    assert open_prompt("Where?") == "Where?\nPlease answer the question concisely."
    assert closed_prompt("Which organ?") == (
        "Which organ?\nAnswer the question using a single word or phrase."
    )


def test_chinese_slake_suffixes():
    assert closed_prompt("哪个器官?", lang="zh") == "哪个器官?\n请用一个单词或者短语回答该问题。"
    assert open_prompt("在哪里?", lang="zh") == "在哪里?\n请简要回答该问题。"
    assert yes_no_prompt("有吗?", lang="zh") == "有吗?\n请输出'是'或'否'(不要有任何其它输出)。"


def test_reasoning_variants_ask_for_a_box():
    assert open_prompt("Q", reasoning=True).endswith(
        'Please answer the question concisely and put the answer in one "\\boxed{}".'
    )


@pytest.mark.parametrize(
    ("style", "first"),
    [
        (OptionStyle.DOT_SPACE, "A. lung"),
        (OptionStyle.DOT, "A.lung"),
        (OptionStyle.PAREN, "(A) lung"),
    ],
)
def test_option_styles(style, first):
    lines = format_options(["lung", "liver"], style)
    assert lines[0] == first
    assert lines[1] == first.replace("A", "B").replace("lung", "liver")


def test_multiple_choice_layout():
    prompt = multiple_choice_prompt("Which?", format_options(["x", "y"], OptionStyle.DOT_SPACE))
    assert prompt == (
        "\nQuestion: Which?\nOptions: \nA. x\nB. y\n"
        "Answer with the option's letter from the given choices directly."
    )


def test_pubmedqa_context_prefix():
    prompt = pubmedqa_prompt(
        ["c1", "c2"], "Q?", format_options(["yes", "no", "maybe"], OptionStyle.DOT)
    )
    assert prompt.startswith("Context: c1\nc2\n\nQuestion: Q?\nOptions: \nA.yes\nB.no\nC.maybe\n")


def test_mmmu_layout():
    assert mmmu_prompt("Q?", ["a", "b"]) == (
        "\nQ?\n\n(A) a\n(B) b\n\n\n        "
        "Answer with the option's letter from the given choices directly."
    )
    assert mmmu_prompt("Q?", None) == (
        "\nQ?\n\n        Answer the question using a single word or phrase."
    )


def test_unknown_language_is_named():
    with pytest.raises(ValueError, match="'fr'"):
        open_prompt("Q", lang="fr")
