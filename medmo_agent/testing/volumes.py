"""Synthetic volumes whose truth is known, and a scripted answer that boxes the lesion.

:class:`Phantom` describes an ellipsoid lesion (centre in patient mm, semi-axes in mm)
inside a volume of given shape and anisotropic spacing; :func:`write_dicom_series`
writes it as a DICOM series (pydicom: one file per slice, ImagePositionPatient and
ImageOrientationPatient set, LPS), :func:`write_nifti` as a NIfTI volume (nibabel, RAS
affine; 3D, or 4D with the lesion in one time point). :func:`lesion_reply` answers a
request by boxing the bright pixels of the slice it was shown, in the model-input pixels
the scripted backend reports, so the whole box path (scaling, parsing, linking,
geometry) is exercised against the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PERFUSION",
    "Phantom",
    "lesion_reply",
    "new_dicom_dataset",
    "write_dicom_series",
    "write_multiframe",
    "write_nifti",
    "write_perfusion",
]

#: Hounsfield units of the lesion and of the background.
LESION_HU = 300
BACKGROUND_HU = -50


@dataclass
class Phantom:
    """An ellipsoid lesion in a box-shaped volume.

    Attributes:
        shape: (slices, rows, columns).
        spacing: (row mm, column mm, slice mm).
        centre: Lesion centre in patient mm (LPS for the DICOM series, RAS for NIfTI).
        radii: Semi-axes along the patient x, y, z axes, mm.
        origin: Patient position of the first voxel.
        tilt_mm: Shift along y (mm) of each successive slice's position (a gantry tilt).
        skip: Slice indices left out of a written DICOM series (missing slices).
    """

    shape: tuple[int, int, int] = (24, 64, 64)
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.5)
    centre: tuple[float, float, float] = (10.0, -6.0, 20.0)
    radii: tuple[float, float, float] = (8.0, 8.0, 8.0)
    origin: tuple[float, float, float] = (-25.0, -25.0, 0.0)
    tilt_mm: float = 0.0
    skip: tuple[int, ...] = field(default_factory=tuple)

    @property
    def volume_ml(self) -> float:
        """The lesion's true volume."""
        a, b, c = self.radii
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0

    def slice_hu(self, k: int) -> np.ndarray:
        """Slice ``k`` as (rows, columns) Hounsfield units, rows along +y, columns +x."""
        _, rows, cols = self.shape
        row_mm, col_mm, slice_mm = self.spacing
        x = self.origin[0] + np.arange(cols) * col_mm
        y = self.origin[1] + k * self.tilt_mm + np.arange(rows) * row_mm
        z = self.origin[2] + k * slice_mm
        a, b, c = self.radii
        cx, cy, cz = self.centre
        inside = ((x[None, :] - cx) / a) ** 2 + ((y[:, None] - cy) / b) ** 2 + (
            (z - cz) / c
        ) ** 2 <= 1.0
        return np.where(inside, LESION_HU, BACKGROUND_HU).astype(np.int16)


def new_dicom_dataset(sop_class: Any) -> Any:
    """An empty DICOM dataset of ``sop_class`` (a UID) with a new instance UID, stored as
    explicit VR little endian."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return ds


def _hu_pixels(ds: Any) -> None:
    """Describe the pixels as signed 16-bit Hounsfield units, shown with a soft-tissue window."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowWidth, ds.WindowCenter = 400, 50


def write_dicom_series(phantom: Phantom, folder: Path) -> Path:
    """Write the phantom as an axial CT series, one file per slice (files in a shuffled
    order of names, so sorting by position is exercised)."""
    from pydicom.uid import CTImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = phantom.shape
    row_mm, col_mm, slice_mm = phantom.spacing
    series = generate_uid()
    order = np.random.default_rng(0).permutation(n)
    for k in range(n):
        if k in phantom.skip:
            continue
        ds = new_dicom_dataset(CTImageStorage)
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.Modality = "CT"
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = [row_mm, col_mm]
        ds.SliceThickness = slice_mm
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        x0, y0, z0 = phantom.origin
        ds.ImagePositionPatient = [x0, y0 + k * phantom.tilt_mm, z0 + k * slice_mm]
        _hu_pixels(ds)
        ds.PixelData = phantom.slice_hu(k).tobytes()
        ds.save_as(folder / f"img{int(order[k]):04d}.dcm", enforce_file_format=True)
    return folder


def write_nifti(
    phantom: Phantom,
    path: Path,
    *,
    flipped: bool = False,
    time_points: int = 1,
    lesion_at: int = 0,
) -> Path:
    """Write the phantom as a NIfTI volume, treating its coordinates as RAS: axes
    i->x, j->y, k->z, or with ``flipped`` i->-x, j->-y (as converters often store
    DICOM's LPS order), so that reorientation is exercised. With ``time_points`` > 1 the
    file is 4D and the lesion shows only in volume ``lesion_at`` (the others are
    background), so a sweep of the wrong time point finds nothing."""
    import nibabel as nib

    n, rows, cols = phantom.shape
    row_mm, col_mm, slice_mm = phantom.spacing
    data = np.stack([phantom.slice_hu(k).T for k in range(n)], axis=-1)  # (x, y, z)
    if time_points > 1:
        empty = np.full_like(data, BACKGROUND_HU)
        data = np.stack([data if t == lesion_at else empty for t in range(time_points)], -1)
    affine = np.diag([col_mm, row_mm, slice_mm, 1.0])
    affine[:3, 3] = phantom.origin
    if flipped:
        data = np.ascontiguousarray(data[::-1, ::-1])
        affine[0, 0], affine[1, 1] = -col_mm, -row_mm
        affine[0, 3] += (cols - 1) * col_mm
        affine[1, 3] += (rows - 1) * row_mm
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


#: A small lesion in a 20-slice volume, for 4D files where it shows at one time point only.
PERFUSION = Phantom(shape=(20, 48, 48), centre=(-5.0, -6.0, 20.0), radii=(6.0, 6.0, 6.0))


def write_perfusion(path: Path, *, time_points: int = 3, lesion_at: int = 2) -> Path:
    """A 4D NIfTI of :data:`PERFUSION` whose lesion shows only at time point ``lesion_at``."""
    return write_nifti(PERFUSION, path, time_points=time_points, lesion_at=lesion_at)


def lesion_reply(
    request: Any, *, label: str = "nodule", min_pixels: int = 65_536, max_pixels: int = 1_048_576
) -> str:
    """A grounding answer boxing the bright pixels of the one image in ``request``, in
    the model-input pixels the scripted backend reports; ``No Finding`` when none. A
    request with several images (a study read) gets a short report naming how many."""
    from ..imaging.geometry import model_input_size

    if len(request.images) != 1:
        return f"Findings: {len(request.images)} slices reviewed; one {label}. Impression: {label}."
    (image,) = request.images
    gray = image.gray if image.gray is not None else image.pixels[..., 0]
    ys, xs = np.nonzero(gray > 200)
    if xs.size == 0:
        return "No Finding"
    w, h = image.size
    in_w, in_h = model_input_size((w, h), min_pixels, max_pixels)
    sx, sy = in_w / w, in_h / h
    box = [xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy]
    return f"{label}: [{', '.join(f'{v:.1f}' for v in box)}]"


def write_multiframe(phantom: Phantom, path: Path, *, positions: bool = True) -> Path:
    """Write the phantom as one enhanced multi-frame CT file: the frames' positions in the
    per-frame functional groups (or, without ``positions``, only SpacingBetweenSlices)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import EnhancedCTImageStorage, generate_uid

    n, rows, cols = phantom.shape
    row_mm, col_mm, slice_mm = phantom.spacing
    ds = new_dicom_dataset(EnhancedCTImageStorage)
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, n
    _hu_pixels(ds)
    ds.PixelSpacing = [row_mm, col_mm]
    ds.SpacingBetweenSlices = slice_mm
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures = Dataset()
    measures.PixelSpacing = [row_mm, col_mm]
    measures.SliceThickness = slice_mm
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    if positions:
        frames = []
        x0, y0, z0 = phantom.origin
        for k in range(n):
            item, plane = Dataset(), Dataset()
            plane.ImagePositionPatient = [x0, y0 + k * phantom.tilt_mm, z0 + k * slice_mm]
            item.PlanePositionSequence = Sequence([plane])
            frames.append(item)
        ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = b"".join(phantom.slice_hu(k).tobytes() for k in range(n))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
