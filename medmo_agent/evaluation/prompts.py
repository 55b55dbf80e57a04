"""Question prompts per question type, worded as MedEvalKit builds them."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Literal

Lang = Literal["en", "zh"]

# Suffixes per (question type, language, reasoning). Reasoning variants ask for \boxed{}.
_YES_NO = {
    ("en", False): "Please output 'yes' or 'no'(no extra output).",
    ("en", True): 'Please output "yes" or "no" and put the answer in one "\\boxed{}".',
    ("zh", False): "请输出'是'或'否'(不要有任何其它输出)。",
    ("zh", True): "请输出'是'或'否'，并将答案放在一个'\\boxed{}'中。",
}
_CLOSED = {
    ("en", False): "Answer the question using a single word or phrase.",
    ("en", True): (
        'Answer the question using a single word or phrase and put the answer in one "\\boxed{}".'
    ),
    ("zh", False): "请用一个单词或者短语回答该问题。",
    ("zh", True): "请用一个单词或者短语回答该问题，并将答案放在一个'\\boxed{}'中。",
}
_OPEN = {
    ("en", False): "Please answer the question concisely.",
    ("en", True): 'Please answer the question concisely and put the answer in one "\\boxed{}".',
    ("zh", False): "请简要回答该问题。",
    ("zh", True): "请简要回答该问题，并将答案放在一个'\\boxed{}'中。",
}
_CHOICE = {
    ("en", False): "Answer with the option's letter from the given choices directly.",
    ("en", True): (
        "Answer with the option's letter from the given choices and put the letter in one "
        '"\\boxed{}".'
    ),
    ("zh", False): "请直接使用给定选项中的选项字母来回答该问题。",
    ("zh", True): '请直接使用给定选项中的选项字母来回答该问题,并将答案包裹在"\\boxed{}"里',
}


class OptionStyle(enum.Enum):
    """How an option line is written (benchmarks differ)."""

    DOT_SPACE = "{letter}. {text}"  # MedMCQA, MedQA, OmniMedVQA, MedXpertQA
    DOT = "{letter}.{text}"  # PubMedQA, Medbullets, SuperGPQA, MMLU
    # PMC-VQA: the file's own choice strings ("A:CT"), unchanged
    PAREN = "({letter}) {text}"  # MMMU


def _check_lang(lang: str) -> Lang:
    if lang not in ("en", "zh"):
        raise ValueError(f"unknown prompt language {lang!r}: use 'en' or 'zh'")
    return "en" if lang == "en" else "zh"


def yes_no_prompt(question: str, *, lang: str = "en", reasoning: bool = False) -> str:
    """A yes/no question: the question, a newline, the yes/no instruction."""
    return question + "\n" + _YES_NO[_check_lang(lang), reasoning]


def closed_prompt(question: str, *, lang: str = "en", reasoning: bool = False) -> str:
    """A closed short-answer question (SLAKE's closed items)."""
    return question + "\n" + _CLOSED[_check_lang(lang), reasoning]


def open_prompt(question: str, *, lang: str = "en", reasoning: bool = False) -> str:
    """An open-ended question."""
    return question + "\n" + _OPEN[_check_lang(lang), reasoning]


def option_letter(index: int) -> str:
    """The capital letter of option ``index`` (0 -> ``A``)."""
    return chr(ord("A") + index)


def format_options(texts: Sequence[str], style: OptionStyle) -> list[str]:
    """Option lines in a benchmark's style, lettered from ``A``.

    Args:
        texts: the option texts in order.
        style: the benchmark's :class:`OptionStyle`.

    Returns:
        One line per option, e.g. ``"A. Pneumonia"``.
    """
    return [style.value.format(letter=option_letter(i), text=t) for i, t in enumerate(texts)]


def multiple_choice_prompt(
    question: str, options: Sequence[str], *, lang: str = "en", reasoning: bool = False
) -> str:
    """A multiple-choice prompt (it starts with a newline, as MedEvalKit's does).

    Args:
        question: the question text.
        options: the already formatted option lines (:func:`format_options`).
        lang: ``"en"`` or ``"zh"``.
        reasoning: ask for the letter in ``\\boxed{}``.
    """
    lang_ = _check_lang(lang)
    body = "\n".join(str(o) for o in options)
    if lang_ == "en":
        head = f"\nQuestion: {question}\nOptions: \n{body}"
    else:
        head = f"\n问题： {question}\n选项： \n{body}"
    return head + "\n" + _CHOICE[lang_, reasoning]


def pubmedqa_prompt(
    context: Sequence[str], question: str, options: Sequence[str], *, reasoning: bool = False
) -> str:
    """PubMedQA: ``Context: `` and the context paragraphs joined by newlines, then the MC prompt.

    Args:
        context: the abstract's context paragraphs.
        question: the question.
        options: formatted option lines (``OptionStyle.DOT``).
        reasoning: ask for the letter in ``\\boxed{}``.
    """
    joined = "\n".join(context)
    return f"Context: {joined}\n" + multiple_choice_prompt(question, options, reasoning=reasoning)


def mmmu_prompt(question: str, options: Sequence[str] | None, *, reasoning: bool = False) -> str:
    """MMMU's layout: the question, a blank line, ``(A) text`` lines, the instruction.

    Args:
        question: the question text.
        options: option texts for a multiple-choice item; ``None`` or empty for open items
            (which get the closed short-answer instruction, as MMMU's template does).
        reasoning: ask for the letter in ``\\boxed{}``.
    """
    # MMMU's template keeps its indentation and blank lines; reproduced character for character.
    if options:
        example = "".join(line + "\n" for line in format_options(options, OptionStyle.PAREN))
        prompt = f"\n{question}\n\n{example}\n\n        "
        return prompt + _CHOICE["en", reasoning]
    return f"\n{question}\n\n        " + _CLOSED["en", reasoning]
