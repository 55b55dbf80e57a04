"""The size limit on free-text arguments, checked before anything is tokenised.

A question, context, report text or list of options is turned into tokens and then
prefilled through the model; both grow with the text, the attention quadratically. One
caller sending a megabyte of text would hold the model (and every other caller) for
minutes, so each text argument, and all of one call's text together, is capped at
``Settings.max_text_chars`` characters. Counting characters is linear and runs before
any tokenizer or image loader is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import Settings
from .errors import LimitExceededError

__all__ = ["check_text_arguments", "text_chars"]


def text_chars(value: Any) -> int:
    """Characters of text in an argument: a string, or the items of a list or mapping.

    Each list item and mapping entry also counts one character for its separator, so a
    list of many empty strings still counts.
    """
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(text_chars(k) + text_chars(v) + 1 for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(text_chars(v) + 1 for v in value)
    return 0


def check_text_arguments(settings: Settings, **arguments: Any) -> None:
    """Refuse text arguments over ``settings.max_text_chars``, alone or together.

    Args:
        settings: Supplies ``max_text_chars``.
        **arguments: The call's text arguments by name (strings, lists, mappings, None).

    Raises:
        LimitExceededError: One argument, or all of them together, hold more characters
            than the limit; the message names the argument, its size, the limit and the
            setting that raises it.
    """
    limit = settings.max_text_chars
    fix = (
        f"Shorten it to at most {limit:,} characters (summarise long reports first), or "
        "raise the limit with MEDMO_MAX_TEXT_CHARS."
    )
    total = 0
    for name, value in arguments.items():
        size = text_chars(value)
        if size > limit:
            raise LimitExceededError(
                f"{name} is {size:,} characters long, over the {limit:,}-character limit on "
                "text arguments (max_text_chars).",
                input=name,
                fix=fix,
            )
        total += size
    if total > limit:
        names = ", ".join(n for n, v in arguments.items() if text_chars(v))
        raise LimitExceededError(
            f"The text arguments ({names}) hold {total:,} characters together, over the "
            f"{limit:,}-character limit on one call's text (max_text_chars).",
            input=names,
            fix=fix,
        )
