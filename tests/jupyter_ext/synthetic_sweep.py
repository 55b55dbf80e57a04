"""A synthetic volume whose truth is known, and the sweep result a volume task would give.

A bright ellipsoid sits in a dark NIfTI volume at anisotropic spacing. The result dict
follows the agreed volume sweep shape; its boxes are the ellipsoid's cross-sections, worked
out from the voxel mask itself (not from any model or linking code), placed in the pixels
of an axial slice as the loader renders it: rows run from anterior to posterior (row
``ny - 1 - y``) and columns from the patient's right to left (column ``nx - 1 - x``).
Also in the result: an isolated single-slice detection elsewhere and a slice that failed.
The browser test imports this module in the notebook's kernel, so it needs only numpy and
nibabel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (64, 48, 40)  # x, y, z voxels
SPACING = (0.8, 0.8, 2.5)  # mm along x, y, z: square pixels as stored, slices thickest
CENTRE = (40, 20, 20)  # voxel
RADII_MM = (12.0, 8.0, 12.5)
ORIGIN = (-20.0, -30.0, -40.0)  # mm, RAS
ISOLATED_SLICE = 5
ISOLATED_BOX = [6.0, 30.0, 14.0, 38.0]
FAILED_SLICE = 33


def affine() -> np.ndarray:
    """The voxel-to-RAS affine: axis-aligned, the spacing on the diagonal."""
    out = np.diag([*SPACING, 1.0])
    out[:3, 3] = ORIGIN
    return out


def ellipsoid_mask() -> np.ndarray:
    """The lesion's voxels, (x, y, z) boolean."""
    grid = np.indices(SHAPE, dtype=np.float64)
    inside = sum(((grid[i] - CENTRE[i]) * SPACING[i] / RADII_MM[i]) ** 2 for i in range(3))
    return inside <= 1.0


def write_volume(path: str | Path) -> Path:
    """Write the volume as NIfTI: 0 outside the lesion, 1000 inside."""
    import nibabel as nib

    data = np.where(ellipsoid_mask(), 1000, 0).astype(np.int16)
    path = Path(path)
    nib.save(nib.Nifti1Image(data, affine()), str(path))
    return path


def slice_box(mask: np.ndarray, k: int) -> list[float] | None:
    """The lesion's box on axial slice ``k``, in the rendered slice's pixels."""
    xs, ys = np.nonzero(mask[:, :, k])
    if xs.size == 0:
        return None
    nx, ny = mask.shape[:2]
    cols, rows = nx - 1 - xs, ny - 1 - ys
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


def sweep_result(source: str = "synthetic ellipsoid") -> dict[str, Any]:
    """The volume sweep result for :func:`write_volume`'s volume, every slice swept."""
    mask = ellipsoid_mask()
    nx, ny, nz = SHAPE
    col_mm, row_mm, slice_mm = SPACING
    per_slice: list[dict[str, Any]] = []
    lesion: list[dict[str, Any]] = []
    for k in range(nz):
        entry: dict[str, Any] = {"slice": k, "boxes": [], "answer": "", "error": None}
        box = slice_box(mask, k)
        if box is not None:
            entry["boxes"].append({"label": "lesion", "box": box})
            lesion.append({"slice": k, "box": box})
        if k == ISOLATED_SLICE:
            entry["boxes"].append({"label": "nodule", "box": ISOLATED_BOX})
        if k == FAILED_SLICE:
            entry["error"] = "The model did not answer within 60 s."
        entry["answer"] = "; ".join(b["label"] for b in entry["boxes"]) or "none"
        per_slice.append(entry)
    return {
        "task": "ground_volume",
        "source": source,
        "plane": "axial",
        "shape": [nz, ny, nx],
        "slices": list(range(nz)),
        "spacing_mm": [row_mm, col_mm, slice_mm],
        "frame": "RAS",
        "per_slice": per_slice,
        "findings": [
            _finding(1, "lesion", lesion),
            _finding(2, "nodule", [{"slice": ISOLATED_SLICE, "box": ISOLATED_BOX}]),
        ],
        "study_read": "One ovoid lesion of about 2.4 cm; a single-slice nodule is unconfirmed.",
        "warnings": [f"Slice {FAILED_SLICE} failed; the sweep went on without it."],
    }


def _finding(fid: int, label: str, boxes: list[dict[str, Any]]) -> dict[str, Any]:
    nx, ny, _ = SHAPE
    col_mm, row_mm, slice_mm = SPACING
    arr = np.array([b["box"] for b in boxes])
    first, last = boxes[0]["slice"], boxes[-1]["slice"]
    areas = (arr[:, 2] - arr[:, 0]) * (arr[:, 3] - arr[:, 1])
    key = boxes[int(np.argmax(areas))]["slice"]
    x1, y1, x2, y2 = arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max()
    # the centre pixel back to a voxel (undoing the display flips), then to mm
    voxel = [nx - 1 - ((x1 + x2) / 2 - 0.5), ny - 1 - ((y1 + y2) / 2 - 0.5), (first + last) / 2]
    centre = affine() @ np.array([*voxel, 1.0])
    return {
        "id": fid,
        "label": label,
        "slice_range": [first, last],
        "key_slice": key,
        "boxes": boxes,
        "extent_mm": [
            round(float((x2 - x1) * col_mm), 2),
            round(float((y2 - y1) * row_mm), 2),
            round(float((last - first + 1) * slice_mm), 2),
        ],
        "volume_ml": round(float(areas.sum() * row_mm * col_mm * slice_mm / 1000), 3),
        "center_mm": [round(float(v), 2) for v in centre[:3]],
        "isolated": first == last,
    }
