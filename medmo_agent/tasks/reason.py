"""Step-by-step clinical reasoning with MedMO's RL-stage <think>/<answer> format."""

from __future__ import annotations

import re

from ..errors import InputError
from ..types import MedImage, Message
from ._common import render, system_message, user_message
from .declare import TaskCore, task
from .params import (
    ContextParam,
    Generation,
    ImageParam,
    QuestionParam,
    View,
)
from .results import ReasoningResult

__all__ = ["build_messages", "parse", "reason", "split_steps"]


def build_messages(
    image: MedImage | None, question: str, *, context: str | None = None
) -> list[Message]:
    """Messages asking for reasoning inside ``<think>`` and the answer inside ``<answer>``.

    Raises:
        InputError: empty question.
    """
    if not isinstance(question, str) or not question.strip():
        raise InputError(
            "The question is empty.",
            input="question",
            fix="Ask the clinical question to reason about.",
        )
    question = question.strip()
    if context and context.strip():
        question = f"{render('context', context=context.strip())}\n{question}"
    return [system_message(), user_message(render("reason", question=question), image)]


_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|(?=<answer>)|$)", re.IGNORECASE | re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_TAGS_RE = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)
_STEP_RE = re.compile(
    r"(?:^[ \t]*(?:\d+[.)]|[-*•])"
    # no [ \t]* before "step": it would rescan a long run of spaces from each of them
    r"|(?:^|(?<=\s))(?:\*\*)?step[ \t]*\d+(?:\*\*)?[ \t]*[:.)\-]?)[ \t]*(?:\*\*[ \t]*)?",
    re.IGNORECASE | re.MULTILINE,
)


def split_steps(thinking: str) -> list[str]:
    """Reasoning split into steps: numbered lines, "Step N" lines or bullets (continuation
    lines join their step); otherwise sentences."""
    text = thinking.strip()
    if not text:
        return []
    marks = list(_STEP_RE.finditer(text))
    if len(marks) >= 2 or (marks and marks[0].start() == 0):
        steps = []
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            step = re.sub(r"\s+", " ", text[m.end() : end]).strip()
            if step:
                steps.append(step)
        before = text[: marks[0].start()].strip()
        return ([re.sub(r"\s+", " ", before)] if before else []) + steps
    flat = re.sub(r"\s+", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", flat) if s.strip()]


def parse(text: str, *, question: str) -> ReasoningResult:
    """Read thinking, steps and answer; tolerates missing closing tags. Never raises.

    Without ``<answer>``, the answer is the last paragraph after the thinking (or of the
    whole text), and the rest is the thinking.
    """
    text_s = text if isinstance(text, str) else str(text or "")
    think_m = _THINK_RE.search(text_s)
    answer_m = _ANSWER_RE.search(text_s)
    result = ReasoningResult(raw_text=text, question=question, answer="")
    if answer_m:
        answer = answer_m.group(1)
        thinking = think_m.group(1) if think_m else text_s[: answer_m.start()]
    else:
        rest = text_s[think_m.end() :] if think_m else text_s
        thinking = think_m.group(1) if think_m else ""
        paragraphs = [p for p in re.split(r"\n\s*\n", _TAGS_RE.sub(" ", rest)) if p.strip()]
        if paragraphs:
            answer = paragraphs[-1]
            if not think_m:
                thinking = "\n\n".join(paragraphs[:-1])
        else:
            answer = ""
        if paragraphs:
            result.notes.append("No <answer> tag; the answer is the last paragraph.")
        if think_m and not paragraphs:
            # cut off inside the reasoning: its last step is the best answer we have
            steps = split_steps(_TAGS_RE.sub(" ", thinking))
            answer = steps[-1] if steps else ""
            result.notes.append("The reasoning was not finished; no separate answer.")
    result.thinking = _TAGS_RE.sub(" ", thinking).strip()
    result.answer = _TAGS_RE.sub(" ", answer).strip()
    result.steps = split_steps(result.thinking)
    if not result.answer:
        result.notes.append("The model gave no answer.")
    return result


@task(
    name="reason",
    title="Step-by-step clinical reasoning",
    summary="step-by-step clinical reasoning towards an answer",
    result=ReasoningResult,
    main="question",
)
def reason(
    core: TaskCore,
    image: ImageParam,
    question: QuestionParam,
    *,
    context: ContextParam = None,
    view: View,
    gen: Generation,
) -> ReasoningResult:
    """Reason step by step about a medical image towards an answer to a clinical question.

    Use when the question needs more than a glance: a differential diagnosis, the most
    likely cause of a finding, whether findings fit a history. It is slower than `vqa`.
    Give a generous `max_new_tokens` (e.g. 1024): reasoning is long.

    Returns:
        `thinking`, the reasoning `steps`, and the final `answer`.
    """
    if not isinstance(question, str) or not question.strip():
        build_messages(None, question)  # raises InputError before the image is loaded
    img = core.load(image, **view.as_dict())
    completion = core.generate(build_messages(img, question, context=context), gen)
    return core.finish(parse(completion.text, question=question.strip()), completion, img)
