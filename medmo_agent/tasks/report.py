"""Radiology report generation, split into Findings and Impression."""

from __future__ import annotations

import re

from ..types import MedImage, Message
from ._common import clean_answer, load_prompt, render, system_message, user_message
from .declare import TaskCore, task
from .params import (
    ContextParam,
    Generation,
    ImageParam,
    View,
)
from .results import ReportResult

__all__ = ["build_messages", "parse", "report", "split_sections"]


def build_messages(image: MedImage, *, context: str | None = None) -> list[Message]:
    """Messages asking for a detailed report on ``image``, with optional clinical context
    (indication, history) on a line of its own."""
    text = load_prompt("report")
    if context and context.strip():
        text = f"{text}\n{render('context', context=context.strip())}"
    return [system_message(), user_message(text, image)]


_HEADINGS = {
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
}
_OTHER = (
    r"technique|comparison|indications?|clinical (?:history|information|context)|history"
    r"|recommendations?|examination|exam|procedure"
)
_WORD = rf"findings?|impressions?|conclusions?|{_OTHER}"
# A heading: at a line start, optionally markdown (#, **, __), then ':' / '-' / a line end;
# or anywhere in a line when followed by a colon ("... Impression: ...").
# (Never two [ \t]* runs with only optional tokens between them: the engine would try every
# split of a long run of spaces, quadratic in its length.)
_HEADING_RE = re.compile(
    rf"(?im)^[ \t]*(?:#{{1,6}}[ \t]*)?(?:(?:\*\*|__)[ \t]*)?({_WORD})[ \t]*(?:(?:\*\*|__)[ \t]*)?"
    rf"(?:[:\-–—][ \t]*(?:\*\*|__)?|(?=\n)|$)"
    rf"|(?:\*\*|__)?\b({_WORD})[ \t]*(?:(?:\*\*|__)[ \t]*)?:[ \t]*(?:\*\*|__)?"
)


def split_sections(text: str) -> dict[str, str]:
    """Sections of a report by heading (lower-case keys: findings, impression, other names).

    Text before the first heading is kept under ``""``.
    """
    sections: dict[str, str] = {}
    matches = list(_HEADING_RE.finditer(text))
    starts = [0] + [m.end() for m in matches]
    names = [""] + [_HEADINGS.get((m.group(1) or m.group(2)).lower(), "other") for m in matches]
    ends = [m.start() for m in matches] + [len(text)]
    for name, start, end in zip(names, starts, ends, strict=False):
        body = text[start:end].strip()
        if body:
            sections[name] = f"{sections[name]}\n{body}" if name in sections else body
    return sections


def parse(text: str) -> ReportResult:
    """Read a report; findings is the whole text when it has no headings. Never raises."""
    report = clean_answer(text)
    result = ReportResult(raw_text=text, report=report)
    if not report:
        result.notes.append("The model gave an empty report.")
        return result
    sections = split_sections(report)
    findings = sections.get("findings", "")
    impression = sections.get("impression", "")
    if not findings and not impression:
        findings = report
        result.notes.append("No Findings/Impression headings; findings holds the whole report.")
    elif not findings:
        findings = sections.get("", "")
    result.findings = findings
    result.impression = impression
    return result


@task(
    name="report",
    title="Write a radiology report",
    summary="write a radiology report (findings and impression)",
    result=ReportResult,
    main="context",
)
def report(
    core: TaskCore,
    image: ImageParam,
    *,
    context: ContextParam = None,
    view: View,
    gen: Generation,
) -> ReportResult:
    """Write a radiology report for a medical image: Findings and Impression sections.

    Use for a complete read of a study when no specific question is asked, or as the
    first step of a review. The report is a draft by a research model, not a diagnosis:
    present it as such. Follow up on specific findings with `ground` or `vqa`. Reports
    are long: give `max_new_tokens` of 512 or more.

    Returns:
        `findings`, `impression` and the full `report` text.
    """
    img = core.load(image, **view.as_dict())
    completion = core.generate(build_messages(img, context=context), gen)
    return core.finish(parse(completion.text), completion, img)
