"""Whole studies: ``ground`` or ``detect`` on every slice of a CT/MR volume, linked into
3D findings measured in millimetres (the work is in :mod:`medmo_agent.volume`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..volume.results import VolumeResult
from .declare import TaskCore, task
from .detect import check_label
from .ground import normalize_targets
from .params import (
    Cli,
    Generation,
    ImageParam,
    LabelParam,
    PlaneParam,
    TargetsParam,
    WindowParam,
)

__all__ = [
    "MODES",
    "SlicesParam",
    "StudyReadParam",
    "TimePointParam",
    "VolumeLabelParam",
    "VolumeModeParam",
    "ground_volume",
]

SlicesParam = Annotated[
    str,
    Field(
        min_length=1,
        description="Which slices to read: 'all', a range '40:120' (end excluded), a step "
        "'::2', both '40:120:2', or a list '10,12,40:50'. Each slice is one model request.",
    ),
    Cli(metavar="SLICES"),
]
VolumeModeParam = Annotated[
    Literal["ground", "detect"],
    Field(
        description="Per-slice task: 'ground' (targets, or every abnormality) or 'detect' "
        "(many objects of one label)."
    ),
    Cli(option=True),
]
StudyReadParam = Annotated[
    bool,
    Field(
        description="Also read the whole study: the findings' key slices plus evenly spaced "
        "ones in one multi-image prompt, answered as a short report."
    ),
]

TimePointParam = Annotated[
    int | None,
    Field(
        ge=0,
        description="For a 4D NIfTI (volumes over time): which volume to sweep, from 0 "
        "(default: the first). A multi-frame DICOM's frames are its slices: pick them with "
        "`slices`.",
    ),
]

# detect's label, optional here: only the detect mode reads it (default 'lesion')
VolumeLabelParam = Annotated[
    str | None,
    Field(description=LabelParam.__metadata__[0].description),
    Cli(option=True, metavar="LABEL"),
]

#: The per-slice tasks a sweep can run (the CLI's `ground`/`detect` take --slices for it).
MODES: tuple[str, ...] = ("ground", "detect")


@task(
    name="ground_volume",
    title="Find and measure findings across a whole CT/MR volume",
    summary="ground or detect on every slice of a volume; 3D findings in mm",
    result=VolumeResult,
    main="targets",
    # its overview PNG is drawn already: no overlay, but the viewer shows every slice
    viewer=True,
)
def ground_volume(
    core: TaskCore,
    image: ImageParam,
    targets: TargetsParam = None,
    *,
    slices: SlicesParam = "all",
    mode: VolumeModeParam = "ground",
    label: VolumeLabelParam = None,
    window: WindowParam = None,
    plane: PlaneParam = None,
    frame: TimePointParam = None,
    study_read: StudyReadParam = False,
    gen: Generation,
) -> VolumeResult:
    """Localise findings on every slice of a CT or MR volume (a DICOM series folder, a
    multi-frame DICOM or a NIfTI file) and link them into 3D findings in millimetres.

    Use for "is there a nodule in this CT?": the whole study, not one slice. Each
    selected slice is one model request (run concurrently); boxes of adjacent slices with
    the same label that overlap are linked into one finding with its slice range, key
    slice (largest box), extent in mm along columns, rows and slices, a bounding volume
    estimate in ml, and its centre in patient coordinates (LPS for DICOM, RAS for NIfTI).
    Findings seen on a single slice are kept and flagged `isolated`. To look closer at a
    finding, call `ground`, `vqa` or `report` on its `key_slice` (`slice` argument; for a
    4D volume also `frame` = the result's `time_point`).

    Returns:
        `findings` (label, slice_range, key_slice, extent_mm, volume_ml, center_mm,
        isolated), `per_slice` boxes and answers (`error` set on a slice that failed),
        `spacing_mm`, `frame` (the patient frame), `time_point` (4D NIfTI), `warnings`
        (uneven or missing slices, gantry tilt), and `study_read` when asked.
    """
    from ..volume.pipeline import run_volume  # numpy and the imaging stack, on first use

    names = normalize_targets(targets)
    what = check_label(label or "lesion") if mode == "detect" else ""
    return run_volume(
        core,
        image,
        mode=mode,
        targets=names,
        label=what,
        slices=slices,
        window=window,
        plane=plane,
        frame=frame,
        study_read=bool(study_read),
        gen=gen,
    )
