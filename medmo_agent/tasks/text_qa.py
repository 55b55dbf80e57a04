"""Clinical knowledge questions without an image: free answer or multiple choice."""

from __future__ import annotations

from ..errors import InputError
from ..types import Message
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
    OptionsParam,
    QuestionParam,
)
from .results import TextQAResult

__all__ = ["build_messages", "parse", "text_qa"]


def build_messages(question: str, *, options: Options | None = None) -> list[Message]:
    """Messages asking a text-only question; with options, as a multiple-choice question.

    Raises:
        InputError: empty question or unusable options.
    """
    if not isinstance(question, str) or not question.strip():
        raise InputError("The question is empty.", input="question", fix="Ask a question.")
    question = question.strip()
    if options is not None:
        opts = normalize_options(options)
        text = render("multiple_choice", question=question, options=format_options(opts))
    else:
        text = question
    return [system_message(), user_message(text)]


def parse(text: str, *, question: str, options: Options | None = None) -> TextQAResult:
    """Read a text-QA answer; never raises on model output."""
    answer = clean_answer(text)
    result = TextQAResult(raw_text=text, question=question, answer=answer)
    if not answer:
        result.notes.append("The model gave an empty answer.")
        return result
    if options:
        apply_choice(result, answer, options)
    return result


@task(
    name="text_qa",
    title="Answer a clinical question",
    summary="answer a clinical knowledge question (no image)",
    result=TextQAResult,
    aliases=("qa",),
    main="question",
)
def text_qa(
    core: TaskCore,
    question: QuestionParam,
    *,
    options: OptionsParam = None,
    gen: Generation,
) -> TextQAResult:
    """Answer a medical knowledge question without an image (board-exam style, PubMedQA).

    Use for questions about anatomy, disease, drugs, guidelines or a differential
    diagnosis from a text vignette, that do not depend on a particular image. Give
    `options` for multiple choice; the chosen letter comes back in `choice`.

    Returns:
        The answer, and for multiple choice the chosen `choice` letter and its text.
    """
    messages = build_messages(question, options=options)
    completion = core.generate(messages, gen)
    result = parse(completion.text, question=question.strip(), options=options)
    return core.finish(result, completion, None)
