"""MMMU's scoring as MedEvalKit runs it: MMMU's own multiple-choice parser and its
open-question normalisation.

Multiple choice (MedEvalKit's ``utils/MMMU``, which keeps MMMU's
``parse_multi_choice_response``): the response first goes through MedEvalKit's MMMU pass
(:func:`mmmu_first_pass`: the ``<answer>`` content if the tag occurs, then the last
``\\boxed{}`` content if there is one), then the parser (:func:`parse_multi_choice`):
``<answer>`` or ``\\boxed`` content again; strip spaces, then each of ``, . ! ? ; : '``
in turn from both ends; pad with a space each side; candidates are the letters written
``(A)``; if none, the letters standing alone (`` A ``); if none and the response has
more than five words, the options whose text occurs in it (case-insensitive); several
candidates: the one written last; none: a random letter. The item is right when the
letter equals the gold letter.

The random fallback: MedEvalKit draws from Python's global generator seeded once with
its ``--seed`` (42), so an item's draw depends on every draw before it; here each item
draws from its own generator seeded with ``"<seed>:<item id>"`` (:data:`MMMU_SEED`), so
a draw does not depend on order, concurrency or resuming. The verdict says when a letter
was drawn.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence

from medmo_agent.evaluation.compat import Compat
from medmo_agent.evaluation.extraction import BOXED_MISSING, extract_boxed, extract_tag

MMMU_SEED = 42
"""Seed of the multiple-choice random fallback (MedEvalKit's default ``--seed``)."""

_STRIPPED = (",", ".", "!", "?", ";", ":", "'")
_OPTION_LINE = re.compile(r"^\((?P<letter>[A-Z])\) (?P<text>.*)$", re.DOTALL)


def mmmu_first_pass(response: str) -> str:
    """MedEvalKit's MMMU pass over a raw response: the ``<answer>`` content when the tag
    occurs, then the last complete ``\\boxed{}`` content when there is one."""
    if "<answer>" in response:
        response = extract_tag(response, "answer")
    boxed = extract_boxed(response)
    return boxed if boxed != BOXED_MISSING else response


def options_map(options: Sequence[str]) -> dict[str, str]:
    """``{"A": text, ...}`` from the option lines ``(A) text`` an MMMU item carries."""
    out = {}
    for line in options:
        found = _OPTION_LINE.match(line)
        if found is None:
            raise ValueError(f"not an MMMU option line: {line!r} (expected '(A) text')")
        out[found["letter"]] = found["text"]
    return out


def parse_multi_choice(
    response: str, index2ans: Mapping[str, str], rng: random.Random
) -> tuple[str, bool]:
    """MMMU's ``parse_multi_choice_response`` (rules in the module notes).

    Args:
        response: the response after :func:`mmmu_first_pass`.
        index2ans: the options, ``{"A": text, ...}`` in order.
        rng: draws the letter when nothing is found.

    Returns:
        ``(letter, drawn)``: the predicted letter and whether it was drawn at random.
    """
    all_choices = list(index2ans)
    if "<answer>" in response:
        response = extract_tag(response, "answer")
    elif "\\boxed" in response:
        response = extract_boxed(response)
    response = response.strip()
    for char in _STRIPPED:
        response = response.strip(char)
    response = f" {response} "  # so a letter cannot match inside a word

    candidates = [c for c in all_choices if f"({c})" in response]
    bracketed, by_text = bool(candidates), False
    if not candidates:
        candidates = [c for c in all_choices if f" {c} " in response]
    if not candidates and len(response.split()) > 5:
        lowered = response.lower()
        candidates = [c for c, text in index2ans.items() if text.lower() in lowered]
        by_text = bool(candidates)
    if not candidates:
        return rng.choice(all_choices), True
    if len(candidates) == 1:
        return candidates[0], False

    def last(c: str) -> int:
        if by_text:
            return response.lower().rfind(index2ans[c].lower())
        return response.rfind(f"({c})" if bracketed else f" {c} ")

    positions = [last(c) for c in candidates]
    return candidates[positions.index(max(positions))], False  # the first of equal ones


def judge_multi_choice(
    item_id: str, options: Sequence[str], answer: str, response: str, *, seed: int = MMMU_SEED
) -> tuple[str, bool, bool]:
    """Score an MMMU multiple-choice response.

    Args:
        item_id: the item's id (seeds its random fallback).
        options: the option lines, ``(A) text``.
        answer: the gold letter.
        response: the raw model response.
        seed: the random fallback's seed.

    Returns:
        ``(letter, correct, drawn)``.
    """
    rng = random.Random(f"{seed}:{item_id}")
    letter, drawn = parse_multi_choice(mmmu_first_pass(response), options_map(options), rng)
    return letter, letter == answer, drawn


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
