"""Open-ended answer metrics as MedEvalKit reports them (pure Python, no nltk/rouge needed).

BLEU reproduces ``nltk.translate.bleu_score.sentence_bleu`` (nltk 3.9.1, one reference,
uniform weights, no smoothing: a zero n-gram precision becomes ``sys.float_info.min``, and
no unigram match gives exactly 0). ROUGE reproduces the ``rouge`` package 1.0.1
(``Rouge().get_scores``: sentences split on ``.``, n-grams as sets, summary-level LCS).
Where those libraries raise (an empty hypothesis) or MedEvalKit would crash (token F1 on an
empty text), these functions return 0 instead.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Sequence

from medmo_agent.evaluation.compat import Compat
from medmo_agent.evaluation.extraction import parse_response

OPEN_METRICS: tuple[str, ...] = (
    "bleu1",
    "bleu2",
    "bleu3",
    "bleu4",
    "rouge1",
    "rouge2",
    "rougel",
    "precision",
    "recall",
    "f1",
    "em",
)
"""The per-item open metrics, named as in MedEvalKit's metrics.json."""


def bleu_tokens(text: str) -> list[str]:
    """BLEU tokens: lowercase, a space before each ``.``, split on single spaces (empties kept)."""
    return text.lower().replace(".", " .").split(" ")


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(prediction: str, reference: str, n: int) -> float:
    """Sentence BLEU-n of a prediction against one reference, uniform weights 1/n.

    Args:
        prediction: the extracted answer.
        reference: the gold answer.
        n: the highest n-gram order (1 to 4 in reports).
    """
    hyp, ref = bleu_tokens(prediction), bleu_tokens(reference)
    log_sum = []
    for order in range(1, n + 1):
        counts = _ngrams(hyp, order)
        ref_counts = _ngrams(ref, order)
        matched = sum(min(c, ref_counts[g]) for g, c in counts.items())
        total = max(1, sum(counts.values()))
        if order == 1 and matched == 0:
            return 0.0
        precision = matched / total if matched else sys.float_info.min
        log_sum.append(math.log(precision) / n)
    if len(hyp) > len(ref):
        penalty = 1.0
    elif not hyp:
        penalty = 0.0
    else:
        penalty = math.exp(1 - len(ref) / len(hyp))
    return penalty * math.exp(math.fsum(log_sum))


def _sentences(text: str) -> list[str]:
    return [" ".join(piece.split()) for piece in text.split(".") if piece]


def _words(sentences: Sequence[str]) -> list[str]:
    return [w for s in sentences for w in s.split(" ")]


def _f(p: float, r: float) -> float:
    return 2.0 * ((p * r) / (p + r + 1e-8))


def _rouge_n(hyp: list[str], ref: list[str], n: int) -> float:
    hyp_ngrams = {tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1)}
    ref_ngrams = {tuple(ref[i : i + n]) for i in range(len(ref) - n + 1)}
    overlap = len(hyp_ngrams & ref_ngrams)
    p = overlap / len(hyp_ngrams) if hyp_ngrams else 0.0
    r = overlap / len(ref_ngrams) if ref_ngrams else 0.0
    return _f(p, r)


def _lcs_words(x: list[str], y: list[str]) -> list[str]:
    # the rouge package's table and backtrack (ties go to j-1), so the same words come out
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            if x[i - 1] == y[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    out: list[str] = []
    i, j = len(x), len(y)
    while i and j:
        if x[i - 1] == y[j - 1]:
            out.append(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def _rouge_l(hyp_sents: list[str], ref_sents: list[str]) -> float:
    m = len(set(_words(ref_sents)))
    n = len(set(_words(hyp_sents)))
    union: set[str] = set()
    llcs = 0
    for ref_s in ref_sents:
        before = len(union)
        ref_words = ref_s.split(" ")
        for hyp_s in hyp_sents:
            union |= set(_lcs_words(ref_words, hyp_s.split(" ")))
        llcs += len(union) - before
    return _f(llcs / n, llcs / m)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F scores of lowercased texts (``rouge1``/``rouge2``/``rougel``).

    An empty prediction or reference (no text between dots) scores 0 for all three.
    """
    hyp = _sentences(prediction.lower())
    ref = _sentences(reference.lower())
    if not hyp or not ref:
        return {"rouge1": 0.0, "rouge2": 0.0, "rougel": 0.0}
    hyp_w, ref_w = _words(hyp), _words(ref)
    return {
        "rouge1": _rouge_n(hyp_w, ref_w, 1),
        "rouge2": _rouge_n(hyp_w, ref_w, 2),
        "rougel": _rouge_l(hyp, ref),
    }


def token_prf(prediction: str, reference: str) -> tuple[float, float, float]:
    """Token precision, recall and F1 over the sets of lowercased whitespace tokens.

    Returns:
        ``(precision, recall, f1)``; all 0 when either side has no token or none is shared.
    """
    pred = set(prediction.lower().split())
    gold = set(reference.lower().split())
    if not pred or not gold:
        return 0.0, 0.0, 0.0
    common = len(pred & gold)
    if common == 0:
        return 0.0, 0.0, 0.0
    p, r = common / len(pred), common / len(gold)
    return p, r, 2 * p * r / (p + r)


def open_metrics(answer: str, response: str, *, compat: Compat = "correct") -> dict[str, float]:
    """Every open metric of one item, after :func:`parse_response` of the response.

    Args:
        answer: the gold answer (lowercased here).
        response: the model response (as the benchmark passes it to the judge).
        compat: ``"medevalkit"`` stores F1 under ``precision``, precision under ``recall``
            and recall under ``f1`` (:attr:`Deviation.F1_LABELS_PERMUTED`).

    Returns:
        A dict over :data:`OPEN_METRICS`; ``em`` is 1.0 or 0.0.
    """
    gold = answer.lower()
    pred = parse_response(response)
    p, r, f1 = token_prf(pred, gold)
    if compat == "medevalkit":
        p, r, f1 = f1, p, r
    scores = {f"bleu{n}": bleu(pred, gold, n) for n in range(1, 5)}
    scores.update(rouge(pred, gold))
    scores.update({"precision": p, "recall": r, "f1": f1, "em": float(pred == gold)})
    return {k: scores[k] for k in OPEN_METRICS}
