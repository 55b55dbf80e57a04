"""Load a benchmark's rows through ``datasets``: from the Hugging Face Hub or a local copy.

Both paths run the same code: the hub path fetches the repository's files (``datasets``
for repository layouts, ``huggingface_hub`` for single files and image archives), a local
copy (``data_dir``) points the same readers at ``data_dir/<benchmark id>/``. The layouts
are described in :mod:`medmo_agent.evaluation.benchmarks`. ``datasets`` is imported on
first use only.
"""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from .benchmarks import BenchmarkSpec
from .items import EvalItem, ItemUnusable, RowContext

__all__ = ["LoadedRows", "benchmark_root", "count_items", "load_items", "load_rows"]

_INSTALL = 'pip install "medmo-agent[eval]" (or pip install datasets)'


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(
            "Loading benchmarks needs the `datasets` library, which is not installed.",
            fix=_INSTALL,
        ) from exc
    # its per-split bars would interleave with the evaluation's own progress bar
    datasets.disable_progress_bars()
    return datasets


@dataclass
class LoadedRows:
    """A benchmark's rows: one ``datasets.Dataset`` per config, and an image opener."""

    parts: list[tuple[str | None, Any]]
    find_image: Callable[[str], Path] | None = None

    def __len__(self) -> int:
        return sum(len(d) for _, d in self.parts)


def benchmark_root(spec: BenchmarkSpec, data_dir: str | Path | None) -> Path | None:
    """The local folder of a benchmark (``data_dir/<id>``), or ``None`` for the hub.

    Raises:
        InputError: ``data_dir`` is given but holds no folder for the benchmark.
    """
    if data_dir is None:
        return None
    root = Path(data_dir).expanduser() / spec.id
    if not root.is_dir():
        raise InputError(
            f"No folder {str(root)!r} for benchmark {spec.id!r}.",
            input=str(root),
            fix=f"Put a copy of {spec.hub_id} ({_layout_hint(spec)}) in {root}, "
            "or leave out --data-dir to load it from the Hugging Face Hub.",
        )
    return root


def _layout_hint(spec: BenchmarkSpec) -> str:
    if spec.layout == "coco":
        return f"a COCO-style {spec.data_file} with its images"
    if spec.layout == "file":
        return f"{spec.data_file} and {spec.image_folder}/"
    if spec.layout == "omnimed":
        return "QA_information/Open-access/*.json and Images/"
    configs = [c for c in spec.configs if c]
    where = f"{configs[0]}/" if configs else "data/"
    return f"its files, e.g. {where}{spec.split}-00000-of-00001.parquet"


def _repo_file(spec: BenchmarkSpec, root: Path | None, name: str) -> Path:
    if root is not None:
        path = root / name
        if not path.exists():
            raise InputError(
                f"Benchmark {spec.id!r}: {str(path)!r} is missing.",
                input=str(path),
                fix=f"Copy {name} of {spec.hub_id} there ({_layout_hint(spec)}).",
            )
        return path
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(spec.hub_id, name, repo_type="dataset"))


def _unpacked(spec: BenchmarkSpec, archive: Path) -> Path:
    """The archive unpacked once into the datasets cache (a marker file says it is whole)."""
    datasets = _datasets()
    target = Path(datasets.config.HF_DATASETS_CACHE) / "medmo-eval" / spec.id / archive.stem
    marker = target / ".complete"
    if not marker.exists():
        from ..config import Settings

        cap = Settings.from_env().eval_max_archive_bytes
        with zipfile.ZipFile(archive) as zf:
            unpacked = sum(member.file_size for member in zf.infolist())
            if unpacked > cap:
                raise InputError(
                    f"Benchmark {spec.id!r}: its image archive {archive.name} unpacks to "
                    f"{unpacked:,} bytes, over the {cap:,}-byte cap.",
                    input=archive.name,
                    fix="Raise MEDMO_EVAL_MAX_ARCHIVE_BYTES if the archive is the published "
                    "one, or pass --data-dir with the images unpacked.",
                )
            target.mkdir(parents=True, exist_ok=True)
            zf.extractall(target)
        marker.write_text("ok\n")
    return target


def _image_dir(spec: BenchmarkSpec, root: Path | None) -> Path:
    if root is not None:
        return root / spec.image_folder if spec.image_folder else root
    if spec.image_archive is None:
        raise ConfigError(f"Benchmark {spec.id!r} declares no image archive.")
    base = _unpacked(spec, _repo_file(spec, None, spec.image_archive))
    nested = base / spec.image_folder if spec.image_folder else base
    return nested if nested.is_dir() else base


def _finder(spec: BenchmarkSpec, folder: Path) -> Callable[[str], Path]:
    def find_image(name: str) -> Path:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise InputError(
                f"Benchmark {spec.id!r}: image name {name!r} leaves the image folder.",
                input=name,
                fix="Image names must be relative paths inside the benchmark's folder.",
            )
        path = folder / rel
        if not path.is_file():
            # the whole absolute path, not the name on its own: reports and logs label
            # absolute paths, and a local data set's file name may name a patient
            raise FileNotFoundError(f"{spec.id}: image not found: {path.absolute()}")
        return path

    return find_image


def _load_repo(spec: BenchmarkSpec, root: Path | None, config: str | None) -> Any:
    datasets = _datasets()
    if root is None:
        dataset = datasets.load_dataset(spec.hub_id, config, split=spec.split)
    else:
        dataset = datasets.load_dataset(str(root), data_dir=config, split=spec.split)
    # images stay encoded until an item is asked (thousands of decoded images do not fit)
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return dataset


def _load_file(spec: BenchmarkSpec, root: Path | None) -> Any:
    assert spec.data_file is not None
    path = _repo_file(spec, root, spec.data_file)
    builder = "csv" if path.suffix.lower() == ".csv" else "json"
    return _datasets().load_dataset(builder, data_files=str(path), split="train")


_OMNI_QA = "QA_information/Open-access"
_OMNI_KEYS = ("option_A", "option_B", "option_C", "option_D", "modality_type", "question_type")


def _omnimed_root(spec: BenchmarkSpec, root: Path | None) -> Path:
    if root is not None:
        return root
    from huggingface_hub import snapshot_download

    snap = Path(
        snapshot_download(
            spec.hub_id,
            repo_type="dataset",
            allow_patterns=[f"*{_OMNI_QA}/*.json", "*Images/*"],
        )
    )
    found = sorted(snap.rglob("QA_information"))
    return found[0].parent if found else snap


def _load_omnimed(base: Path, spec: BenchmarkSpec) -> Any:
    files = sorted((base / _OMNI_QA).glob("*.json"))
    if not files:
        raise InputError(
            f"Benchmark {spec.id!r}: no {_OMNI_QA}/*.json under {str(base)!r}.",
            input=str(base),
            fix=f"Copy {spec.hub_id}'s {_OMNI_QA} folder and Images/ there.",
        )
    rows: list[dict[str, Any]] = []
    for path in files:
        for row in json.loads(path.read_text(encoding="utf-8")):
            # files differ in which options they have; every row gets every column
            rows.append({**{k: None for k in _OMNI_KEYS}, **row})
    return _datasets().Dataset.from_list(rows)


def load_rows(spec: BenchmarkSpec, data_dir: str | Path | None = None) -> LoadedRows:
    """Every row of a benchmark (filtered as the spec says), without building items.

    Args:
        spec: the benchmark.
        data_dir: a folder holding ``<benchmark id>/`` in the hub's layout; ``None``
            loads from the Hugging Face Hub (cached by ``datasets``/``huggingface_hub``).
    """
    root = benchmark_root(spec, data_dir)
    opener = None
    if spec.layout == "repo":
        parts = [(c, _load_repo(spec, root, c)) for c in spec.configs]
        if spec.image_folder:
            opener = _finder(spec, _image_dir(spec, root))
    elif spec.layout == "file":
        parts = [(None, _load_file(spec, root))]
        opener = _finder(spec, _image_dir(spec, root))
    else:
        base = _omnimed_root(spec, root)
        parts = [(None, _load_omnimed(base, spec))]
        opener = _finder(spec, base)
    if spec.keep is not None:
        keep = spec.keep
        parts = [(c, d.filter(keep)) for c, d in parts]
    return LoadedRows(parts, opener)


def _coco_file(spec: BenchmarkSpec, data_dir: str | Path | None) -> Path:
    assert spec.data_file is not None
    if Path(spec.data_file).is_absolute():
        return Path(spec.data_file)
    if data_dir is None:
        raise InputError(
            f"Benchmark {spec.id!r} has no public copy to download.",
            input=spec.id,
            fix=f"Pass --data-dir DIR with {spec.id}/{spec.data_file} (COCO-style JSON: "
            "images, categories, annotations with bbox [x, y, width, height]) and its images.",
        )
    root = benchmark_root(spec, data_dir)
    assert root is not None
    return _repo_file(spec, root, spec.data_file)


def _coco_items(spec: BenchmarkSpec, data_dir: str | Path | None) -> list[EvalItem]:
    from .grounding_bench import grounding_items

    return grounding_items(spec.id, _coco_file(spec, data_dir), None)


def count_items(spec: BenchmarkSpec, data_dir: str | Path | None = None) -> int:
    """How many items a benchmark has (loads its rows, builds no item)."""
    if spec.layout == "coco":
        return len(_coco_items(spec, data_dir))
    return len(load_rows(spec, data_dir))


def select_rows(
    rows: LoadedRows, *, limit: int | None = None, seed: int | None = None
) -> list[tuple[int, int]]:
    """The (part, row) positions evaluated: all, or ``limit`` of them.

    Without a seed the first ``limit`` rows; with one, ``limit`` rows drawn at random with
    that seed (the same seed draws the same rows). Kept in dataset order.
    """
    index = [(p, i) for p, (_, d) in enumerate(rows.parts) for i in range(len(d))]
    if limit is not None and limit < 0:
        raise InputError(f"limit must be zero or more, got {limit}.", input="limit")
    if seed is not None:
        random.Random(seed).shuffle(index)
    if limit is not None:
        index = index[:limit]
    return sorted(index)


def _failed_item(spec: BenchmarkSpec, item_id: str, reason: str) -> EvalItem:
    # recorded as failed with its reason when the run reaches it; the others still run
    return EvalItem(
        item_id=item_id,
        benchmark=spec.id,
        question_type=spec.question_types[0],  # type: ignore[arg-type]
        prompt="",
        reason_prompt="",
        question="",
        answer="",
        load_error=reason,
    )


def load_items(
    spec: BenchmarkSpec,
    data_dir: str | Path | None = None,
    *,
    limit: int | None = None,
    seed: int | None = None,
) -> list[EvalItem]:
    """A benchmark's items, ready to ask.

    Args:
        spec: the benchmark.
        data_dir: local copies (see :func:`load_rows`); ``None`` for the hub.
        limit: only this many items (see :func:`select_rows`).
        seed: draw the ``limit`` items at random with this seed.

    An item whose image cannot be read, or whose answer is none of its options, comes
    back with ``load_error`` set: the run records it as failed, with that reason, and
    goes on.

    Raises:
        InputError: a row does not have the benchmark's fields.
    """
    if spec.layout == "coco":
        every = _coco_items(spec, data_dir)
        picked = select_rows(LoadedRows([(None, every)]), limit=limit, seed=seed)
        return [every[i] for _, i in picked]
    rows = load_rows(spec, data_dir)
    multi = len(rows.parts) > 1
    items: list[EvalItem] = []
    seen: set[str] = set()
    for p, i in select_rows(rows, limit=limit, seed=seed):
        config, dataset = rows.parts[p]
        ctx = RowContext(spec.id, i, config if multi else None, rows.find_image)
        row = dataset[i]
        try:
            item = spec.row_to_item(row, ctx)
        except ItemUnusable as exc:  # a bad row fails this item only
            item = _failed_item(spec, exc.item_id, str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"Benchmark {spec.id!r}, row {i}{f' of {config}' if config else ''}: "
                f"cannot read it ({type(exc).__name__}: {exc}).",
                input=spec.id,
                fix=f"The rows need the fields {', '.join(spec.fields)} as {spec.hub_id} has them.",
            ) from exc
        except OSError as exc:  # a missing or unreadable image fails this item only
            item = _failed_item(spec, ctx.default_id(), f"{type(exc).__name__}: {exc}")
        if item.item_id in seen:  # ids must be unique for resuming
            item.item_id = f"{item.item_id}#{ctx.default_id()}"
        seen.add(item.item_id)
        items.append(item)
    return items
