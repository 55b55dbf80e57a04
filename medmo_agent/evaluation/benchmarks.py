"""Every benchmark of MedMO's card, declared once: where it is, what its rows hold, how
its items are asked and scored.

The Hugging Face ids, configs, splits and fields are the ones MedEvalKit uses. A local
copy (``--data-dir DIR``) keeps the hub's layout in ``DIR/<benchmark id>/``:

- ``repo``: the dataset repository's files (``data/<split>-*.parquet``, or
  ``<config>/<split>-*.parquet`` for benchmarks with configs), as ``datasets`` reads them;
- ``file``: the one data file (``test.json``, ``test_2.csv``) and the image folder;
- ``omnimed``: ``QA_information/Open-access/*.json`` and ``Images/``;
- ``coco``: a grounding benchmark's COCO-style ``annotations.json``, image file names
  relative to its folder (no public copy: ``--data-dir`` only). A path to such a file
  given as the benchmark (``medmo eval runs/cells.json``) is a grounding benchmark too,
  named after the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from . import items as I
from .items import EvalItem, RowContext

__all__ = ["BENCHMARKS", "BenchmarkSpec", "find_benchmark"]

Layout = Literal["repo", "file", "omnimed", "coco"]
Scorer = Literal["vqa", "choice", "mmmu", "grounding"]

MMMU_SUBJECTS = (
    "Basic_Medical_Science",
    "Clinical_Medicine",
    "Diagnostics_and_Laboratory_Medicine",
    "Pharmacy",
    "Public_Health",
)
MMLU_SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "high_school_biology",
    "medical_genetics",
    "nutrition",
    "professional_medicine",
    "virology",
)


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: its source, its fields, its question types and its scorer.

    Attributes:
        id: the name on the command line (``vqa_rad``).
        title: the name in MedMO's card.
        hub_id: the Hugging Face dataset repository.
        split: the split evaluated.
        layout: how its files are stored (see the module docstring).
        row_to_item: turns one row into an :class:`EvalItem`.
        scorer: ``vqa`` (closed/open), ``choice`` (multiple choice), ``mmmu`` or
            ``grounding`` (boxes scored by IoU).
        question_types: the question types its items have.
        fields: the row fields read.
        configs: the dataset configs (subjects) evaluated, ``(None,)`` for the default.
        data_file: for ``file`` and ``coco`` layouts, the data file (``coco``: relative
            to the benchmark's folder, or an absolute path).
        image_folder: the folder image file names are relative to (``None``: the root).
        image_archive: the repository's zip of that folder, unpacked on first use.
        keep: rows kept (SuperGPQA keeps Medicine).
        size: the published item count, shown by ``--list`` before anything is loaded.
        text_only: no images.
    """

    id: str
    title: str
    hub_id: str
    split: str
    layout: Layout
    row_to_item: Callable[[Mapping[str, Any], RowContext], EvalItem]
    scorer: Scorer
    question_types: tuple[str, ...]
    fields: tuple[str, ...]
    configs: tuple[str | None, ...] = (None,)
    data_file: str | None = None
    image_folder: str | None = None
    image_archive: str | None = None
    keep: Callable[[Mapping[str, Any]], bool] | None = None
    size: int | None = None
    text_only: bool = False

    @property
    def source(self) -> str:
        """Where it comes from, in words: ``hub_id [config(s)] split``."""
        if self.layout == "coco":
            return f"COCO-style JSON {self.data_file} (no public copy; --data-dir)"
        configs = [c for c in self.configs if c]
        what = self.data_file or self.split
        if configs:
            what = f"{'/'.join(configs) if len(configs) <= 2 else f'{len(configs)} subjects'}"
            what += f", {self.split}"
        return f"{self.hub_id} ({what})"


_MC = ("multiple_choice",)
_VQA = ("yes_no", "open")


def _medicine(row: Mapping[str, Any]) -> bool:
    return row.get("discipline") == "Medicine"


def _no_rows(row: Mapping[str, Any], ctx: RowContext) -> EvalItem:
    raise TypeError("grounding benchmarks are read whole (grounding_bench.grounding_items)")


def _hub_vqa(id: str, title: str, hub_id: str, size: int) -> BenchmarkSpec:
    """A yes/no-or-open VQA benchmark stored as parquet rows ``image, question, answer``."""
    return BenchmarkSpec(
        id=id,
        title=title,
        hub_id=hub_id,
        split="test",
        layout="repo",
        row_to_item=I.yes_no_open_item,
        scorer="vqa",
        question_types=_VQA,
        fields=("image", "question", "answer"),
        size=size,
    )


def _text_choice(
    id: str,
    title: str,
    hub_id: str,
    split: str,
    row_to_item: Callable[[Mapping[str, Any], RowContext], EvalItem],
    fields: tuple[str, ...],
    **more: Any,
) -> BenchmarkSpec:
    """A text-only multiple-choice benchmark on the hub (``more``: the other fields)."""
    return BenchmarkSpec(
        id=id,
        title=title,
        hub_id=hub_id,
        split=split,
        layout="repo",
        row_to_item=row_to_item,
        scorer="choice",
        question_types=_MC,
        fields=fields,
        text_only=True,
        **more,
    )


def grounding_spec(id: str, data_file: str, *, title: str | None = None) -> BenchmarkSpec:
    """A grounding benchmark read from a COCO-style JSON file (see the module notes)."""
    return BenchmarkSpec(
        id=id,
        title=title or id,
        hub_id="",
        split="test",
        layout="coco",
        row_to_item=_no_rows,
        scorer="grounding",
        question_types=("grounding",),
        fields=("images", "categories", "annotations"),
        data_file=data_file,
    )


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.id: spec
    for spec in (
        BenchmarkSpec(
            id="mmmu_med",
            title="MMMU-Med",
            hub_id="MMMU/MMMU",
            split="validation",
            layout="repo",
            row_to_item=I.mmmu_item,
            scorer="mmmu",
            question_types=("multiple_choice", "open"),
            fields=("id", "question", "options", "answer", "question_type", "image_1"),
            configs=MMMU_SUBJECTS,
            size=150,
        ),
        _hub_vqa("vqa_rad", "VQA-RAD", "flaviagiammarino/vqa-rad", size=451),
        BenchmarkSpec(
            id="slake",
            title="SLAKE",
            hub_id="BoKelvin/SLAKE",
            split="test",
            layout="file",
            row_to_item=I.slake_item,
            scorer="vqa",
            question_types=("yes_no", "closed", "open"),
            fields=("qid", "img_name", "question", "answer", "answer_type", "q_lang", "modality"),
            data_file="test.json",
            image_folder="imgs",
            image_archive="imgs.zip",
            size=2094,
        ),
        _hub_vqa("path_vqa", "PathVQA", "flaviagiammarino/path-vqa", size=6719),
        BenchmarkSpec(
            id="pmc_vqa",
            title="PMC-VQA",
            hub_id="RadGenome/PMC-VQA",
            split="test",
            layout="file",
            row_to_item=I.pmc_vqa_item,
            scorer="choice",
            question_types=_MC,
            fields=("Figure_path", "Question", "Choice A", "Choice D", "Answer"),
            data_file="test_2.csv",
            image_folder="figures",
            image_archive="images_2.zip",
        ),
        BenchmarkSpec(
            id="omnimedvqa",
            title="OmniMedVQA",
            hub_id="foreverbeliever/OmniMedVQA",
            split="Open-access",
            layout="omnimed",
            row_to_item=I.omnimedvqa_item,
            scorer="choice",
            question_types=_MC,
            fields=("question_id", "question", "option_A", "gt_answer", "image_path"),
        ),
        BenchmarkSpec(
            id="medxpertqa_mm",
            title="MedXpertQA MM",
            hub_id="TsinghuaC3I/MedXpertQA",
            split="test",
            layout="repo",
            row_to_item=I.medxpertqa_item,
            scorer="choice",
            question_types=_MC,
            fields=("id", "question", "options", "label", "images"),
            configs=("MM",),
            image_folder="images",
            image_archive="images.zip",
            size=2000,
        ),
        _text_choice(
            "medxpertqa_text",
            "MedXpertQA Text",
            "TsinghuaC3I/MedXpertQA",
            "test",
            I.medxpertqa_item,
            ("id", "question", "options", "label"),
            configs=("Text",),
            size=2450,
        ),
        _text_choice(
            "mmlu_med",
            "MMLU-Med",
            "cais/mmlu",
            "test",
            I.mmlu_item,
            ("question", "choices", "answer"),
            configs=MMLU_SUBJECTS,
        ),
        _text_choice(
            "pubmedqa",
            "PubMedQA",
            "openlifescienceai/pubmedqa",
            "test",
            I.pubmedqa_item,
            ("id", "data.Question", "data.Context", "data.Options", "data.Correct Option"),
            size=500,
        ),
        _text_choice(
            "medmcqa",
            "MedMCQA",
            "openlifescienceai/medmcqa",
            "validation",
            I.medmcqa_item,
            ("id", "question", "opa", "opb", "opc", "opd", "cop"),
            size=4183,
        ),
        _text_choice(
            "medqa",
            "MedQA",
            "GBaker/MedQA-USMLE-4-options",
            "test",
            I.medqa_item,
            ("question", "options", "answer_idx"),
            size=1273,
        ),
        _text_choice(
            "medbullets_op4",
            "Medbullets op4",
            "tuenguyen/Medical-Eval-MedBullets_op4",
            "train",
            I.medbullets_item,
            ("question", "options", "answer_idx"),
            size=308,
        ),
        _text_choice(
            "medbullets_op5",
            "Medbullets op5",
            "LangAGI-Lab/medbullets_op5",
            "train",
            I.medbullets_item,
            ("question", "opa", "opb", "opc", "opd", "ope", "answer_idx"),
            size=308,
        ),
        _text_choice(
            "supergpqa",
            "SuperGPQA (Medicine)",
            "m-a-p/SuperGPQA",
            "train",
            I.supergpqa_item,
            ("uuid", "question", "options", "answer_letter", "discipline"),
            keep=_medicine,
        ),
        # MedMO's card reports grounding IoU on Bacteria; no public copy is named
        grounding_spec("bacteria", "annotations.json", title="Bacteria (grounding)"),
    )
}


def find_benchmark(name: str) -> BenchmarkSpec:
    """The benchmark called ``name`` (case and ``-`` are forgiven).

    Raises:
        InputError: no benchmark has that name.
    """
    if name.lower().endswith(".json"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise InputError(
                f"No grounding file {name!r}.",
                input=name,
                fix="Give the path of a COCO-style JSON file, or a benchmark id.",
            )
        bench_id = path.stem.lower().replace("-", "_")
        return grounding_spec(bench_id, str(path.resolve()))
    key = name.strip().lower().replace("-", "_")
    spec = BENCHMARKS.get(key)
    if spec is None:
        raise InputError(
            f"Unknown benchmark {name!r}.",
            input=name,
            fix=f"Use one of: {', '.join(BENCHMARKS)} (medmo eval --list shows them).",
        )
    return spec
