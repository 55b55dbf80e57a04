"""Classification: which labels apply, from a candidate set (NIH ChestX-ray14 by default)
or free.

Modes: ``labels=None`` uses :data:`CHEST_XRAY14_LABELS` with MedMO's training prompt;
a non-empty list uses that list; ``labels=[]`` (or ``free=True``) lets the model name the
abnormalities itself.
"""

from __future__ import annotations

import re

from ..errors import InputError
from ..types import MedImage, Message
from ._common import clean_answer, load_prompt, render, system_message, user_message
from .declare import TaskCore, task
from .params import (
    FreeParam,
    Generation,
    ImageParam,
    LabelsParam,
    View,
)
from .results import ClassificationResult

__all__ = [
    "CHEST_XRAY14_LABELS",
    "NO_FINDING",
    "build_messages",
    "classify",
    "match_label",
    "parse",
]

NO_FINDING = "No Finding"

#: NIH ChestX-ray14's labels, spelled as the data set does.
CHEST_XRAY14_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
    NO_FINDING,
)

_NO_FINDING_TERMS = {
    "no finding",
    "no findings",
    "none",
    "normal",
    "no abnormality",
    "no abnormalities",
    "no acute findings",
    "no disease",
    "no diseases",
    "no abnormality detected",
    "no abnormalities detected",
    "no disease found",
    "nothing",
}
_NEGATED = re.compile(r"^(?:no|without|negative for|absence of|absent|not)\b")
# no \s* around the separators (a leading \s* rescans a long run of spaces from each of
# them: quadratic); _terms strips the pieces instead
_SPLIT = re.compile(r"\||,|;|\n|\band\b|\bor\b", re.IGNORECASE)
_LEAD = re.compile(
    r"^(?:the\s+)?(?:diseases?|findings?|abnormalit(?:y|ies)|labels?|answer|diagnos[ie]s)"
    r"(?:\s+(?:present|are|is|include|includes|detected))*\s*[:\-]\s*",
    re.IGNORECASE,
)


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", text.lower())).strip()


def _candidates(labels: list[str] | tuple[str, ...] | None, free: bool) -> list[str]:
    if free or (labels is not None and len(labels) == 0):
        return []
    if labels is None:
        return list(CHEST_XRAY14_LABELS)
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
        raise InputError(
            "Labels must be a list of label names.",
            input="labels",
            fix='Pass e.g. ["Pneumonia", "Effusion", "No Finding"], or [] for free labels.',
        )
    out: list[str] = []
    for label in labels:
        label = str(label).strip()
        if label and _key(label) not in (_key(o) for o in out):
            out.append(label)
    if not out:
        raise InputError("All labels are empty.", input="labels", fix="Give label names.")
    return out


def build_messages(
    image: MedImage, labels: list[str] | tuple[str, ...] | None = None, *, free: bool = False
) -> list[Message]:
    """Messages asking which labels apply to ``image`` (see the module docstring for modes).

    Raises:
        InputError: labels of the wrong type or all empty.
    """
    candidates = _candidates(labels, free)
    if labels is None and not free:
        text = load_prompt("classify_chest")
    elif candidates:
        names = ", ".join(c.replace("_", " ") for c in candidates)
        text = render("classify_labels", labels=names)
    else:
        text = load_prompt("classify_free")
    return [system_message(), user_message(text, image)]


def match_label(term: str, candidates: list[str]) -> str | None:
    """The candidate a term names, ignoring case, underscores, spaces and plurals; a term
    that contains exactly one candidate ("small left pleural effusion") names it."""
    key = _key(term)
    if not key:
        return None
    by_key = {_key(c): c for c in candidates}
    for k in (key, key[:-1] if key.endswith("s") else key, key[:-2] if key.endswith("es") else key):
        if k in by_key:
            return by_key[k]
    inside = [k for k in by_key if re.search(rf"\b{re.escape(k)}s?\b", key)]
    inside = [k for k in inside if not any(k != o and k in o for o in inside)]
    if len(inside) == 1:
        return by_key[inside[0]]
    return None


def _terms(answer: str) -> list[str]:
    terms = []
    for raw in _SPLIT.split(answer):
        term = re.sub(r"^[\s\-*•\d.)]+", "", raw or "")
        term = _LEAD.sub("", term)
        term = term.strip().strip(".:;*\"'`[]()").strip()
        if term:
            terms.append(term)
    return terms


def parse(
    text: str, *, labels: list[str] | tuple[str, ...] | None = None, free: bool = False
) -> ClassificationResult:
    """Read the labels in an answer; never raises on model output.

    Terms are split on ``|``, commas, semicolons, newlines and "and"; each maps to a
    canonical candidate name, or lands in ``unmatched``. Negated terms ("no pneumothorax")
    are skipped; "No Finding" (or "normal", "none") sets ``no_finding``.
    """
    try:
        candidates = _candidates(labels, free)
    except InputError:
        candidates = []
    answer = clean_answer(text)
    result = ClassificationResult(raw_text=text, candidate_labels=candidates)
    if not answer:
        result.notes.append("The model gave an empty answer.")
        return result
    said_no_finding = False
    found: list[str] = []
    unmatched: list[str] = []
    # sets beside the lists: a long answer has thousands of terms, and a list lookup per
    # term would make reading it quadratic
    found_keys: set[str] = set()
    unmatched_seen: set[str] = set()
    for term in _terms(answer):
        key = _key(term)
        if key in _NO_FINDING_TERMS:
            said_no_finding = True
            continue
        if _NEGATED.match(key):
            result.notes.append(f"Skipped negated term {term!r}.")
            continue
        label = match_label(term, candidates) if candidates else term
        if label is None:
            if term not in unmatched_seen:
                unmatched_seen.add(term)
                unmatched.append(term)
        elif _key(label) == _key(NO_FINDING):
            said_no_finding = True
        elif _key(label) not in found_keys:
            found_keys.add(_key(label))
            found.append(label)
    if said_no_finding and found:
        result.notes.append("The answer names findings and also 'No Finding'; kept the findings.")
    result.no_finding = said_no_finding and not found
    if result.no_finding and any(_key(c) == _key(NO_FINDING) for c in candidates):
        found = [next(c for c in candidates if _key(c) == _key(NO_FINDING))]
    result.labels = found
    result.unmatched = unmatched
    return result


@task(
    name="classify",
    title="Label a medical image",
    summary="assign labels (default: the 15 NIH ChestX-ray14 labels)",
    result=ClassificationResult,
    main="labels",
)
def classify(
    core: TaskCore,
    image: ImageParam,
    labels: LabelsParam = None,
    *,
    free: FreeParam = False,
    view: View,
    gen: Generation,
) -> ClassificationResult:
    """Say which disease labels apply to a medical image, from a candidate list or the
    chest X-ray default.

    Without `labels` it uses the 15 NIH ChestX-ray14 labels (Atelectasis, Cardiomegaly,
    Consolidation, Edema, Effusion, Emphysema, Fibrosis, Hernia, Infiltration, Mass,
    Nodule, Pleural_Thickening, Pneumonia, Pneumothorax, No Finding), as MedMO was
    trained for chest X-rays. Use for screening questions ("which of these conditions
    are present?"); several labels may apply.

    Returns:
        `labels` present (canonical names), `no_finding` (true when the model says the
        image is normal), and `unmatched` answer terms that fit no candidate.
    """
    img = core.load(image, **view.as_dict())
    messages = build_messages(img, labels, free=free)
    completion = core.generate(messages, gen)
    return core.finish(parse(completion.text, labels=labels, free=free), completion, img)
