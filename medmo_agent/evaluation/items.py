"""Benchmark items: one dataset row turned into the prompt MedEvalKit would send.

Each ``*_item`` function reads one row in its benchmark's published schema (the fields
named in :mod:`medmo_agent.evaluation.benchmarks`) and builds an :class:`EvalItem` with
both prompts: the direct one (MedEvalKit's wording) and the reasoning one (the same
question asking for the answer in ``\\boxed{}``).
"""

from __future__ import annotations

import ast
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import prompts as P
from .item_images import ImageSource, prompt_hash
from .records import QuestionType

if TYPE_CHECKING:
    from .grounding_data import GroundingSample

__all__ = ["EvalItem", "ImageSource", "ItemUnusable", "RowContext", "prompt_hash"]


class ItemUnusable(ValueError):
    """A row that has the benchmark's fields but cannot be asked or scored (its answer
    is none of its options): only that item fails, the rest of the benchmark runs.

    Attributes:
        item_id: the item's id, so its failure is recorded under it.
    """

    def __init__(self, message: str, item_id: str) -> None:
        super().__init__(message)
        self.item_id = item_id


@dataclass(frozen=True)
class RowContext:
    """Where a row came from: its benchmark, position, config, and an image opener."""

    benchmark: str
    index: int
    config: str | None = None
    find_image: Callable[[str], Path] | None = None

    def default_id(self) -> str:
        """``<config>-<index>`` (or ``<index>``), zero-padded, unique within a benchmark."""
        return f"{self.config}-{self.index:06d}" if self.config else f"{self.index:06d}"


@dataclass
class EvalItem:
    """One benchmark question, ready to ask and to score.

    Attributes:
        item_id: unique within the benchmark.
        benchmark: the benchmark id.
        question_type: ``yes_no``, ``closed``, ``open`` or ``multiple_choice``.
        prompt: the direct prompt, MedEvalKit's wording.
        reason_prompt: the same question asking for the answer in ``\\boxed{}``.
        question: the bare question (for workflows that phrase their own prompt).
        answer: the gold answer (a letter for multiple choice).
        options: the option lines as the judge compares them (``A. text``).
        images: the encoded images, in order (MMMU keeps the first only, as MedEvalKit).
        answer_type: SLAKE's ``OPEN``/``CLOSED``.
        lang: ``en`` or ``zh``.
        modality: the dataset's modality label, when it has one.
        category: the dataset's own grouping, when it has one (OmniMedVQA's question
            type, MedXpertQA's medical task, MMLU's subject, MMMU's subfield, SLAKE's
            content type, MedMCQA's subject, SuperGPQA's field).
        gold: every accepted answer (MMMU open questions may list several).
        load_error: why the row could not be read (an image file missing): the item is
            recorded as failed without asking the model.
        grounding: a grounding item's labels and true boxes (``question_type``
            ``grounding``).
    """

    item_id: str
    benchmark: str
    question_type: QuestionType
    prompt: str
    reason_prompt: str
    question: str
    answer: str
    options: tuple[str, ...] = ()
    images: list[ImageSource] = field(default_factory=list)
    answer_type: str | None = None
    lang: str = "en"
    modality: str | None = None
    category: str | None = None
    gold: tuple[str, ...] = ()
    load_error: str | None = None
    grounding: GroundingSample | None = None

    def prompt_for(self, reasoning: bool) -> str:
        """The prompt text of a mode: direct or reasoning."""
        return self.reason_prompt if reasoning else self.prompt

    def fields(self) -> dict[str, Any]:
        """The item's JSON-ready fields (no images), for ``results.json``."""
        return {
            "id": self.item_id,
            "question": self.question,
            "answer": self.answer,
            "options": list(self.options),
            "question_type": self.question_type,
            "answer_type": self.answer_type,
            "lang": self.lang,
            "modality": self.modality,
            "category": self.category,
            "images": len(self.images),
        }


def _image(value: Any, ctx: RowContext) -> ImageSource:
    """An image from a ``datasets`` Image value (undecoded ``{"bytes", "path"}`` or
    decoded), encoded bytes, or a file name in the benchmark's image folder."""
    if value is None:
        raise ValueError(f"{ctx.benchmark} row {ctx.index} has no image")
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return ImageSource(data=bytes(value["bytes"]))
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return ImageSource(data=bytes(value))
    if hasattr(value, "save"):  # a decoded PIL image
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return ImageSource(data=buf.getvalue())
    if ctx.find_image is None:
        raise ValueError(f"{ctx.benchmark} row {ctx.index}: no image folder for {value!r}")
    return ImageSource(path=ctx.find_image(str(value)))


def _letters_to_texts(options: Mapping[str, Any]) -> list[str]:
    return [str(options[k]) for k in sorted(options) if options[k] not in (None, "")]


def _choice_item(
    ctx: RowContext,
    item_id: str,
    question: str,
    texts: Sequence[str],
    answer: str,
    style: P.OptionStyle = P.OptionStyle.DOT_SPACE,
    *,
    images: Sequence[Any] = (),
    modality: str | None = None,
    category: str | None = None,
    context: Sequence[str] | None = None,
    lines: Sequence[str] | None = None,
) -> EvalItem:
    # ``lines``: option lines exactly as the dataset writes them (PMC-VQA's "A:CT")
    lines = list(lines) if lines is not None else P.format_options(texts, style)

    def build(reasoning: bool) -> str:
        if context is not None:
            return P.pubmedqa_prompt(context, question, lines, reasoning=reasoning)
        return P.multiple_choice_prompt(question, lines, reasoning=reasoning)

    return EvalItem(
        item_id=item_id,
        benchmark=ctx.benchmark,
        question_type="multiple_choice",
        prompt=build(False),
        reason_prompt=build(True),
        question=question,
        answer=answer.strip().upper(),
        options=tuple(lines),
        images=list(images),
        modality=modality,
        category=category,
    )


def _letter_of(
    texts: Sequence[str], answer: str, ctx: RowContext, item_id: str | None = None
) -> str:
    for i, text in enumerate(texts):
        if str(text).strip().lower() == str(answer).strip().lower():
            return P.option_letter(i)
    raise ItemUnusable(
        f"{ctx.benchmark} row {ctx.index}: answer {answer!r} is none of its options {list(texts)}",
        item_id or ctx.default_id(),
    )


# --- VQA with yes/no, closed and open questions -----------------------------------------


def yes_no_open_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """VQA-RAD and PathVQA: ``image``, ``question``, ``answer``; yes/no answers are closed."""
    question, answer = str(row["question"]), str(row["answer"])
    closed = answer.lower().strip() in ("yes", "no")
    build = P.yes_no_prompt if closed else P.open_prompt
    return EvalItem(
        item_id=ctx.default_id(),
        benchmark=ctx.benchmark,
        question_type="yes_no" if closed else "open",
        prompt=build(question),
        reason_prompt=build(question, reasoning=True),
        question=question,
        answer=answer,
        images=[_image(row["image"], ctx)],
    )


def slake_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """SLAKE ``test.json``: ``img_name`` (under ``imgs/``), ``question``, ``answer``,
    ``answer_type``, ``q_lang``, ``modality``, ``qid``.

    Every closed question is asked with the single-word-or-phrase suffix (in the item's
    language); a closed ``yes``/``no`` answer is then judged by the yes/no rule, any other
    by exact equality.
    """
    question, answer = str(row["question"]), str(row["answer"])
    lang = "zh" if row.get("q_lang") == "zh" else "en"
    answer_type = str(row["answer_type"])
    build = P.open_prompt if answer_type == "OPEN" else P.closed_prompt
    qtype: QuestionType = "open" if answer_type == "OPEN" else "closed"
    if qtype == "closed" and answer in ("yes", "no"):
        qtype = "yes_no"
    qid = row.get("qid")
    return EvalItem(
        item_id=str(qid) if qid is not None else ctx.default_id(),
        benchmark=ctx.benchmark,
        question_type=qtype,
        prompt=build(question, lang=lang),
        reason_prompt=build(question, lang=lang, reasoning=True),
        question=question,
        answer=answer,
        images=[_image(row["img_name"], ctx)],
        answer_type=answer_type,
        lang=lang,
        modality=row.get("modality"),
        category=row.get("content_type"),
    )


# --- multiple choice with an image -------------------------------------------------------


def _strip_choice_prefix(text: str, letter: str) -> str:
    # PMC-VQA writes choices as "A:CT" or "A: CT"
    text = str(text).strip()
    for sep in (":", "."):
        if text.upper().startswith(letter + sep):
            return text[2:].strip()
    return text


def pmc_vqa_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """PMC-VQA ``test_2.csv`` (``index, Figure_path, Caption, Question, Choice A..D,
    Answer, split``): the image under ``figures/``; the choices go into the prompt as the
    file writes them (``A:CT``), as MedEvalKit passes them; ``Answer`` is the letter (an
    option's text is mapped to its letter)."""
    raw = [str(row[f"Choice {x}"]) for x in "ABCD"]
    texts = [_strip_choice_prefix(c, x) for c, x in zip(raw, "ABCD", strict=True)]
    answer = str(row["Answer"]).strip()
    if answer.upper() not in ("A", "B", "C", "D"):
        answer = _letter_of(texts, _strip_choice_prefix(answer, answer[:1].upper()), ctx)
    return _choice_item(
        ctx,
        ctx.default_id(),
        str(row["Question"]),
        texts,
        answer,
        images=[_image(row["Figure_path"], ctx)],
        lines=raw,
    )


def omnimedvqa_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """OmniMedVQA ``QA_information/Open-access/*.json``: ``question_id``, ``question``,
    ``option_A``..``option_D`` (some absent), ``gt_answer`` (option text), ``image_path``,
    ``question_type``, ``modality_type``."""
    texts = [str(row[f"option_{x}"]) for x in "ABCD" if row.get(f"option_{x}") not in (None, "")]
    qid = row.get("question_id")
    item_id = str(qid) if qid is not None else ctx.default_id()
    return _choice_item(
        ctx,
        item_id,
        str(row["question"]),
        texts,
        _letter_of(texts, row["gt_answer"], ctx, item_id),
        images=[_image(row["image_path"], ctx)],
        modality=row.get("modality_type"),
        category=row.get("question_type"),
    )


def medxpertqa_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """MedXpertQA (``MM``/``Text``): ``id``, ``question`` (its own "Answer Choices" list
    is cut off), ``options`` (letter -> text), ``label``, ``images`` (file names, MM)."""
    question = str(row["question"]).split("\nAnswer Choices:")[0].strip()
    images = [_image(name, ctx) for name in row.get("images") or ()]
    return _choice_item(
        ctx,
        str(row.get("id") or ctx.default_id()),
        question,
        _letters_to_texts(row["options"]),
        str(row["label"]),
        images=images,
        category=row.get("medical_task"),
    )


def mmmu_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """MMMU: ``id``, ``question``, ``options`` (a Python list literal), ``answer``,
    ``question_type`` (``multiple-choice``/``open``), ``image_1`` (the only image used).

    ``image_1`` is sent even when the options are images themselves (``<image 2>``, ...),
    as MedEvalKit sends it on ``MMMU/MMMU``: its rule that drops the image when the options
    hold several images looks for ``<img='...'>`` markers, which the hub's rows do not
    use (they write ``<image N>``), and it walks the ``options`` string character by
    character, so on these rows it never fires. Dropping the image here would ask a
    question about an image without it and move the score away from MedEvalKit's.
    """
    question = str(row["question"])
    raw = row.get("options") or "[]"
    texts = [str(t) for t in (ast.literal_eval(raw) if isinstance(raw, str) else raw)]
    images = [_image(row["image_1"], ctx)] if row.get("image_1") is not None else []
    common: dict[str, Any] = {
        "item_id": str(row.get("id") or ctx.default_id()),
        "benchmark": ctx.benchmark,
        "question": question,
        "images": images,
        "modality": row.get("img_type"),
        "category": row.get("subfield"),
    }
    if row.get("question_type") == "multiple-choice" and texts:
        lines = P.format_options(texts, P.OptionStyle.PAREN)
        return EvalItem(
            question_type="multiple_choice",
            prompt=P.mmmu_prompt(question, texts),
            reason_prompt=P.mmmu_prompt(question, texts, reasoning=True),
            answer=str(row["answer"]).strip().upper(),
            options=tuple(lines),
            **common,
        )
    answer = str(row["answer"])
    try:
        gold = ast.literal_eval(answer) if answer.startswith("[") else [answer]
    except (ValueError, SyntaxError):
        gold = [answer]
    return EvalItem(
        question_type="open",
        prompt=P.mmmu_prompt(question, None),
        reason_prompt=P.mmmu_prompt(question, None, reasoning=True),
        answer=answer,
        gold=tuple(str(g) for g in gold),
        **common,
    )


# --- text multiple choice ----------------------------------------------------------------


def mmlu_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """MMLU: ``question``, ``choices`` (a list), ``answer`` (an index); options ``A.text``.

    MedEvalKit's MMLU loader cannot run as written (its prompt names an undefined
    ``context``, and it passes the joined option string where a list is expected, which
    would put one character per line); the prompt here is the one it evidently meant:
    the standard multiple-choice prompt with its ``A.text`` option lines.
    """
    texts = [str(t) for t in row["choices"]]
    return _choice_item(
        ctx,
        ctx.default_id(),
        str(row["question"]),
        texts,
        P.option_letter(int(row["answer"])),
        P.OptionStyle.DOT,
        category=row.get("subject") or ctx.config,
    )


def pubmedqa_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """PubMedQA (openlifescienceai): ``id``, ``data`` with ``Question``, ``Context`` (a list
    of paragraphs), ``Options`` (letter -> yes/no/maybe), ``Correct Option``."""
    data = row["data"]
    context = data["Context"]
    paragraphs = [str(c) for c in context] if isinstance(context, list) else [str(context)]
    return _choice_item(
        ctx,
        str(row.get("id") or ctx.default_id()),
        str(data["Question"]),
        _letters_to_texts(data["Options"]),
        str(data["Correct Option"]),
        P.OptionStyle.DOT,
        context=paragraphs,
    )


def medmcqa_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """MedMCQA: ``id``, ``question``, ``opa``..``opd``, ``cop`` (the correct index)."""
    texts = [str(row[k]) for k in ("opa", "opb", "opc", "opd")]
    return _choice_item(
        ctx,
        str(row.get("id") or ctx.default_id()),
        str(row["question"]),
        texts,
        P.option_letter(int(row["cop"])),
        category=row.get("subject_name"),
    )


def medqa_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """MedQA (4 options): ``question``, ``options`` (letter -> text), ``answer_idx``."""
    return _choice_item(
        ctx,
        ctx.default_id(),
        str(row["question"]),
        _letters_to_texts(row["options"]),
        str(row["answer_idx"]),
    )


def medbullets_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """Medbullets: op4 (``tuenguyen/Medical-Eval-MedBullets_op4``) has ``options`` (letter
    -> text), op5 (``LangAGI-Lab/medbullets_op5``) ``opa``..``ope``; both ``question`` and
    ``answer_idx`` (the letter; ``answer``, the option text, when the letter is missing)."""
    options = row.get("options")
    if isinstance(options, Mapping):
        texts = _letters_to_texts(options)
    else:
        keys = [k for k in ("opa", "opb", "opc", "opd", "ope") if row.get(k) not in (None, "")]
        texts = [str(row[k]) for k in keys]
    letter = row.get("answer_idx")
    answer = str(letter) if letter else _letter_of(texts, row["answer"], ctx)
    return _choice_item(
        ctx, ctx.default_id(), str(row["question"]), texts, answer, P.OptionStyle.DOT
    )


def supergpqa_item(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    """SuperGPQA: ``uuid``, ``question``, ``options`` (a list of up to 10),
    ``answer_letter``, ``discipline`` (only ``Medicine`` rows are kept)."""
    return _choice_item(
        ctx,
        str(row.get("uuid") or ctx.default_id()),
        str(row["question"]),
        [str(t) for t in row["options"]],
        str(row["answer_letter"]),
        P.OptionStyle.DOT,
        category=row.get("field"),
    )
