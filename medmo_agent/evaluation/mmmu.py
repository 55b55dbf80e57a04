"""MMMU's open-question scoring (MMMU's own normalisation, as MedEvalKit runs it)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from medmo_agent.evaluation.compat import Compat

Normalized = str | float

_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}
_COMMAS = r"-?\b\d{1,3}(?:,\d{3})+\b"
_SCIENTIFIC = r"-?\d+(?:\.\d+)?[eE][+-]?\d+"
_SIMPLE = r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def normalize(text: str) -> list[Normalized]:
    """A number (commas dropped, rounded to 2 places) or the lowercased string.

    A one-character string becomes ``[" x", "x "]`` so it cannot match inside a word.
    """
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    if len(text) == 1:
        return [" " + text, text + " "]
    return [text]


def extract_numbers(text: str) -> list[str]:
    """Numbers with thousands commas, in scientific notation, then plain ones."""
    return re.findall(_COMMAS, text) + re.findall(_SCIENTIFIC, text) + re.findall(_SIMPLE, text)


def _key_subresponses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    parts = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys: list[str] = []
    for index, part in enumerate(parts):
        indicators = [*_INDICATORS, "="] if index == len(parts) - 1 else list(_INDICATORS)
        shortest: str | None = None
        for indicator in indicators:
            if indicator in part:
                tail = part.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            keys.append(shortest)
    return keys or [response]


def parse_open_response(response: str) -> list[Normalized]:
    """MMMU's open-answer candidates: key sub-responses and the numbers in them, normalised."""
    keys = _key_subresponses(response)
    candidates: list[str] = list(keys)
    for key in keys:
        candidates.extend(extract_numbers(key))
    out: list[Normalized] = []
    for c in candidates:
        for n in normalize(c):
            if n not in out:
                out.append(n)
    return out


def _gold(gold: str | Iterable[str]) -> list[Normalized]:
    if isinstance(gold, str):
        return normalize(gold)
    return [n for g in gold for n in normalize(g)]


def judge_open(gold: str | Iterable[str], response: str, *, compat: Compat = "correct") -> bool:
    """MMMU's open rule: a string gold occurs in a string candidate, or a number gold equals one.

    Args:
        gold: the gold answer or answers.
        response: the model response.
        compat: ``"medevalkit"`` iterates the raw response character by character instead
            of parsing candidates (:attr:`Deviation.MMMU_OPEN_CHARACTERS`), so almost
            nothing is ever right.
    """
    golds = _gold(gold)
    candidates: Iterable[Normalized] = (
        response if compat == "medevalkit" else parse_open_response(response)
    )
    for cand in candidates:
        if isinstance(cand, str):
            if any(isinstance(g, str) and g in cand for g in golds):
                return True
        elif cand in golds:
            return True
    return False
