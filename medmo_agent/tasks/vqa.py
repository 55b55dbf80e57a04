"""Visual question answering: open, closed (yes/no) and multiple-choice questions."""

from __future__ import annotations

import re
from typing import Literal

from ..errors import InputError
from ..types import MedImage, Message
from ._common import (
    Options,
    apply_choice,
    clean_answer,
    format_options,
    normalize_options,
    render,
    system_message,
    user_message,
)
from .declare import TaskCore, task
from .params import (
    Generation,
    ImageParam,
    OptionsParam,
    QuestionParam,
    QuestionTypeParam,
    View,
)
from .results import VQAResult

__all__ = [
    "QuestionType",
    "build_messages",
    "check_question",
    "detect_question_type",
    "parse",
    "parse_yes_no",
    "vqa",
]

QuestionType = Literal["open", "closed", "multiple_choice"]
_QUESTION_TYPES = ("open", "closed", "multiple_choice")

#: Words that open a yes/no question.
_AUXILIARIES = frozenset(
    [
        "is",
        "are",
        "am",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "has",
        "have",
        "had",
        "will",
        "would",
        "should",
        "shall",
        "may",
        "might",
        "must",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "doesn't",
        "don't",
        "didn't",
        "can't",
        "cannot",
        "hasn't",
        "haven't",
    ]
)


def detect_question_type(question: str, options: Options | None = None) -> QuestionType:
    """Guess the question type, conservatively.

    Options given -> ``multiple_choice``. A single question that opens with an auxiliary
    verb (is, are, does, can, was, has, ...) and offers no alternatives (no " or ") ->
    ``closed``. Anything else -> ``open``, which never constrains the answer, so a wrong
    guess costs little.
    """
    if options:
        return "multiple_choice"
    q = question.strip().lower()
    first = re.split(r"[\s,?]+", q, maxsplit=1)[0] if q else ""
    if first in _AUXILIARIES and " or " not in q and q.count("?") <= 1:
        return "closed"
    return "open"


def check_question(question: str) -> str:
    """The question, stripped.

    Raises:
        InputError: the question is empty.
    """
    if not isinstance(question, str) or not question.strip():
        raise InputError(
            "The question is empty.", input="question", fix="Ask a question about the image."
        )
    return question.strip()


def build_messages(
    image: MedImage,
    question: str,
    *,
    options: Options | None = None,
    question_type: QuestionType | None = None,
) -> list[Message]:
    """Messages asking ``question`` about ``image``, worded as MedMO was evaluated.

    Raises:
        InputError: empty question, unknown question type, or unusable options.
    """
    question = check_question(question)
    qtype = question_type or detect_question_type(question, options)
    if qtype not in _QUESTION_TYPES:
        raise InputError(
            f"Unknown question type {qtype!r}.",
            input="question_type",
            fix=f"Use one of: {', '.join(_QUESTION_TYPES)}, or leave it out to detect it.",
        )
    if qtype == "multiple_choice":
        if not options:
            raise InputError(
                "A multiple-choice question needs options.",
                input="options",
                fix="Pass the options, or ask an open question.",
            )
        opts = normalize_options(options)
        text = render("multiple_choice", question=question, options=format_options(opts))
    elif qtype == "closed":
        text = render("vqa_closed", question=question)
    else:
        text = question
    return [system_message(), user_message(text, image)]


_YES_NO_START = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
# one optional "is"/":" then \W*: adjacent \s*\s*\W* would retry every split of a long run of
# spaces (cubic time)
_YES_NO_ANSWER = re.compile(r"\banswer(?:\s*(?:is|:))?\W*(yes|no)\b", re.IGNORECASE)
_YES_NO_ANY = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_yes_no(answer: str) -> bool | None:
    """``True`` for yes, ``False`` for no, ``None`` when the answer says neither (or both)."""
    m = _YES_NO_START.search(answer) or _YES_NO_ANSWER.search(answer)
    if m:
        return m.group(1).lower() == "yes"
    found = {w.lower() for w in _YES_NO_ANY.findall(answer)}
    if len(found) == 1:
        return found.pop() == "yes"
    return None


def parse(
    text: str,
    *,
    question: str,
    options: Options | None = None,
    question_type: QuestionType | None = None,
) -> VQAResult:
    """Read a VQA answer; never raises on model output."""
    qtype = question_type or detect_question_type(question, options)
    if qtype not in _QUESTION_TYPES:
        qtype = "open"
    answer = clean_answer(text)
    result = VQAResult(raw_text=text, question=question, question_type=qtype, answer=answer)
    if not answer:
        result.notes.append("The model gave an empty answer.")
        return result
    if qtype == "closed":
        result.yes_no = parse_yes_no(answer)
        if result.yes_no is None:
            result.notes.append("The answer says neither yes nor no.")
    elif qtype == "multiple_choice" and options:
        apply_choice(result, answer, options)
    return result


@task(
    name="vqa",
    title="Ask MedMO about a medical image",
    summary="answer a question about an image (visual question answering)",
    result=VQAResult,
    aliases=("ask",),
    main="question",
)
def vqa(
    core: TaskCore,
    image: ImageParam,
    question: QuestionParam,
    *,
    options: OptionsParam = None,
    question_type: QuestionTypeParam = None,
    view: View,
    gen: Generation,
) -> VQAResult:
    """Answer a question about a medical image (X-ray, CT, MRI, ultrasound, pathology,
    dermatology, fundus, microscopy) with MedMO, a medical vision-language model.

    Use for direct visual questions: "Is there a pleural effusion?", "Which organ is
    shown?", "What is the abnormality in the left lung?". For yes/no questions the answer
    comes back in `yes_no`; give `options` for multiple choice and the chosen letter comes
    back in `choice`. For a full read of a study use `report`; for where a finding is,
    use `ground`; for a question that needs several reasoning steps, use `reason`.

    Returns:
        The answer (`answer`), `yes_no` for closed questions, `choice` and `choice_text`
        for multiple choice, the raw text, and the image handle.
    """
    question = check_question(question)  # before loading the image
    if options is not None:
        normalize_options(options)
    img = core.load(image, **view.as_dict())
    messages = build_messages(img, question, options=options, question_type=question_type)
    completion = core.generate(messages, gen)
    result = parse(completion.text, question=question, options=options, question_type=question_type)
    return core.finish(result, completion, img)
