"""Answer extraction: ``\\boxed{}``, ``<answer>`` tags and "answer is" splits."""

from __future__ import annotations

BOXED_MISSING = "None"
"""What :func:`extract_boxed` returns without a complete ``\\boxed{...}`` (MedEvalKit's value)."""

ANSWER_MARKERS: tuple[str, ...] = (
    "**answer**:",
    "**answer**",
    "*answer*:",
    "**answer:**",
    "answer is",
    "answer:",
    "答案:",
    "final answer",
    "final answer is",
)
"""Split markers, applied in this order; after each, the text after its last occurrence stays."""

_BOXED = "\\boxed{"


def extract_boxed(text: str) -> str:
    """The stripped content of the last ``\\boxed{`` up to its balancing ``}``.

    Braces inside count (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); with nesting
    the innermost last ``\\boxed{`` wins. Without a closed box the result is
    :data:`BOXED_MISSING`, as in MedEvalKit (so a literal ``None`` is ambiguous there too).
    """
    start = text.rfind(_BOXED)
    if start == -1:
        return BOXED_MISSING
    content = text[start + len(_BOXED) :]
    depth = 0
    for i, char in enumerate(content):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == -1:
                return content[:i].strip()
    return BOXED_MISSING


def extract_tag(text: str, tag: str) -> str:
    """Every complete ``<tag>...</tag>`` content, joined by spaces; the text itself if none.

    An empty text gives ``""``.
    """
    if not text:
        return ""
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    pieces: list[str] = []
    start = text.find(open_tag)
    while start != -1:
        end = text.find(close_tag, start + len(open_tag))
        if end == -1:
            break
        pieces.append(text[start + len(open_tag) : end])
        start = text.find(open_tag, end + len(close_tag))
    joined = " ".join(pieces).strip()
    return joined if joined else text


def parse_response(response: str) -> str:
    """MedEvalKit's ``parse_response``: the answer part of a model response.

    Lowercase; if ``boxed`` occurs, the last balanced ``\\boxed{}`` content (or
    :data:`BOXED_MISSING`); else if ``<answer>`` occurs, the tag content; then for each
    of :data:`ANSWER_MARKERS` in order, the piece after its last occurrence. Not stripped.
    """
    text = response.lower()
    if "boxed" in text:
        text = extract_boxed(text)
    elif "<answer>" in text:
        text = extract_tag(text, "answer")
    for marker in ANSWER_MARKERS:
        if marker in text:
            text = text.split(marker)[-1]
    return text


def pre_extract(response: str) -> str:
    """The VQA datasets' first pass before judging: box content if any, else ``<answer>``.

    Case is kept (the judges lowercase later).
    """
    boxed = extract_boxed(response)
    if boxed != BOXED_MISSING:
        return boxed
    if "<answer>" in response:
        return extract_tag(response, "answer")
    return response
