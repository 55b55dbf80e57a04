"""VQA and text QA: prompts, question types, option handling and answer parsing."""

from __future__ import annotations

import pytest

from medmo_agent.errors import InputError
from medmo_agent.tasks import text_qa, vqa
from medmo_agent.tasks._common import choice_from_text, clean_answer, normalize_options
from medmo_agent.types import ImagePart

OPTIONS = ["Pneumonia", "Pleural effusion", "Effusion of the knee", "Normal"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is there a pneumothorax?", "closed"),
        ("are the lungs clear?", "closed"),
        ("Does this image show a fracture?", "closed"),
        ("Can you see free air?", "closed"),
        ("Was contrast given?", "closed"),
        ("Has the tube moved?", "closed"),
        ("Is the lesion in the left or the right lung?", "open"),
        ("What organ is shown?", "open"),
        ("Where is the mass?", "open"),
        ("Is this normal? What is abnormal?", "open"),
        ("Island of bone: what is it?", "open"),
        ("", "open"),
    ],
)
def test_question_type_is_detected_conservatively(question, expected):
    assert vqa.detect_question_type(question) == expected


def test_options_make_a_question_multiple_choice():
    assert vqa.detect_question_type("Is it A or B?", ["a", "b"]) == "multiple_choice"


def test_closed_prompt_carries_the_yes_no_suffix_after_the_image(image):
    system, user = vqa.build_messages(image, " Is there a fracture? ")
    assert system.role == "system" and system.text == "You are a medical imaging expert."
    assert isinstance(user.parts[0], ImagePart)
    assert user.text == "Is there a fracture?\nPlease output 'yes' or 'no'(no extra output)."


def test_multiple_choice_prompt_from_a_mapping(image):
    _, user = vqa.build_messages(image, "Which?", options={"a": "mass", "b": "nodule"})
    assert user.text == (
        "Which?\nA. mass\nB. nodule\n"
        "Answer with the option's letter from the given choices directly."
    )


def test_open_prompt_is_the_question(image):
    assert vqa.build_messages(image, "Describe it.", question_type="open")[1].text == "Describe it."


@pytest.mark.parametrize(
    ("options", "fix_word"),
    [
        (["one"], "two"),
        ([], "two"),
        (["a", " "], "empty"),
        ("ab", "list"),
        ([str(i) for i in range(27)], "26"),
    ],
)
def test_bad_options_are_input_errors_naming_the_fix(options, fix_word):
    with pytest.raises(InputError) as info:
        normalize_options(options)
    assert info.value.input == "options"
    assert fix_word in str(info.value)


def test_multiple_choice_without_options_is_an_input_error(image):
    with pytest.raises(InputError):
        vqa.build_messages(image, "Which?", question_type="multiple_choice")


def test_unknown_question_type_is_an_input_error(image):
    with pytest.raises(InputError) as info:
        vqa.build_messages(image, "Which?", question_type="essay")
    assert "open, closed, multiple_choice" in str(info.value)


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B. Pleural effusion", "B"),
        ("(D) normal", "D"),
        ("C) Effusion of the knee", "C"),
        ("The answer is B", "B"),
        ("The answer is (C).", "C"),
        ("Answer: D", "D"),
        ("Option A", "A"),
        ("**B**", "B"),
        ("pleural effusion", "B"),
        ("There is a left pleural effusion.", "B"),
        ("Findings are most consistent with pneumonia.", "A"),
        ("I think D is right", "D"),
        ("A large mass is seen", None),
        ("Something else entirely", None),
        ("", None),
    ],
)
def test_the_chosen_letter_is_read_robustly(answer, letter):
    assert choice_from_text(answer, normalize_options(OPTIONS)) == letter


@pytest.mark.parametrize(
    ("raw", "yes_no"),
    [
        ("Yes", True),
        ("yes.", True),
        ("No", False),
        ("NO, there is none.", False),
        ("<think>hmm</think><answer>no</answer>", False),
        ("The answer is yes", True),
        ("Definitely yes", True),
        ("Maybe", None),
        ("Yes, but no effusion.", True),
        ("Maybe yes, maybe no", None),
    ],
)
def test_closed_answers_become_booleans(raw, yes_no):
    result = vqa.parse(raw, question="Is there a fracture?")
    assert result.question_type == "closed"
    assert result.yes_no is yes_no
    assert result.raw_text == raw
    assert (yes_no is None) == any("neither" in n for n in result.notes)


def test_multiple_choice_answer_fills_choice_and_text():
    result = vqa.parse("<answer>(B)</answer>", question="Which?", options=OPTIONS)
    assert result.answer == "(B)"
    assert (result.choice, result.choice_text) == ("B", "Pleural effusion")


def test_an_answer_naming_no_option_says_so():
    result = vqa.parse("Cardiomegaly", question="Which?", options=OPTIONS)
    assert result.choice is None and result.notes == ["The answer names none of the options."]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<think>reasoning</think>Left lung.", "Left lung."),
        ("<think>reasoning</think><answer>Left lung.</answer>", "Left lung."),
        ("<answer>Left lung.", "Left lung."),
        ("<think>cut off mid-thought", "cut off mid-thought"),
        ("  plain  ", "plain"),
    ],
)
def test_answers_are_cleaned_of_reasoning_tags(raw, clean):
    assert clean_answer(raw) == clean


def test_text_qa_has_no_image_and_reads_choices():
    messages = text_qa.build_messages("Drug of choice?", options=["Epinephrine", "Atropine"])
    assert messages[-1].images == []
    assert messages[-1].text.startswith("Drug of choice?\nA. Epinephrine\nB. Atropine\n")
    result = text_qa.parse(
        "A. Epinephrine", question="Drug of choice?", options=["Epinephrine", "Atropine"]
    )
    assert (result.choice, result.choice_text) == ("A", "Epinephrine")
    assert text_qa.build_messages("Free question?")[-1].text == "Free question?"


def test_text_qa_rejects_an_empty_question():
    with pytest.raises(InputError):
        text_qa.build_messages("")
