"""Agreement with expected answers, labels and boxes: per case, and across a review.

- Answers: exact match after normalisation (case, punctuation, leading articles); yes/no
  questions compare polarity; multiple choice compares the option letter.
- Labels: set comparison after normalisation (``Pleural_Thickening`` = ``pleural
  thickening``; "No Finding" counts as a label): exact-set accuracy and micro
  precision/recall/F1.
- Boxes: for each expected box, the best IoU with any box found on its image (mean IoU),
  and one-to-one greedy matching at IoU >= 0.5 (recall and precision at 0.5).
A figure is only measured when a step produced the kind of output it needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..types import Box

__all__ = [
    "IOU_THRESHOLD",
    "aggregate_agreement",
    "answer_matches",
    "case_agreement",
    "normalize_answer",
    "normalize_label",
]

IOU_THRESHOLD = 0.5
_PUNCT = re.compile(r"[^\w\s]")
_ARTICLES = re.compile(r"^(the|a|an)\s+")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def normalize_answer(text: str | None) -> str:
    """Lower case, no punctuation, single spaces, no leading article."""
    text = _PUNCT.sub(" ", (text or "").lower())
    text = " ".join(text.split())
    return _ARTICLES.sub("", text)


def normalize_label(label: str) -> str:
    """A label's comparable form: lower case, underscores and hyphens as spaces."""
    return " ".join(re.sub(r"[_\-]+", " ", label.lower()).split())


def _letter(expected: str, options: Sequence[str]) -> str | None:
    exp = expected.strip().rstrip(".").upper()
    if len(exp) == 1 and exp in _LETTERS[: len(options)]:
        return exp
    norm = normalize_answer(expected)
    for letter, option in zip(_LETTERS, options, strict=False):
        if normalize_answer(option) == norm:
            return letter
    return None


def answer_matches(expected: str, answer: dict[str, Any], options: Sequence[str] | None) -> bool:
    """Whether a recorded answer agrees with the expected one."""
    text = answer.get("answer") or ""
    if options:
        want = _letter(expected, options)
        got = answer.get("choice") or _letter(text, options)
        if got is None and answer.get("choice_text"):
            got = _letter(answer["choice_text"], options)
        return want is not None and got is not None and want == got.strip().upper()
    exp = normalize_answer(expected)
    if exp in ("yes", "no"):
        polarity = answer.get("yes_no")
        if polarity is None:
            first = normalize_answer(text).split(" ", 1)[0]
            polarity = {"yes": True, "no": False}.get(first)
        return polarity is not None and polarity == (exp == "yes")
    return normalize_answer(text) == exp


def _label_set(labels: Iterable[str], no_finding: bool = False) -> set[str]:
    found = {normalize_label(x) for x in labels if x.strip()}
    if no_finding and not found:
        found = {"no finding"}
    return found


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        # nothing expected and nothing found is perfect; one side empty is a miss
        f1 = 1.0 if tp + fp + fn == 0 else 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _as_box(data: dict[str, Any], size: tuple[int, int] | None) -> Box:
    xyxy = (float(data["x1"]), float(data["y1"]), float(data["x2"]), float(data["y2"]))
    w, h = size or (max(xyxy[2], 1.0), max(xyxy[3], 1.0))
    return Box.from_pixels(str(data.get("label", "")), xyxy, (int(w) or 1, int(h) or 1))


def case_agreement(
    case: Any, outputs: dict[str, Any], image_sizes: Sequence[tuple[int, int] | None]
) -> dict[str, Any] | None:
    """Agreement of one case's outputs with its expectations; ``None`` if it has none."""
    if not case.has_expectations():
        return None
    result: dict[str, Any] = {}
    expected_answers = [(i, q) for i, q in enumerate(case.questions) if q.expected is not None]
    if expected_answers:
        given = {a["question_index"]: a for a in outputs.get("answers", [])}
        items = []
        for i, q in expected_answers:
            answer = given.get(i)
            items.append(
                {
                    "question_index": i,
                    "question": q.question,
                    "expected": q.expected,
                    "answer": None if answer is None else answer.get("answer"),
                    "correct": answer is not None and answer_matches(q.expected, answer, q.options),
                }
            )
        result["answers"] = {
            "n": len(items),
            "correct": sum(x["correct"] for x in items),
            "items": items,
        }
    if case.expected_labels is not None:
        want = _label_set(case.expected_labels)
        got = _label_set(outputs.get("labels", []), outputs.get("no_finding", False))
        tp, fp, fn = len(want & got), len(got - want), len(want - got)
        result["labels"] = {
            "measured": bool(outputs.get("classified")),
            "expected": sorted(want),
            "predicted": sorted(got),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "exact": want == got,
            **_prf(tp, fp, fn),
        }
    if case.expected_boxes is not None:
        result["boxes"] = _box_agreement(case, outputs, image_sizes)
    return result


def _box_agreement(case: Any, outputs: dict[str, Any], sizes: Sequence[Any]) -> dict[str, Any]:
    found = outputs.get("boxes", [])
    matches, hits, n_pred = [], 0, 0
    for image in sorted({b.image for b in case.expected_boxes} | set(range(len(found)))):
        size = sizes[image] if image < len(sizes) else None
        exp = [b for b in case.expected_boxes if b.image == image]
        pred = [_as_box(p, size) for p in (found[image] if image < len(found) else [])]
        n_pred += len(pred)
        exp_boxes = [_as_box(b.model_dump(), size) for b in exp]
        ious = [[e.iou(p) for p in pred] for e in exp_boxes]
        pairs = sorted(
            ((ious[i][j], i, j) for i in range(len(exp)) for j in range(len(pred))), reverse=True
        )
        used_e: set[int] = set()
        used_p: set[int] = set()
        for iou, i, j in pairs:
            if iou >= IOU_THRESHOLD and i not in used_e and j not in used_p:
                used_e.add(i)
                used_p.add(j)
        hits += len(used_e)
        for i, e in enumerate(exp):
            best = max(ious[i], default=0.0)
            matches.append(
                {
                    "image": image,
                    "label": e.label,
                    "best_iou": round(best, 4),
                    "hit": i in used_e,
                }
            )
    n_exp = len(case.expected_boxes)
    return {
        "measured": bool(outputs.get("grounded")),
        "n_expected": n_exp,
        "n_predicted": n_pred,
        "mean_iou": round(sum(m["best_iou"] for m in matches) / n_exp, 4) if n_exp else None,
        "hits": hits,
        "recall": hits / n_exp if n_exp else None,
        "precision": hits / n_pred if n_pred else None,
        "matches": matches,
    }


def aggregate_agreement(records: Iterable[Any]) -> dict[str, Any]:
    """Figures across all cases: accuracy, label P/R/F1, mean IoU and hits at IoU 0.5.

    Failed cases count in ``cases`` but not in the figures (there is nothing to compare).
    """
    total = ok = failed = 0
    ans_n = ans_ok = 0
    lab_n = lab_exact = tp = fp = fn = 0
    box_exp = box_pred = box_hits = 0
    iou_sum = 0.0
    for rec in records:
        total += 1
        if rec.status != "ok":
            failed += 1
            continue
        ok += 1
        agr = rec.agreement or {}
        if "answers" in agr:
            ans_n += agr["answers"]["n"]
            ans_ok += agr["answers"]["correct"]
        lab = agr.get("labels")
        if lab and lab["measured"]:
            lab_n += 1
            lab_exact += bool(lab["exact"])
            tp, fp, fn = tp + lab["tp"], fp + lab["fp"], fn + lab["fn"]
        box = agr.get("boxes")
        if box and box["measured"]:
            box_exp += box["n_expected"]
            box_pred += box["n_predicted"]
            box_hits += box["hits"]
            iou_sum += sum(m["best_iou"] for m in box["matches"])
    out: dict[str, Any] = {"cases": {"total": total, "ok": ok, "failed": failed}}
    if ans_n:
        out["answers"] = {"n": ans_n, "correct": ans_ok, "accuracy": ans_ok / ans_n}
    if lab_n:
        out["labels"] = {
            "n_cases": lab_n,
            "exact": lab_exact,
            "exact_accuracy": lab_exact / lab_n,
            **_prf(tp, fp, fn),
        }
    if box_exp:
        out["boxes"] = {
            "n_expected": box_exp,
            "n_predicted": box_pred,
            "mean_iou": iou_sum / box_exp,
            "hits": box_hits,
            f"recall_at_{IOU_THRESHOLD}": box_hits / box_exp,
            f"precision_at_{IOU_THRESHOLD}": box_hits / box_pred if box_pred else None,
        }
    return out
