"""Linear-time text helpers for the answer parsers.

Model answers can be long and, through an OpenAI-compatible server, written by anyone, so
every parser must run in time linear in the answer's length. Regular expressions that let a
lazy or repeated group rescan the rest of the text from each start position (an unclosed
``<think>``, a run of separators trimmed from the end) are replaced here by plain scans.
"""

from __future__ import annotations

import re

__all__ = ["remove_closed_blocks", "strip_edges"]


def remove_closed_blocks(text: str, tag: str, replacement: str = " ") -> str:
    """``text`` with every ``<tag>...</tag>`` block replaced by ``replacement``.

    Matches ``re.sub(r"<tag>.*?</tag>", replacement, text, flags=re.I | re.S)``: a block
    runs from an opening tag to the first closing tag after it; an opening tag that is
    never closed is kept, with everything after it. One pass over the text.
    """
    tags = re.compile(rf"<(/?){re.escape(tag)}>", re.IGNORECASE)
    pieces: list[str] = []
    kept_to = 0  # end of the text already copied or dropped
    open_at: int | None = None
    for m in tags.finditer(text):
        if not m.group(1):
            if open_at is None:
                open_at = m.start()
        elif open_at is not None:
            pieces.append(text[kept_to:open_at])
            pieces.append(replacement)
            kept_to = m.end()
            open_at = None
    pieces.append(text[kept_to:])
    return "".join(pieces)


def strip_edges(text: str, chars: str) -> str:
    """``text`` without leading and trailing whitespace or any of ``chars``.

    The same as ``re.sub(rf"^[\\s{chars}]+|[\\s{chars}]+$", "", text)`` without the
    regex's quadratic cost on a long run of those characters followed by something else.
    """
    drop = set(chars)
    start, end = 0, len(text)
    while start < end and (text[start] in drop or text[start].isspace()):
        start += 1
    while end > start and (text[end - 1] in drop or text[end - 1].isspace()):
        end -= 1
    return text[start:end]
