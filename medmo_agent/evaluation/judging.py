"""Judging rules for yes/no, closed and multiple-choice answers (MedEvalKit's)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from medmo_agent.evaluation.extraction import parse_response


def _clean(response: str) -> str:
    # newlines and dots go before comparing; spaces stay (MedEvalKit does not strip)
    return parse_response(response).replace("\n", "").replace(".", "")


def judge_yes_no(answer: str, response: str) -> bool:
    """Correct iff exactly one of ``yes``/``no`` occurs in the cleaned response and the answer does.

    Substring tests, as MedEvalKit: "normal" contains "no", so it answers "no".
    """
    cleaned = _clean(response)
    if ("yes" in cleaned) != ("no" in cleaned):
        return answer.lower() in cleaned
    return False


def judge_closed(answer: str, response: str) -> bool:
    """SLAKE's closed rule: the cleaned response equals the lowercased answer exactly."""
    return _clean(response) == answer.lower()


def similarity(a: str, b: str) -> float:
    """``difflib.SequenceMatcher`` ratio of two strings."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def most_similar_index(options: Sequence[str], target: str) -> int:
    """Index of the option most similar to ``target``; the first on ties, 0 if all score 0."""
    best_index, best = 0, 0.0
    for i, option in enumerate(options):
        score = similarity(option, target)
        if score > best:
            best_index, best = i, score
    return best_index


def choice_pick(response: str, n_options: int) -> str:
    """The part of a response that the multiple-choice rule compares (before similarity).

    A bare letter as the first paragraph wins; else a bare letter before the first ``.`` of
    the last paragraph; then :func:`~medmo_agent.evaluation.extraction.parse_response`,
    strip, newlines removed, the part before the first ``.``, and of that the part after
    the last ``:`` (not stripped again).
    """
    letters = [chr(ord("a") + i) for i in range(n_options)]
    text = response.lower()
    paragraphs = text.split("\n\n")
    if paragraphs[0] in letters:
        text = paragraphs[0]
    elif paragraphs[-1].split(".")[0] in letters:
        text = paragraphs[-1].split(".")[0]
    text = parse_response(text).strip().lower().replace("\n", "")
    return text.split(".")[0].split(":")[-1]


def judge_multiple_choice(options: Sequence[str], answer: str, response: str) -> bool:
    """MedEvalKit's multiple-choice rule.

    Args:
        options: the option strings exactly as the benchmark passes them (for most this is
            the formatted line, e.g. ``"A. Pneumonia"``; comparisons are lowercase).
        answer: the gold answer, a letter (``"B"``) or an option string.
        response: the raw model response.

    Returns:
        True when the picked part equals the answer; or is a letter whose option equals the
        answer; or is an option string whose letter is the answer; or, when it is none of
        those, when the option most similar to the whole cleaned response is the answer
        (by letter or by text).
    """
    letters = [chr(ord("a") + i) for i in range(len(options))]
    lowered = [o.lower() for o in options]
    gold = answer.strip().lower()
    pick = choice_pick(response, len(options))
    if pick == gold:
        return True
    if pick in letters:
        return lowered[letters.index(pick)] == gold
    if pick in lowered:
        return gold in letters and pick == lowered[letters.index(gold)]
    whole = parse_response(_first_pass(response, letters)).strip().lower().replace("\n", "")
    index = most_similar_index(lowered, whole)
    return letters[index] == gold or lowered[index] == gold


def _first_pass(response: str, letters: list[str]) -> str:
    text = response.lower()
    paragraphs = text.split("\n\n")
    if paragraphs[0] in letters:
        return paragraphs[0]
    if paragraphs[-1].split(".")[0] in letters:
        return paragraphs[-1].split(".")[0]
    return text
