"""Shared pieces of the tasks: prompt files, message building, answer cleaning, options."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Protocol

from ..errors import InputError
from ..types import ImagePart, MedImage, Message, TextPart

__all__ = [
    "Options",
    "apply_choice",
    "choice_from_text",
    "clean_answer",
    "format_options",
    "image_kind",
    "load_prompt",
    "normalize_options",
    "render",
    "system_message",
    "user_message",
]

#: Options as given by a caller: a list (lettered A, B, ...) or a mapping letter -> text.
Options = list[str] | tuple[str, ...] | dict[str, str]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_THINK_RE = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_TAGS_RE = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)
_LOWER_WORD_NEXT = re.compile(r"\s+[a-z]")


@cache
def load_prompt(name: str) -> str:
    """The text of ``prompts/<name>.txt`` (package data), without the final newline."""
    return (resources.files(__package__) / "prompts" / f"{name}.txt").read_text("utf-8").rstrip()


def render(name: str, **values: str) -> str:
    """A prompt with ``{key}`` placeholders filled (other braces are left alone)."""
    text = load_prompt(name)
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def system_message() -> Message:
    """MedMO's RL-stage system prompt."""
    return Message("system", load_prompt("system"))


def user_message(text: str, image: MedImage | None = None) -> Message:
    """A user turn: the image first (as in MedMO's training data), then the text."""
    if image is None:
        return Message("user", text)
    return Message("user", [ImagePart(image), TextPart(text)])


def image_kind(image: MedImage | None) -> str:
    """How a prompt names the image: 'X-ray image', 'CT image', 'MRI image' or 'image'."""
    modality = (image.meta.modality or "").upper() if image is not None else ""
    kinds = {"CR": "X-ray image", "DX": "X-ray image", "CT": "CT image", "MR": "MRI image"}
    return kinds.get(modality, "image")


def clean_answer(text: str) -> str:
    """The answer part of a reply: inside ``<answer>`` when present, without ``<think>``
    blocks or stray tags, trimmed."""
    text = text if isinstance(text, str) else str(text or "")
    m = _ANSWER_RE.search(text)
    if m and m.group(1).strip():
        text = m.group(1)
    else:
        without = _THINK_RE.sub(" ", text)
        text = without if without.strip() else text
    return _TAGS_RE.sub(" ", text).strip()


def normalize_options(options: object, *, arg: str = "options") -> dict[str, str]:
    """Options as an ordered mapping letter -> text, validated.

    Raises:
        InputError: fewer than two options, more than 26, or an empty option.
    """
    if isinstance(options, dict):
        items = [(str(k).strip().upper().strip(".)( "), str(v).strip()) for k, v in options.items()]
    elif isinstance(options, (list, tuple)):
        if len(options) > len(_LETTERS):
            raise InputError(
                f"{len(options)} options given; at most {len(_LETTERS)} are supported.",
                input=arg,
                fix="Give at most 26 options.",
            )
        items = [(_LETTERS[i], str(v).strip()) for i, v in enumerate(options)]
    else:
        raise InputError(
            "Options must be a list of texts or a mapping letter -> text, "
            f"not {type(options).__name__}.",
            input=arg,
            fix='Pass e.g. ["pneumonia", "effusion"] or {"A": "pneumonia", "B": "effusion"}.',
        )
    if len(items) < 2:
        raise InputError(
            f"A multiple-choice question needs at least 2 options; got {len(items)}.",
            input=arg,
            fix="Give two or more options, or leave options out for an open question.",
        )
    for key, value in items:
        if not key or not value:
            raise InputError(
                "Every option needs a non-empty letter and text.",
                input=arg,
                fix="Remove empty options.",
            )
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        raise InputError("Option letters must be distinct.", input=arg, fix="Rename the options.")
    return dict(items)


def format_options(options: dict[str, str]) -> str:
    """Options as ``A. text`` lines, as MedMO's evaluations show them."""
    return "\n".join(f"{k}. {v}" for k, v in options.items())


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def choice_from_text(answer: str, options: dict[str, str]) -> str | None:
    """The option key an answer picks, or None.

    Accepts ``B``, ``(B)``, ``B.``, ``B) text``, ``The answer is B``, ``Option B``, and the
    option text itself (exactly, or the only option text the answer contains).
    """
    keys = {k.upper(): k for k in options}
    text = answer.strip().strip("*`\"' ")
    if not text:
        return None
    key_alt = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
    patterns = [
        rf"^\(?\s*({key_alt})\s*\)?[.):]?$",  # the key alone
        rf"^\(\s*({key_alt})\s*\)",  # (B) text
        rf"^({key_alt})\s*[.):]",  # B. text / B) text / B: text
        # every \s* follows a required token: adjacent optional runs of spaces would be
        # retried at every split of a long run (polynomial time)
        rf"\b(?:answer|option|choice)(?:\s+is)?\s*(?:[:=]\s*)?(?:\(\s*)?({key_alt})\b(?!')",
    ]
    for i, pattern in enumerate(patterns):
        flags = re.IGNORECASE if i in (0, 3) else 0
        m = re.search(pattern, text, flags)
        if m:
            return keys[m.group(1).upper()]
    # the option text itself
    norm = _norm(text)
    by_text = {k: _norm(v) for k, v in options.items()}
    exact = [k for k, v in by_text.items() if v and v == norm]
    if len(exact) == 1:
        return exact[0]
    contained = [k for k, v in by_text.items() if v and re.search(rf"\b{re.escape(v)}\b", norm)]
    # prefer the longest option text when one contains another ("effusion" in "pleural effusion")
    contained = [
        k
        for k in contained
        if not any(by_text[k] != by_text[o] and by_text[k] in by_text[o] for o in contained)
    ]
    if len(contained) == 1:
        return contained[0]
    # a lone capital key somewhere ("I think B is right"), not the article "A" or pronoun "I"
    lone = {
        m.group(1)
        for m in re.finditer(rf"(?<![\w'])({key_alt})(?![\w'])", text)
        if m.group(1) in keys
        # match at a position, not on a copy of the rest (a copy per key is quadratic)
        and not (m.group(1) in ("A", "I") and _LOWER_WORD_NEXT.match(text, m.end()))
    }
    if len(lone) == 1:
        return keys[lone.pop()]
    return None


class _Choosing(Protocol):
    """A result that can carry a multiple-choice pick (VQA, text QA)."""

    notes: list[str]
    choice: str | None
    choice_text: str | None


def apply_choice(result: _Choosing, answer: str, options: object) -> None:
    """Set ``result.choice``/``result.choice_text`` from the option ``answer`` names, or add
    a note when it names none (options that cannot be read are left to input checks)."""
    try:
        opts = normalize_options(options)
    except InputError:
        return
    key = choice_from_text(answer, opts)
    if key is None:
        result.notes.append("The answer names none of the options.")
    else:
        result.choice, result.choice_text = key, opts[key]
