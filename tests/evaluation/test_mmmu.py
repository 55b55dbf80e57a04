"""MMMU: multiple choice by MMMU's own parser (as MedEvalKit runs it); open answers by
parsed candidates by default, characters in compat."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medmo_agent.evaluation.mmmu import (
    judge_multi_choice,
    judge_open,
    mmmu_first_pass,
    normalize,
    options_map,
    parse_multi_choice,
    parse_open_response,
)


def test_normalize():
    assert normalize(" 1,234.567 ") == [1234.57]
    assert normalize("A") == [" a", "a "]
    assert normalize("Pneumonia") == ["pneumonia"]


def test_parse_open_response_keeps_the_shortest_tail_and_numbers():
    assert parse_open_response("The answer is 5.") == [5.0]
    assert "pneumonia" in parse_open_response("It is pneumonia")


def test_open_answers_correct_vs_character_iteration():
    assert judge_open("5", "The answer is 5.") is True
    assert judge_open("5", "The answer is 5.", compat="medevalkit") is False
    assert judge_open("pneumonia", "It is pneumonia") is True
    assert judge_open("pneumonia", "It is pneumonia", compat="medevalkit") is False
    assert judge_open(["4", "four"], "so four") is True
    assert judge_open("6", "The answer is 5.") is False


# ----- multiple choice: MMMU's parse_multi_choice_response as MedEvalKit runs it -----

OPTIONS = ("(A) pneumonia", "(B) pleural effusion", "(C) normal", "(D) cardiomegaly")
INDEX = options_map(OPTIONS)


def _parse(text: str) -> tuple[str, bool]:
    return parse_multi_choice(text, INDEX, random.Random(0))


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("(B)", "B"),
        ("The answer is (C).", "C"),
        ("B", "B"),
        ("B.", "B"),  # trailing punctuation stripped
        ("'D'", "D"),
        ("Answer: A", "A"),
        # bracketed letters win over bare ones; the last written wins
        ("A or (B)", "B"),
        ("(A) looks likely but (D) fits better", "D"),
        ("A then maybe C", "C"),
        # option text only with more than five words, the last mentioned wins
        ("I think this shows a pleural effusion here", "B"),
        ("not pneumonia but rather cardiomegaly in this film", "D"),
        # an <answer> tag or a box is read first
        ("<think>(A)?</think><answer>C</answer>", "C"),
        ("so \\boxed{D}", "D"),
        ("<answer>\\boxed{B}</answer>", "B"),
    ],
)
def test_multiple_choice_golden(response, letter):
    assert _parse(mmmu_first_pass(response)) == (letter, False)


def test_lowercase_letters_words_containing_letters_and_short_texts_find_nothing():
    # " a " is not " A "; "Cardiomegaly" holds no standalone letter; four words < six
    for response in ("a", "Cardiomegaly", "pleural effusion it is"):
        letter, drawn = _parse(response)
        assert drawn and letter in INDEX


def test_the_random_fallback_is_seeded_per_item():
    first = judge_multi_choice("validation_Clinical_Medicine_1", OPTIONS, "A", "no idea")
    again = judge_multi_choice("validation_Clinical_Medicine_1", OPTIONS, "A", "no idea")
    assert first == again and first[2] is True
    drawn = {judge_multi_choice(f"id{i}", OPTIONS, "A", "no idea")[0] for i in range(40)}
    assert drawn == set(INDEX)  # every letter comes up across items
    expected = random.Random("42:id7").choice(list(INDEX))
    assert judge_multi_choice("id7", OPTIONS, "A", "?")[0] == expected


def test_an_option_line_not_in_mmmu_form_is_refused():
    with pytest.raises(ValueError, match="expected '\\(A\\) text'"):
        options_map(["A. pneumonia"])


@given(st.text(max_size=60), st.sampled_from(sorted(INDEX)))
def test_the_prediction_is_always_one_of_the_options(text, letter):
    assert _parse(text)[0] in INDEX
    assert judge_multi_choice("x", OPTIONS, letter, text)[0] in INDEX


# no bracket, tag or box of its own: a bracketed letter written at the end is the answer
_PLAIN = st.text(alphabet=st.characters(blacklist_characters="(<\\"), max_size=60)


@given(_PLAIN, st.sampled_from(sorted(INDEX)))
def test_a_bracketed_letter_at_the_end_wins_over_any_text(text, letter):
    assert _parse(mmmu_first_pass(f"{text} ({letter})")) == (letter, False)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz .,", max_size=40), st.sampled_from("ABCD"))
def test_a_bare_letter_after_lowercase_text_is_read(text, letter):
    assert _parse(f"{text} {letter}") == (letter, False)


def test_an_item_whose_options_are_images_keeps_its_first_image():
    import io

    from medmo_agent.evaluation.items import RowContext, mmmu_item

    from .fixtures import draw

    def png(seed: int) -> dict:
        buf = io.BytesIO()
        draw(seed).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    # a hub row: the options name images 2-4, written "<image N>", and the string is a list literal
    row = {
        "id": "validation_Clinical_Medicine_7",
        "question": "<image 1> Which of the images shows the same finding?",
        "options": str(["<image 2>", "<image 3>", "<image 4>"]),
        "answer": "C",
        "question_type": "multiple-choice",
        **{f"image_{n}": png(n) for n in range(1, 5)},
        "image_5": None,
    }
    item = mmmu_item(row, RowContext("mmmu_med", 0, "Clinical_Medicine"))
    assert [img.read_bytes() for img in item.images] == [row["image_1"]["bytes"]]
    assert item.options == ("(A) <image 2>", "(B) <image 3>", "(C) <image 4>")
    assert item.answer == "C"
