"""Where each slice of a volume lies in the patient: pixel -> millimetres -> patient frame.

A :class:`VolumeGeometry` maps a point given as (column, row, slice index) of the rendered
slices to patient coordinates in mm, and gives the slice spacing measured from the
slices' positions (never from the SliceThickness tag alone).

- DICOM series: each slice's ImagePositionPatient (IPP, the centre of its first pixel)
  and ImageOrientationPatient (IOP: row and column direction cosines); the frame is
  DICOM's LPS (x to the patient's left, y posterior, z superior).
- Multi-frame DICOM: the per-frame PlanePositionSequence of an enhanced file; without it
  the frames are stacked at SpacingBetweenSlices (else SliceThickness) from an origin at
  the first pixel, and a warning says the centre is not in patient coordinates.
- NIfTI: the volume's affine after reorientation to canonical RAS+ (nibabel), with the
  flips the loader applies to show slices radiologically; the frame is RAS.

Bad geometry is reported, not hidden: uneven or missing slices, a gantry tilt (positions
that step off the slice normal) and slices without positions each add a warning; slices
in more than one orientation are refused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, MedmoError

__all__ = ["VolumeGeometry", "geometry_of"]

#: Relative deviation of one slice gap from the median gap that counts as uneven.
_UNEVEN = 0.1
#: Degrees between the slice normal and the stacking direction reported as gantry tilt.
_TILT_DEGREES = 0.5
#: Largest difference between two slices' direction cosines that counts as one orientation.
_SAME_ORIENTATION = 1e-3


@dataclass
class VolumeGeometry:
    """The patient geometry of a volume's slices in one plane.

    Attributes:
        frame: ``"LPS"`` (DICOM) or ``"RAS"`` (NIfTI): the frame of :meth:`to_patient`.
        rows: Rows of each rendered slice.
        cols: Columns of each rendered slice.
        row_mm: Distance between rows, mm.
        col_mm: Distance between columns, mm.
        origins: Patient position of pixel (row 0, column 0) of each slice, (n, 3).
        col_dir: Unit vector along increasing column index (patient frame).
        row_dir: Unit vector along increasing row index (patient frame).
        warnings: What was odd about the geometry, for the result.
    """

    frame: str
    rows: int
    cols: int
    row_mm: float
    col_mm: float
    origins: np.ndarray
    col_dir: np.ndarray
    row_dir: np.ndarray
    warnings: list[str] = field(default_factory=list)
    #: The spacing of a one-slice volume (its thickness), where no gap can be measured.
    _single_mm: float = 1.0

    @property
    def num_slices(self) -> int:
        """Number of slices in the plane."""
        return int(self.origins.shape[0])

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal (column direction x row direction)."""
        n = np.cross(self.col_dir, self.row_dir)
        return n / (np.linalg.norm(n) or 1.0)

    def slice_positions(self) -> np.ndarray:
        """Each slice's position along the normal, mm (increasing with the index for
        sorted volumes)."""
        return self.origins @ self.normal

    def slice_mm(self) -> float:
        """The typical slice spacing: the median gap between successive slice positions
        (for a single slice, the spacing it was built with)."""
        if self.num_slices < 2:
            return float(self._single_mm)
        return float(np.median(np.abs(np.diff(self.slice_positions()))))

    def slab_mm(self, swept: list[int]) -> dict[int, float]:
        """The thickness each swept slice stands for: the distance to the next swept slice
        (the last one: to the previous one), so a sweep with a step counts each slice once
        for the slices it skipped."""
        if len(swept) < 2:
            return {s: self.slice_mm() for s in swept}
        pos = self.slice_positions()
        gaps = [abs(float(pos[b] - pos[a])) for a, b in itertools.pairwise(swept)]
        out = {s: gaps[i] for i, s in enumerate(swept[:-1])}
        out[swept[-1]] = gaps[-1]
        return out

    def to_patient(self, col: float, row: float, slice_index: float) -> tuple[float, float, float]:
        """Patient coordinates (mm, in :attr:`frame`) of a point given as a continuous
        column and row (pixel centres at whole numbers) on a possibly fractional slice."""
        lo = int(np.clip(np.floor(slice_index), 0, self.num_slices - 1))
        hi = min(lo + 1, self.num_slices - 1)
        t = float(slice_index) - lo
        origin = self.origins[lo] * (1 - t) + self.origins[hi] * t
        p = origin + self.col_dir * (col * self.col_mm) + self.row_dir * (row * self.row_mm)
        return (round(float(p[0]), 2), round(float(p[1]), 2), round(float(p[2]), 2))


def geometry_of(volume: Any, *, plane: str, first: Any) -> VolumeGeometry:
    """The geometry of ``volume`` (a loader's re-slicing handle) in ``plane``.

    Args:
        volume: ``MedImage.volume`` of a DICOM series, a multi-frame DICOM or a NIfTI.
        plane: The plane the slices are shown in.
        first: One rendered slice (its size and pixel spacing).

    Raises:
        InputError: Slices in more than one orientation.
    """
    from ..imaging.dicom import DicomFile
    from ..imaging.nifti import NiftiVolume
    from ..imaging.series import DicomSeries

    cols, rows = first.size
    spacing = first.meta.pixel_spacing
    if isinstance(volume, NiftiVolume):
        return _nifti(volume, plane, rows, cols)
    if isinstance(volume, DicomSeries):
        return _series(volume, rows, cols, spacing)
    if isinstance(volume, DicomFile):
        return _multiframe(volume, rows, cols, spacing)
    raise TypeError(f"no geometry for {type(volume).__name__}")


def _series(series: Any, rows: int, cols: int, spacing: Any) -> VolumeGeometry:
    warnings: list[str] = []
    orients = [o for o in series.orientations if o is not None]
    if orients:
        ref = np.array(orients[0])
        if any(np.abs(np.array(o) - ref).max() > _SAME_ORIENTATION for o in orients):
            kinds = len({tuple(np.round(o, 3)) for o in orients})
            raise InputError(
                f"{series.label} holds slices in {kinds} different orientations "
                "(ImageOrientationPatient); a 3D sweep needs one stack of parallel slices.",
                input=series.label,
                fix="Point at a folder holding only the slices of one orientation (e.g. "
                "leave out the localiser/scout images).",
            )
        col_dir, row_dir = ref[:3], ref[3:]
    else:
        col_dir, row_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
        warnings.append("The slices carry no ImageOrientationPatient; axial was assumed.")
    row_mm, col_mm = spacing if spacing else (1.0, 1.0)
    if not spacing:
        warnings.append("No PixelSpacing: 1 mm per pixel was assumed.")
    header = _header(series)
    positions = series.positions
    n = len(positions)
    if any(p is None for p in positions):
        warnings.append(
            "Some slices carry no ImagePositionPatient: slices were stacked at the "
            "SliceThickness from the first one, and centres are approximate."
        )
        thick = _float(header.get("SliceThickness")) or 1.0
        base = next((np.array(p) for p in positions if p is not None), np.zeros(3))
        normal = np.cross(col_dir, row_dir)
        origins = np.array([base + normal * thick * i for i in range(n)])
    else:
        origins = np.array(positions, dtype=float)
    origins = origins + _first_pixel_shift(col_dir, row_dir, spacing, _stored_spacing(header))
    geo = VolumeGeometry("LPS", rows, cols, float(row_mm), float(col_mm), origins, col_dir, row_dir)
    geo.warnings = warnings
    _check_stack(geo, series.label, _float(header.get("SliceThickness")))
    return geo


def _multiframe(dicom: Any, rows: int, cols: int, spacing: Any) -> VolumeGeometry:
    ds = dicom.ds
    n = dicom.num_frames
    warnings: list[str] = []
    shared = _first(ds.get("SharedFunctionalGroupsSequence"))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    orient = _floats(_nested(shared, "PlaneOrientationSequence", "ImageOrientationPatient"))
    if orient is None and per_frame:
        orient = _floats(
            _nested(per_frame[0], "PlaneOrientationSequence", "ImageOrientationPatient")
        )
    orient = orient or _floats(ds.get("ImageOrientationPatient"))
    if orient is None:
        orient = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        warnings.append("The file carries no ImageOrientationPatient; axial was assumed.")
    col_dir, row_dir = np.array(orient[:3]), np.array(orient[3:])
    row_mm, col_mm = spacing if spacing else (1.0, 1.0)
    positions = [
        _floats(_nested(f, "PlanePositionSequence", "ImagePositionPatient")) for f in per_frame
    ]
    if len(positions) == n and all(p is not None for p in positions):
        origins = np.array(positions, dtype=float)
    else:
        gap = (
            _float(ds.get("SpacingBetweenSlices"))
            or _float(_nested(shared, "PixelMeasuresSequence", "SliceThickness"))
            or _float(ds.get("SliceThickness"))
            or 1.0
        )
        warnings.append(
            f"The frames carry no positions: they were stacked {gap:g} mm apart "
            "(SpacingBetweenSlices or SliceThickness), and centre_mm is relative to the first "
            "pixel of the first frame, not patient coordinates."
        )
        normal = np.cross(col_dir, row_dir)
        origins = np.array([normal * gap * i for i in range(n)])
    origins = origins + _first_pixel_shift(col_dir, row_dir, spacing, _stored_spacing(ds))
    geo = VolumeGeometry("LPS", rows, cols, float(row_mm), float(col_mm), origins, col_dir, row_dir)
    geo.warnings = warnings
    _check_stack(geo, dicom.label, _float(ds.get("SliceThickness")))
    return geo


def _nifti(volume: Any, plane: str, rows: int, cols: int) -> VolumeGeometry:
    from nibabel.orientations import inv_ornt_aff

    if volume.image is None:  # closed to bound open files: reopened as a render would
        volume._open_again()
    canon = volume.image.affine @ inv_ornt_aff(volume._ornt, volume.spatial)
    shape = volume.canonical_shape()
    lin, off = canon[:3, :3], canon[:3, 3]
    # The loader shows a slice with rows = the higher remaining canonical axis and columns =
    # the lower one, both flipped (anterior/superior up, patient right on the left).
    axis, row_axis, col_axis = {"axial": (2, 1, 0), "coronal": (1, 2, 0), "sagittal": (0, 2, 1)}[
        plane
    ]
    col_vec = -lin[:, col_axis]
    row_vec = -lin[:, row_axis]
    voxel_col_mm = float(np.linalg.norm(col_vec))
    voxel_row_mm = float(np.linalg.norm(row_vec))
    col_unit, row_unit = col_vec / (voxel_col_mm or 1.0), row_vec / (voxel_row_mm or 1.0)
    # The loader may have stretched the slice to square pixels: the rendered rows/columns
    # cover the stored extent, so each is that extent over their count, and the first
    # rendered pixel's centre lies half a rendered pixel (not half a voxel) inside the edge.
    col_mm = voxel_col_mm * shape[col_axis] / cols
    row_mm = voxel_row_mm * shape[row_axis] / rows
    first_pixel = _first_pixel_shift(
        col_unit, row_unit, (row_mm, col_mm), (voxel_row_mm, voxel_col_mm)
    )
    origins = []
    for s in range(shape[axis]):
        voxel = np.zeros(3)
        voxel[axis] = s
        voxel[col_axis] = shape[col_axis] - 1
        voxel[row_axis] = shape[row_axis] - 1
        origins.append(lin @ voxel + off + first_pixel)
    geo = VolumeGeometry("RAS", rows, cols, row_mm, col_mm, np.array(origins), col_unit, row_unit)
    geo._single_mm = float(np.linalg.norm(lin[:, axis])) or 1.0
    return geo


def _check_stack(geo: VolumeGeometry, label: str, thickness: float | None) -> None:
    """Warn about uneven or missing slices and gantry tilt; keep the single-slice spacing."""
    n = geo.num_slices
    if n < 2:
        geo._single_mm = thickness or 1.0
        geo.warnings.append(
            "A single slice: its extent across slices is the slice thickness "
            f"({geo._single_mm:g} mm{'' if thickness else ', assumed'}), and every finding "
            "is isolated."
        )
        return
    pos = geo.slice_positions()
    gaps = np.abs(np.diff(pos))
    median = float(np.median(gaps))
    if median <= 0:
        geo.warnings.append(f"{label}: several slices share one position; spacing is unknown.")
        return
    odd = [i for i, g in enumerate(gaps) if abs(g - median) > _UNEVEN * median]
    if odd:
        shown = ", ".join(f"{i}-{i + 1}: {gaps[i]:.2f} mm" for i in odd[:5])
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        missing = sum(round(gaps[i] / median) - 1 for i in odd if gaps[i] > median)
        geo.warnings.append(
            f"Uneven slice spacing (typically {median:.2f} mm; {shown}{more})"
            + (f"; about {missing} slice(s) seem missing" if missing > 0 else "")
            + ". Extents and volumes use the measured positions."
        )
    if thickness and abs(thickness - median) > _UNEVEN * median:
        geo.warnings.append(
            f"SliceThickness is {thickness:g} mm but the slices are {median:.2f} mm apart; "
            "the spacing from positions is used."
        )
    step = geo.origins[-1] - geo.origins[0]
    norm = float(np.linalg.norm(step))
    if norm > 0:
        cos = abs(float(step @ geo.normal)) / norm
        tilt = float(np.degrees(np.arccos(min(1.0, cos))))
        if tilt > _TILT_DEGREES:
            geo.warnings.append(
                f"Gantry tilt of about {tilt:.1f} degrees: slice spacing is measured "
                "perpendicular to the slices, and centres use each slice's own position."
            )


def _first_pixel_shift(
    col_dir: np.ndarray, row_dir: np.ndarray, shown: Any, stored: Any
) -> np.ndarray:
    """From the first stored pixel's centre to the first shown pixel's, in the patient
    frame. A slice the loader stretched to square pixels (:mod:`..imaging.square_pixels`)
    covers the same extent with more, smaller pixels, so its first pixel's centre lies half
    a shown pixel, not half a stored one, inside the edge; unstretched, no shift."""
    if not shown or not stored:
        return np.zeros(3)
    return row_dir * 0.5 * (shown[0] - stored[0]) + col_dir * 0.5 * (shown[1] - stored[1])


def _stored_spacing(ds: Any) -> tuple[float, float] | None:
    """(row, column) spacing as the file stores it (before any stretch)."""
    from ..imaging.dicom import pixel_spacing

    return pixel_spacing(ds) if ds else None


def _header(series: Any) -> Any:
    """The first slice's header (no pixels), or an empty dict when it cannot be read."""
    from ..imaging.dicom import read_dataset
    from ..imaging.sources import open_source

    try:
        with open_source(series.files[0], series.settings, allowed_dirs=series.allowed_dirs) as src:
            return read_dataset(src, series.settings, stop_before_pixels=True)
    except MedmoError:  # a hint only: the sweep reads (and reports) every file itself
        return {}


def _first(seq: Any) -> Any:
    return seq[0] if seq else None


def _nested(item: Any, sequence: str, keyword: str) -> Any:
    if item is None:
        return None
    seq = item.get(sequence)
    return seq[0].get(keyword) if seq else None


def _floats(value: Any) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out or None


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None
