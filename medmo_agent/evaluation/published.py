"""The published figures the evaluation report compares against (declared data, with sources).

Figures are percentages as printed. ``None`` means the source publishes no such figure
(or it could not be read when this table was written): the report shows "not published"
and never a guess. Benchmark ids are the evaluation's (``vqa_rad``, ``medxpertqa_mm``...);
metrics are ``acc`` (MedEvalKit's ``total metrics`` accuracy), ``close_acc`` (its
``close`` accuracy) and ``mean_iou`` (grounding).

Two versions of MedMO-8B-Next's VQA table are in circulation: the paper's (VQA average
72.7, also an earlier revision of the model card) and the current model card's (VQA average
69.6); their text QA figures agree. Both are listed, so a measured number can be set
against each. *Unverified*: that the card's single PathVQA, PMC-VQA, OmniMedVQA and
MedXpertQA figures are MedEvalKit's overall accuracy (``acc``), as its layout suggests.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIGURES", "PUBLISHED", "Figure", "PublishedTable", "tables_for"]


@dataclass(frozen=True)
class Figure:
    """One row of the published table: a benchmark's metric, as the card names it."""

    benchmark: str
    metric: str
    title: str
    group: str


FIGURES: tuple[Figure, ...] = (
    Figure("mmmu_med", "acc", "MMMU-Med", "VQA"),
    Figure("vqa_rad", "close_acc", "VQA-RAD closed", "VQA"),
    Figure("vqa_rad", "acc", "VQA-RAD all", "VQA"),
    Figure("slake", "close_acc", "SLAKE closed", "VQA"),
    Figure("slake", "acc", "SLAKE all", "VQA"),
    Figure("path_vqa", "acc", "PathVQA", "VQA"),
    Figure("pmc_vqa", "acc", "PMC-VQA", "VQA"),
    Figure("omnimedvqa", "acc", "OmniMedVQA", "VQA"),
    Figure("medxpertqa_mm", "acc", "MedXpertQA (MM)", "VQA"),
    Figure("mmlu_med", "acc", "MMLU-Med", "Text QA"),
    Figure("pubmedqa", "acc", "PubMedQA", "Text QA"),
    Figure("medmcqa", "acc", "MedMCQA", "Text QA"),
    Figure("medqa", "acc", "MedQA", "Text QA"),
    Figure("medbullets_op4", "acc", "Medbullets op4", "Text QA"),
    Figure("medbullets_op5", "acc", "Medbullets op5", "Text QA"),
    Figure("medxpertqa_text", "acc", "MedXpertQA (Text)", "Text QA"),
    Figure("supergpqa", "acc", "SGPQA (SuperGPQA, Medicine)", "Text QA"),
    Figure("bacteria", "mean_iou", "Bacteria grounding (IoU)", "Grounding"),
)
"""Every figure of the card's table, in the card's order."""


@dataclass(frozen=True)
class PublishedTable:
    """One source's figures for one model.

    Attributes:
        model: the Hugging Face id.
        source: where the figures come from, in words.
        url: the source's address.
        values: ``(benchmark, metric) -> percent``; a missing key is "not published".
        note: anything a reader must know about the figures.
    """

    model: str
    source: str
    url: str
    values: dict[tuple[str, str], float]
    note: str = ""

    def value(self, benchmark: str, metric: str) -> float | None:
        """The published percentage, or ``None`` when the source gives none."""
        return self.values.get((benchmark, metric))


_TEXT_QA_8B = {
    ("mmlu_med", "acc"): 80.2,
    ("pubmedqa", "acc"): 75.6,
    ("medmcqa", "acc"): 62.0,
    ("medqa", "acc"): 83.8,
    ("medbullets_op4", "acc"): 65.2,
    ("medbullets_op5", "acc"): 57.8,
    ("medxpertqa_text", "acc"): 20.9,
    ("supergpqa", "acc"): 35.5,
}

PUBLISHED: tuple[PublishedTable, ...] = (
    PublishedTable(
        model="MBZUAI/MedMO-8B-Next",
        source="MedMO paper and an earlier model card revision (VQA average 72.7)",
        url="https://genmilab.github.io/MedMO-Page",
        values={
            ("mmmu_med", "acc"): 69.3,
            ("vqa_rad", "close_acc"): 86.4,
            ("vqa_rad", "acc"): 68.0,
            ("slake", "close_acc"): 83.0,
            ("slake", "acc"): 81.6,
            ("path_vqa", "acc"): 56.3,
            ("pmc_vqa", "acc"): 74.1,
            ("omnimedvqa", "acc"): 93.3,
            ("medxpertqa_mm", "acc"): 42.9,
            **_TEXT_QA_8B,
            ("bacteria", "mean_iou"): 56.1,
        },
        note="The paper's Figure 1 confirms MMMU-Med 69.3, PMC-VQA 74.1, MMLU-Med 80.2, "
        "MedQA 83.8 and Bacteria IoU 56.1; the other figures are as the earlier card printed "
        "them. Measured with MedEvalKit's scoring: compare a --compat medevalkit run.",
    ),
    PublishedTable(
        model="MBZUAI/MedMO-8B-Next",
        source="model card on Hugging Face, current revision (VQA average 69.6)",
        url="https://huggingface.co/MBZUAI/MedMO-8B-Next",
        values={
            ("mmmu_med", "acc"): 65.3,
            ("vqa_rad", "close_acc"): 80.4,
            ("vqa_rad", "acc"): 65.0,
            ("slake", "close_acc"): 75.5,
            ("slake", "acc"): 74.7,
            ("path_vqa", "acc"): 57.3,
            ("pmc_vqa", "acc"): 70.3,
            ("omnimedvqa", "acc"): 88.8,
            ("medxpertqa_mm", "acc"): 48.9,
            **_TEXT_QA_8B,
        },
        note="The card gives no grounding figure.",
    ),
    PublishedTable(
        model="MBZUAI/MedMO-4B-Next",
        source="MedMO paper, Figure 1 (averages only)",
        url="https://genmilab.github.io/MedMO-Page",
        values={},
        note="Per-benchmark figures were not available offline when this table was "
        "written; the paper gives only averages (VQA 68.5, text QA 55.0).",
    ),
)
"""Every published table, newest model first; add a source here, never in the report."""


def tables_for(model: str | None) -> list[PublishedTable]:
    """The tables of the model a run used (by its id or folder name), else every table.

    A run of another checkpoint (a fine-tune, the tiny test model) is still set against
    the published figures, so the comparison is always there to read.
    """
    name = (model or "").rstrip("/").rsplit("/", 1)[-1].lower()
    matching = [t for t in PUBLISHED if t.model.rsplit("/", 1)[-1].lower() == name]
    return matching or list(PUBLISHED)
