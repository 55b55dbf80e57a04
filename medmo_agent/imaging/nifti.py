"""Reader for NIfTI-1/NIfTI-2 volumes (``.nii``, ``.nii.gz``) through nibabel.

Orientation: the volume is reoriented to the closest canonical RAS+ axes (what
``nibabel.as_closest_canonical`` does: axes permuted and flipped, never resampled), so
index ``i`` runs left->right, ``j`` posterior->anterior, ``k`` inferior->superior. Slices
are then shown in the radiological convention:

- axial (default): anterior at the top, the patient's right on the viewer's left;
- coronal: superior at the top, the patient's right on the viewer's left;
- sagittal: superior at the top, anterior on the viewer's left.

Slice indices count along the canonical axis: axial 0 is the most inferior slice,
coronal 0 the most posterior, sagittal 0 the patient's left-most; the default is the
middle slice. ``ImageMeta.pixel_spacing`` is (row, column) in mm from the header zooms
of the two in-plane axes.

Square pixels: a slice whose two axes have different spacings (a coronal or sagittal
slice of a volume with thick slices) is stretched along the coarse axis to the fine
spacing by linear interpolation (:mod:`.square_pixels`), so anatomy keeps its shape in
every viewer and in what the model reads; ``pixel_spacing`` and the image size are those
of the stretched slice, and boxes on it map to millimetres and patient coordinates
through them.

4D volumes: ``frame`` picks the volume (default 0, the first time point).

Windowing: an explicit window or preset applies to the stored values (HU for CT-like
data, where presets make sense); ``"file"``/``None`` uses the header's cal_min/cal_max
when set, else ``"auto"`` (the 0.5-99.5 percentile of the displayed slice).

Caps: the 2D slice against ``max_image_pixels``; one 3D volume in memory (voxels x bytes
per voxel, from the header) against ``max_image_bytes``, which also bounds gzip expansion.
"""

from __future__ import annotations

import builtins
import threading
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import ImageLoadError, ImageTooLargeError, InputError
from ..types import ImageMeta, MedImage
from .nifti_files import check_volume, close_all, corrupt_error, open_nifti, reopen_nifti
from .openfiles import OPEN_VOLUMES
from .sources import Source
from .square_pixels import square_pixels, square_size
from .windowing import parse_window, render_window

__all__ = ["PLANES", "NiftiVolume", "read_nifti"]

PLANES = ("axial", "coronal", "sagittal")

# canonical axis sliced for each plane, and the (row, column) axes of the slice
_AXES = {"axial": (2, (1, 0)), "coronal": (1, (2, 0)), "sagittal": (0, (2, 1))}


def read_nifti(
    src: Source,
    settings: Settings,
    *,
    frame: int | None = None,
    slice: int | None = None,
    plane: str | None = None,
    window: Any = None,
) -> MedImage:
    """Read a NIfTI volume and render one slice.

    Args:
        src: The opened source.
        settings: Caps.
        frame: Volume of a 4D file (default 0).
        slice: Slice index along the plane's axis (default: the middle slice).
        plane: ``"axial"`` (default), ``"coronal"`` or ``"sagittal"``.
        window: See :mod:`medmo_agent.imaging.windowing`.

    Raises:
        ImageLoadError: Unreadable or truncated file, out-of-range slice or frame.
        ImageTooLargeError: Over the caps.
        InputError: Unknown plane or window.
    """
    parse_window(window)
    normalise_plane(plane)
    image, files = open_nifti(src, settings)
    reopen = None
    if src.path is not None:
        path, allowed = src.path, src.allowed_dirs
        reopen = lambda: reopen_nifti(path, allowed, settings)  # noqa: E731
    volume = NiftiVolume(image, src.label, settings, files=files, reopen=reopen)
    return volume.render(frame=frame, slice=slice, plane=plane, window=window)


def normalise_plane(plane: str | None) -> str:
    """``None`` -> ``"axial"``; raise :class:`InputError` for an unknown plane."""
    name = (plane or "axial").strip().lower()
    aliases = {"transverse": "axial", "transaxial": "axial", "frontal": "coronal"}
    name = aliases.get(name, name)
    if name not in PLANES:
        raise InputError(
            f"Unknown plane {plane!r}.",
            input=str(plane),
            fix="Use 'axial', 'coronal' or 'sagittal'.",
        )
    return name


class NiftiVolume:
    """A NIfTI image kept for re-slicing; stored in ``MedImage.volume``.

    Voxels stay in the file (for a ``.nii.gz``, an anonymous temporary file holding the
    inflated volume): each render reads only the one slice it shows, so a kept volume
    holds no voxel data in memory. The open files count against ``max_open_volumes``
    (see :mod:`.openfiles`); a released volume read from a path reopens it when sliced
    again.
    """

    def __init__(
        self,
        image: Any,
        label: str,
        settings: Settings,
        *,
        files: list[Any] | None = None,
        reopen: Any = None,
    ):
        self.image = image
        self.label = label
        self.settings = settings
        self.spatial, self.num_frames, self.channels = check_volume(
            image.shape, image.header, label, settings
        )
        self._files = list(files or [])
        self._reopen = reopen
        self._lock = threading.Lock()
        self._ornt: Any = None
        self._zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)
        self._orient()
        if self._files:
            OPEN_VOLUMES.touch(self, settings.max_open_volumes)

    def _orient(self) -> None:
        from nibabel.orientations import inv_ornt_aff, io_orientation

        affine = self.image.affine
        self._ornt = io_orientation(affine)
        canon = affine @ inv_ornt_aff(self._ornt, self.spatial)
        x, y, z = (float(v) for v in np.sqrt((canon[:3, :3] ** 2).sum(axis=0)))
        self._zooms = (x, y, z)

    @property
    def is_open(self) -> bool:
        """Whether the volume holds its files open now."""
        return self.image is not None

    def release(self) -> None:
        """Close the volume's files (they are reopened when a path volume is sliced)."""
        with self._lock:
            files, self._files = self._files, []
            if files:
                self.image = None
            close_all(files)
        OPEN_VOLUMES.forget(self)

    def canonical_shape(self) -> tuple[int, int, int]:
        """The spatial shape in canonical (RAS+) axis order."""
        out = [0, 0, 0]
        for axis, (to, _) in enumerate(self._ornt):
            out[int(to)] = self.spatial[axis]
        return tuple(out)  # type: ignore[return-value]

    def read_slice(self, frame: int, axis: int, index: int) -> np.ndarray:
        """One canonical slice: index ``index`` along canonical axis ``axis`` of frame
        ``frame``, with the two other canonical axes in order (channels last)."""
        from nibabel.orientations import apply_orientation

        if self.image is None:
            self._open_again()
        src_axis = next(a for a, (to, _) in enumerate(self._ornt) if int(to) == axis)
        flipped = self._ornt[src_axis][1] < 0
        at = self.spatial[src_axis] - 1 - index if flipped else index
        ndim = len(self.image.shape)
        slicer: list[Any] = []
        for d in range(ndim):
            if d == src_axis:
                slicer.append(at)
            elif d == 3:
                slicer.append(frame)
            elif d > 3:
                slicer.append(0)
            else:
                slicer.append(builtins.slice(None))
        try:
            data = np.asanyarray(self.image.dataobj[tuple(slicer)])
        except Exception as exc:
            raise corrupt_error(self.label, exc) from exc
        shape = list(self.spatial)
        shape[src_axis] = 1
        if self.channels:
            data = np.stack([np.asarray(data[c], dtype=np.uint8) for c in self.channels], -1)
            data = data.reshape((*shape, len(self.channels)))
        else:
            data = data.reshape(shape)
        return np.take(apply_orientation(data, self._ornt), 0, axis=axis)

    def _open_again(self) -> None:
        if self._reopen is None:
            raise ImageLoadError(
                f"{self.label} was closed to keep at most {self.settings.max_open_volumes} "
                "volumes open (max_open_volumes), and an inline volume cannot be reopened.",
                input=self.label,
                fix="Send the volume again, or raise MEDMO_MAX_OPEN_VOLUMES.",
            )
        self.image, self._files = self._reopen()

    def render(
        self,
        *,
        frame: int | None = None,
        slice: int | None = None,
        plane: str | None = None,
        window: Any = None,
    ) -> MedImage:
        """Render one slice of one frame."""
        spec = parse_window(window)
        plane_name = normalise_plane(plane)
        t = 0 if frame is None else int(frame)
        if not 0 <= t < self.num_frames:
            raise ImageLoadError(
                f"Frame {t} is out of range for {self.label}, which has {self.num_frames} "
                "volume(s).",
                input=self.label,
                fix=f"Choose a frame between 0 and {self.num_frames - 1}.",
            )
        zooms = self._zooms
        axis, (row_axis, col_axis) = _AXES[plane_name]
        n = self.canonical_shape()[axis]
        index = n // 2 if slice is None else int(slice)
        if not 0 <= index < n:
            raise ImageLoadError(
                f"Slice {index} is out of range for the {plane_name} plane of {self.label}, "
                f"which has {n} {plane_name} slice(s).",
                input=self.label,
                fix=f"Choose a slice between 0 and {n - 1}.",
            )
        shape = self.canonical_shape()
        stored = (shape[row_axis], shape[col_axis])
        spacing = (float(zooms[row_axis]), float(zooms[col_axis]))
        shown = square_size(stored, spacing)
        npix = shown[0] * shown[1]
        if npix > self.settings.max_image_pixels:
            stretched = "" if shown == stored else " once its pixels are made square"
            raise ImageTooLargeError(
                f"A {plane_name} slice of {self.label} has {npix:,} pixels{stretched}, over "
                f"the {self.settings.max_image_pixels:,}-pixel cap.",
                input=self.label,
            )
        with self._lock:
            plane2d = self.read_slice(t, axis, index)  # axes left: the two others, in order
            header = self.image.header
        if self._files:
            OPEN_VOLUMES.touch(self, self.settings.max_open_volumes)
        # (first, second) remaining axes -> rows = higher canonical axis, flipped so that
        # anterior/superior is up; columns flipped so patient right / anterior is on the left.
        raw = np.ascontiguousarray(np.swapaxes(plane2d, 0, 1)[::-1, ::-1])
        raw, spacing = square_pixels(raw, spacing)
        if self.channels:
            # colour voxels are shown as stored; a window has no meaning for them
            pixels, raw_kept, used, photometric = raw, None, None, "RGB"
        else:
            file_window = _cal_window(header)
            pixels, used = render_window(raw, spec, file_window=file_window)
            raw_kept, photometric = raw, "MONOCHROME2"
        meta = ImageMeta(
            source=self.label,
            format="nifti",
            original_size=(int(raw.shape[1]), int(raw.shape[0])),
            pixel_spacing=(round(spacing[0], 6), round(spacing[1], 6)),
            window=used,
            frame=t if self.num_frames > 1 else None,
            num_frames=self.num_frames if self.num_frames > 1 else None,
            slice=index,
            num_slices=n,
            plane=plane_name,
            bits_stored=8 if self.channels else int(np.dtype(header.get_data_dtype()).itemsize * 8),
            photometric=photometric,
        )
        # grayscale is kept single-channel; MedImage expands it to RGB when read
        return MedImage(pixels=pixels, meta=meta, raw=raw_kept, volume=self)


def _cal_window(header: Any) -> tuple[float, float] | None:
    try:
        lo, hi = float(header["cal_min"]), float(header["cal_max"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return None
    return (hi - lo, (hi + lo) / 2.0)
