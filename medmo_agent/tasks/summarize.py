"""Key findings and a one-sentence summary of a report text (no image)."""

from __future__ import annotations

import re

from ..errors import InputError
from ..types import Message
from ._common import clean_answer, render, system_message, user_message
from .declare import TaskCore, task
from .params import (
    Generation,
    ReportTextParam,
)
from .results import SummaryResult

__all__ = ["build_messages", "parse", "summarize_report"]


def build_messages(report_text: str) -> list[Message]:
    """Messages asking for bullet-point key findings and a one-sentence summary.

    Raises:
        InputError: empty report text.
    """
    if not isinstance(report_text, str) or not report_text.strip():
        raise InputError(
            "The report text is empty.",
            input="report_text",
            fix="Pass the text of a radiology report to summarize.",
        )
    return [system_message(), user_message(render("summarize", report=report_text.strip()))]


_BULLET_RE = re.compile(r"^[ \t]*(?:[-*•+]|\d+[.)])[ \t]+(.+)$")
# (Never two [ \t]* runs with only optional tokens between them: the engine would try every
# split of a long run of spaces, quadratic in its length.)
_SUMMARY_RE = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?(?:(?:\*\*|__)[ \t]*)?(?:one[- ]sentence[ \t]+)?summary[ \t]*"
    r"(?:(?:\*\*|__)[ \t]*)?[:\-–][ \t]*(?:(?:\*\*|__)[ \t]*)?(.*)$",
    re.IGNORECASE,
)
_HEADING_RE = re.compile(r"^[ \t]*(?:#+[ \t]*)?(?:\*\*)?[^:]{0,40}(?:\*\*)?:[ \t]*(?:\*\*[ \t]*)?$")


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("**", "").replace("__", "")).strip()


def parse(text: str) -> SummaryResult:
    """Read bullets (``-``, ``*``, ``•``, ``1.``) as key findings and the ``Summary:`` line as
    the summary; without bullets, sentences become key findings. Never raises."""
    answer = clean_answer(text)
    result = SummaryResult(raw_text=text)
    if not answer:
        result.notes.append("The model gave an empty summary.")
        return result
    bullets: list[str] = []
    summary_lines: list[str] = []
    prose: list[str] = []
    in_summary = False
    for line in answer.splitlines():
        if not line.strip():
            in_summary = False
            continue
        sm = _SUMMARY_RE.match(line)
        bm = _BULLET_RE.match(line)
        if sm:
            in_summary = True
            if sm.group(1).strip():
                summary_lines.append(sm.group(1))
        elif bm:
            in_summary = False
            bullets.append(_tidy(bm.group(1)))
        elif _HEADING_RE.match(line):
            in_summary = False
        elif in_summary:
            summary_lines.append(line)
        else:
            prose.append(line)
    summary = _tidy(" ".join(summary_lines))
    had_bullets = bool(bullets)
    if not had_bullets:
        flat = _tidy(" ".join(prose))
        bullets = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", flat) if s]
        if bullets:
            result.notes.append("No bullet list; key findings are the answer's sentences.")
    if not summary:
        if had_bullets and prose:
            summary = _tidy(" ".join(prose))
        elif bullets:
            summary = bullets[0]
            result.notes.append("No summary line; the first key finding stands in.")
    result.key_findings = [b for b in bullets if b]
    result.summary_text = summary
    return result


@task(
    name="summarize_report",
    title="Summarise a report",
    summary="key findings of a report text, in one sentence (no image)",
    result=SummaryResult,
    aliases=("summarize",),
    main="report_text",
)
def summarize_report(
    core: TaskCore,
    report_text: ReportTextParam,
    *,
    gen: Generation,
) -> SummaryResult:
    """Extract the key findings of a radiology report text and summarise it in one
    sentence. No image needed.

    Use to condense a long report (one you have, or one `report` wrote) before reasoning
    over it or presenting it.

    Returns:
        `key_findings` (a list) and `summary_text` (one sentence).
    """
    completion = core.generate(build_messages(report_text), gen)
    return core.finish(parse(completion.text), completion, None)
