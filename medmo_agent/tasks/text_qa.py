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
from .results import TextQAResult

__all__ = ["build_messages", "parse"]


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
