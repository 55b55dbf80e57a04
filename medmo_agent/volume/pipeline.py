"""A whole-volume sweep from start to finish: load, select slices, ask about each one
concurrently, link the boxes into 3D findings, draw the overview, read the study."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ImageLoadError, InputError, MedmoError
from ..tasks import detect as detect_task
from ..tasks import ground as ground_task
from ..tasks.params import Generation
from ..tasks.results import GroundingResult, ImageRef
from ..types import MedImage, Message
from .geometry import geometry_of
from .linking import link_findings
from .results import SliceBox, SliceEntry, VolumeResult
from .selection import select_slices
from .study_read import choose_slices, study_messages
from .sweep import current_progress, sweep

__all__ = ["run_volume", "volume_renderer"]

_PLANES = ("axial", "coronal", "sagittal")


def volume_renderer(
    core: Any, image: Any, *, window: str | None, plane: str | None, frame: int | None = None
) -> tuple[MedImage, Callable[[int], MedImage], int, str]:
    """Load ``image`` as a volume: (one rendered slice, ``render(i)``, slices in the
    plane, the plane's name).

    A loaded image (e.g. one slice an MCP server or a review loaded already) is re-sliced
    through its loader's handle; its window, plane and (4D NIfTI) time point apply unless
    others are given. ``frame`` picks the time point of a 4D NIfTI.

    Raises:
        InputError: The image is not a volume (a photo, a PNG), or ``frame`` was given
            for a multi-frame DICOM (whose frames are its slices).
    """
    from ..imaging.dicom import DicomFile
    from ..imaging.nifti import NiftiVolume
    from ..imaging.series import DicomSeries

    if isinstance(image, MedImage):
        window = window if window is not None else _window_of(image)
        plane = plane if plane is not None else image.meta.plane
        if frame is None and isinstance(image.volume, NiftiVolume):
            frame = image.meta.frame  # the time point it was loaded at (None for 3D)
    try:
        first = core.load(image, window=window, plane=plane, frame=frame)
    except ImageLoadError as exc:
        if isinstance(image, MedImage):
            raise
        # The slice a load shows (the middle one) may be the one broken file of a series:
        # the sweep records it with the others; the first slice stands in to start.
        try:
            first = core.load(image, window=window, plane=plane, frame=frame, slice=0)
        except MedmoError:
            raise exc from None
    volume = first.volume
    if frame is None and isinstance(volume, NiftiVolume):
        frame = first.meta.frame  # e.g. a medmo://images/ handle registered at a time point
    label = first.meta.source
    if isinstance(volume, DicomFile) and frame is not None:
        raise InputError(
            f"{label} is a multi-frame DICOM: its frames are the slices of the sweep, so "
            "there is no time point to choose.",
            input="frame",
            fix="Leave frame out and choose frames with slices (e.g. slices='10:40').",
        )
    if isinstance(volume, DicomFile):
        count, name = volume.num_frames, "axial"
        lock = threading.Lock()  # one parsed dataset: decode its frames one at a time

        def render(i: int) -> MedImage:
            with lock:
                return volume.render(frame=i, window=window)

    elif isinstance(volume, (NiftiVolume, DicomSeries)):
        count = int(first.meta.num_slices or 1)
        name = first.meta.plane or "axial"

        def render(i: int) -> MedImage:
            return volume.render(slice=i, window=window, plane=plane, frame=frame)

    else:
        raise InputError(
            f"{label} is a 2D image, not a volume: there are no slices to sweep.",
            input="image",
            fix="Use `ground` or `detect` for a single image; pass a DICOM series folder, a "
            "multi-frame DICOM or a NIfTI volume here.",
        )
    return first, render, count, name if name in _PLANES else "axial"


def run_volume(
    core: Any,
    image: Any,
    *,
    mode: str,
    targets: list[str],
    label: str,
    slices: str | None,
    window: str | None,
    plane: str | None,
    study_read: bool,
    gen: Generation,
    frame: int | None = None,
) -> VolumeResult:
    """Sweep a volume (see :func:`medmo_agent.tasks.volume.ground_volume`)."""
    settings = core.settings
    first, render, count, plane_name = volume_renderer(
        core, image, window=window, plane=plane, frame=frame
    )
    source = first.meta.source
    time_point = _time_point(first)
    chosen = select_slices(slices, count, limit=settings.max_volume_slices, label=source)
    geometry = geometry_of(first.volume, plane=plane_name, first=first)
    build: Callable[[MedImage], list[Message]]
    parse: Callable[..., GroundingResult]
    kwargs: dict[str, Any]
    if mode == "detect":
        build = lambda img: detect_task.build_messages(img, label)  # noqa: E731
        parse, kwargs = detect_task.parse, {"label": label}
    else:
        build = lambda img: ground_task.build_messages(img, targets)  # noqa: E731
        parse, kwargs = ground_task.parse, {"targets": targets}
    per_gen = Generation(
        max_new_tokens=gen.max_new_tokens or settings.volume_max_new_tokens,
        cancel=gen.cancel,
    )
    start = time.perf_counter()
    outcomes = sweep(
        core,
        render,
        chosen,
        build,
        parse,
        per_gen,
        concurrency=_concurrency(settings, geometry.rows * geometry.cols),
        extra_steps=1 if study_read else 0,
        **kwargs,
    )
    entries, boxes_by_slice, warnings = [], {}, list(geometry.warnings)
    if time_point is not None:
        n = first.meta.num_frames or 1
        warnings.append(
            f"The volume holds {n} time points (4D); time point {time_point} was swept "
            f"(frame=0..{n - 1} chooses another)."
        )
    answered = {}
    hide = None if settings.include_paths else _slice_files(first.volume, source)
    for o in outcomes:
        if o.result is None:
            entries.append(SliceEntry(slice=o.slice, error=_hide_paths(o.error, o.slice, hide)))
            continue
        boxes = [SliceBox(label=b.label, box=b.xyxy) for b in o.result.boxes]
        entries.append(SliceEntry(slice=o.slice, boxes=boxes, answer=o.result.raw_text))
        boxes_by_slice[o.slice] = boxes
        answered[o.slice] = o.result
    failed = [e for e in entries if e.error is not None]
    first_error = next((o.exception for o in outcomes if o.exception is not None), None)
    if first_error is not None and not answered:
        raise first_error  # nothing to report: the first slice's own error says why
    if failed:
        warnings.append(
            f"{len(failed)} of {len(chosen)} slice(s) have no answer (see per_slice errors; "
            f"first: slice {failed[0].slice}: {failed[0].error}). Findings do not link across "
            "them."
        )
    findings = link_findings(
        boxes_by_slice, chosen, geometry, iou_threshold=settings.volume_link_iou
    )
    result = VolumeResult(
        raw_text=_raw_text(entries),
        mode="detect" if mode == "detect" else "ground",
        targets=[label] if mode == "detect" else targets,
        source=_label(source, settings.include_paths),
        plane=plane_name,
        shape=(count, geometry.rows, geometry.cols),
        slices=chosen,
        spacing_mm=(
            round(geometry.row_mm, 4),
            round(geometry.col_mm, 4),
            round(geometry.slice_mm(), 4),
        ),
        frame=geometry.frame,
        time_point=time_point,
        per_slice=entries,
        findings=findings,
        # a geometry warning names the folder
        warnings=[_hide_paths(w, -1, hide) or w for w in warnings],
        model=next((r.model for r in answered.values()), ""),
        backend=next((r.backend for r in answered.values()), ""),
    )
    # the study itself, so a later call can take the result URI as its image (with a slice)
    result.image = ImageRef(handle=first.handle, meta=first.meta)
    result._slice_results.update(answered)
    _add_usage(result, time.perf_counter() - start)
    if gen.cancel is not None and gen.cancel.is_set():
        result.notes.append("The sweep was cancelled; slices not read are marked in per_slice.")
        return result
    _draw_overview(result, render, settings)
    if study_read:
        _read_study(core, result, render, count, gen)
    return result


def _draw_overview(result: VolumeResult, render: Callable[[int], MedImage], settings: Any) -> None:
    from ..imaging.overlay import to_png_bytes
    from .overview import overview_strip

    strip = overview_strip(
        render, result.findings, most=settings.volume_overview_findings, tile=192
    )
    if strip is not None:
        result._overview_png = to_png_bytes(strip)


def _read_study(
    core: Any, result: VolumeResult, render: Callable[[int], MedImage], count: int, gen: Generation
) -> None:
    chosen = choose_slices(result.findings, result.slices, core.settings.volume_study_read_images)
    messages = study_messages(render, chosen, result.findings, plane=result.plane, num_slices=count)
    progress = current_progress()
    # Surfaces following slices count the read as one step: token counts would make
    # their progress run backwards.
    read_gen = Generation(
        max_new_tokens=gen.max_new_tokens,
        on_text=gen.on_text if progress is None else None,
        cancel=gen.cancel,
    )
    completion = core.generate(messages, read_gen)
    from ..tasks._common import clean_answer

    result.study_read = clean_answer(completion.text)
    result.study_read_slices = chosen
    result.raw_text = completion.text + ("\n\n" + result.raw_text if result.raw_text else "")
    result.usage.prompt_tokens += completion.prompt_tokens
    result.usage.completion_tokens += completion.completion_tokens
    if progress is not None:
        done = len(result.slices) + 1
        progress(done, done, "study read written")


def _raw_text(entries: list[SliceEntry]) -> str:
    """The answers worth keeping verbatim: each slice with boxes, labelled; with none, the
    distinct answers (a few), so a clean study still says what the model said."""
    boxed = [f"slice {e.slice}: {e.answer.strip()}" for e in entries if e.boxes]
    if boxed:
        return "\n".join(boxed)
    distinct: dict[str, int] = {}
    for e in entries:
        if e.error is None and e.answer.strip():
            distinct.setdefault(e.answer.strip(), e.slice)
    return "\n".join(f"slice {i}: {text}" for text, i in list(distinct.items())[:5])


def _add_usage(result: VolumeResult, seconds: float) -> None:
    for r in result.slice_results.values():
        result.usage.prompt_tokens += r.usage.prompt_tokens
        result.usage.completion_tokens += r.usage.completion_tokens
    result.usage.seconds = round(seconds, 4)  # the sweep's wall time


def _concurrency(settings: Any, slice_pixels: int) -> int:
    """Slices in flight at once: ``volume_concurrency``, fewer for slices so large that
    that many would hold more than ``volume_max_inflight_pixels`` decoded."""
    fit = settings.volume_max_inflight_pixels // max(1, slice_pixels)
    return max(1, min(settings.volume_concurrency, fit))


def _slice_files(volume: Any, source: str) -> tuple[list[str], str]:
    """The file behind each slice (a series has one per slice) and the study's path."""
    files = getattr(volume, "files", None)
    return ([str(f) for f in files] if isinstance(files, list) else []), source


def _hide_paths(error: str | None, index: int, hide: tuple[list[str], str] | None) -> str | None:
    """A slice's error with its file's path (whose name may carry a patient's name) and
    the study's path replaced by labels; ``hide`` is ``None`` when paths are shown."""
    if error is None or hide is None:
        return error
    from ..privacy import is_path, scrub_text

    files, source = hide
    paths = [source] + ([files[index]] if 0 <= index < len(files) else [])
    return scrub_text(error, [p for p in paths if is_path(p)])


def _label(source: str, include_paths: bool) -> str:
    from ..privacy import is_path, path_label

    return source if include_paths or not is_path(source) else path_label(source)


def _window_of(image: MedImage) -> str | None:
    w = image.meta.window
    if w is None:
        return None
    if w.name and w.name != "auto":
        return w.name
    if w.width is not None and w.level is not None and w.name != "auto":
        return f"{w.width:g}/{w.level:g}"
    return None


def _time_point(first: MedImage) -> int | None:
    """The time point a 4D NIfTI was swept at; ``None`` for anything else."""
    from ..imaging.nifti import NiftiVolume

    if isinstance(first.volume, NiftiVolume) and (first.meta.num_frames or 1) > 1:
        return int(first.meta.frame or 0)
    return None
