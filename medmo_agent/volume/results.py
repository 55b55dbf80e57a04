"""The result of a volume sweep: per-slice boxes, 3D findings, warnings, a study read.

``VolumeResult.to_dict()`` is the agreed JSON shape that viewers read (the MCP tool's
structured content is the same dict). The full per-slice results (each slice's
:class:`~medmo_agent.tasks.results.GroundingResult`: normalised boxes, sizes in mm, raw
text, usage, notes) are kept beside it, not in it: :attr:`VolumeResult.slice_results`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from ..tasks.results import GroundingResult, TaskResult

__all__ = ["Finding", "FindingBox", "SliceBox", "SliceEntry", "VolumeResult"]


class SliceBox(BaseModel):
    """A box on one slice, in that slice's pixels."""

    label: str
    box: tuple[float, float, float, float] = Field(description="[x1, y1, x2, y2], pixels.")


class SliceEntry(BaseModel):
    """What the model answered for one swept slice."""

    slice: int = Field(description="Slice index in the plane.")
    boxes: list[SliceBox] = Field(default_factory=list)
    answer: str = Field("", description="The model's answer for this slice, verbatim.")
    error: str | None = Field(None, description="Why this slice has no answer, if it failed.")


class FindingBox(BaseModel):
    """One slice's box of a 3D finding."""

    slice: int
    box: tuple[float, float, float, float] = Field(description="[x1, y1, x2, y2], pixels.")


class Finding(BaseModel):
    """Boxes of adjacent slices with the same label, linked into one 3D finding."""

    id: int
    label: str
    slice_range: tuple[int, int] = Field(description="First and last slice holding it.")
    key_slice: int = Field(description="The slice with the largest box.")
    boxes: list[FindingBox] = Field(default_factory=list)
    extent_mm: tuple[float, float, float] = Field(
        description="Extent along columns, rows and slices, mm (slice spacing from positions)."
    )
    volume_ml: float = Field(
        description="Bounding estimate: sum of box areas x slice spacing, in millilitres "
        "(an upper bound of the lesion's volume, not a segmentation)."
    )
    center_mm: tuple[float, float, float] = Field(
        description="Centre of its bounding box in patient coordinates (the result's frame)."
    )
    isolated: bool = Field(
        description="Seen on one swept slice only: kept, but less certain than a linked one."
    )


class VolumeResult(TaskResult):
    """Boxes on every swept slice of a CT/MR volume, linked into 3D findings in mm."""

    task: str = "ground_volume"
    mode: Literal["ground", "detect"] = Field("ground", description="Per-slice task used.")
    targets: list[str] = Field(default_factory=list, description="What was asked for.")
    source: str = Field("", description="The series or volume (a label, no patient ids).")
    plane: Literal["axial", "coronal", "sagittal"] = "axial"
    shape: tuple[int, int, int] = Field(description="(slices in the plane, rows, columns).")
    slices: list[int] = Field(default_factory=list, description="Slice indices swept.")
    spacing_mm: tuple[float, float, float] = Field(
        description="(row, column, slice) spacing, mm; slice spacing from positions."
    )
    frame: Literal["LPS", "RAS"] = Field(
        "LPS", description="Patient frame of center_mm: LPS (DICOM) or RAS (NIfTI)."
    )
    time_point: int | None = Field(
        None, description="The volume of a 4D NIfTI that was swept (its frame); None for 3D."
    )
    per_slice: list[SliceEntry] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    study_read: str | None = Field(None, description="The study-level answer, when asked.")
    study_read_slices: list[int] = Field(
        default_factory=list, description="Slices shown for the study-level read."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Geometry and sweep problems: uneven spacing, missing slices, gantry "
        "tilt, failed slices.",
    )

    _slice_results: dict[int, GroundingResult] = PrivateAttr(default_factory=dict)
    _overview_png: bytes | None = PrivateAttr(default=None)

    @property
    def slice_results(self) -> dict[int, GroundingResult]:
        """The full result of each slice that answered, by slice index."""
        return self._slice_results

    @property
    def overview_png(self) -> bytes | None:
        """A small PNG strip of the key slices with their boxes, when one was drawn."""
        return self._overview_png

    def to_dict(self) -> dict[str, Any]:
        """The result as the agreed JSON shape (plus the fields every result has)."""
        return self.model_dump(mode="json")

    def summary(self) -> str:
        done = [e for e in self.per_slice if e.error is None]
        head = (
            f"{len(self.findings)} finding(s) over {len(done)} of {len(self.slices)} "
            f"{self.plane} slice(s) of {self.source}"
        )
        lines = [head + ("." if self.findings else "; nothing localised.")]
        for f in self.findings:
            x, y, z = f.extent_mm
            c = ", ".join(f"{v:.1f}" for v in f.center_mm)
            flag = " (one slice only)" if f.isolated else ""
            lines.append(
                f"#{f.id} {f.label}: slices {f.slice_range[0]}-{f.slice_range[1]}, key slice "
                f"{f.key_slice}, {x:.1f} x {y:.1f} x {z:.1f} mm, <= {f.volume_ml:.2f} ml, "
                f"centre ({c}) mm {self.frame}{flag}"
            )
        if self.study_read:
            lines.append("Study read: " + self.study_read.strip())
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)
