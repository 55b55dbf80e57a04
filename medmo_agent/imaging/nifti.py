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

4D volumes: ``frame`` picks the volume (default 0, the first time point).

Windowing: an explicit window or preset applies to the stored values (HU for CT-like
data, where presets make sense); ``"file"``/``None`` uses the header's cal_min/cal_max
when set, else ``"auto"`` (the 0.5-99.5 percentile of the displayed slice).

Caps: the 2D slice against ``max_image_pixels``; one 3D volume in memory (voxels x bytes
per voxel, from the header) against ``max_image_bytes``, which also bounds gzip expansion.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import ImageLoadError, ImageTooLargeError, InputError
from ..types import ImageMeta, MedImage
from .sources import Source
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
    image = _load(src, settings)
    return NiftiVolume(image, src.label, settings).render(
        frame=frame, slice=slice, plane=plane, window=window
    )


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


def _import_nibabel() -> Any:
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is a core dependency
        raise ImageLoadError(
            "Reading NIfTI needs nibabel, which is not installed.", fix="pip install nibabel"
        ) from exc
    return nibabel


def _load(src: Source, settings: Settings) -> Any:
    nib = _import_nibabel()
    try:
        if src.path is not None and src.name.endswith((".nii", ".nii.gz")):
            image = nib.load(src.path)  # lazy: pixel data stays on disk until sliced
        else:
            data = _gunzip(src.read_bytes(), src.label, settings)
            nifti2 = (
                int.from_bytes(data[:4], "little") == 540 or int.from_bytes(data[:4], "big") == 540
            )
            cls = nib.Nifti2Image if nifti2 else nib.Nifti1Image
            image = cls.from_bytes(data)
    except (ImageLoadError, ImageTooLargeError):
        raise
    except Exception as exc:  # nibabel raises many types for malformed headers
        raise _corrupt(src.label, exc) from exc
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ImageLoadError(
            f"{src.label} is not a NIfTI image (reader: nifti/nibabel).",
            input=src.label,
            fix="Convert it to .nii or .nii.gz.",
        )
    return image


def _gunzip(data: bytes, label: str, settings: Settings) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, settings.max_image_bytes + 1)
    except zlib.error as exc:
        raise _corrupt(label, exc) from exc
    if len(out) > settings.max_image_bytes:
        raise ImageTooLargeError(
            f"{label} expands to more than {settings.max_image_bytes:,} bytes.", input=label
        )
    return out


def _corrupt(label: str, exc: BaseException) -> ImageLoadError:
    return ImageLoadError(
        f"{label} could not be read as NIfTI (reader: nifti/nibabel; truncated or corrupt): {exc}",
        input=label,
        fix="Re-export the volume; check that the whole file was copied.",
    )


class NiftiVolume:
    """A NIfTI image and its canonical (RAS+) data, kept for re-slicing.

    Stored in ``MedImage.volume``; the canonical array of the last frame used is cached.
    """

    def __init__(self, image: Any, label: str, settings: Settings):
        self.image = image
        self.label = label
        self.settings = settings
        shape = tuple(int(n) for n in image.shape)
        if len(shape) > 4 and any(n > 1 for n in shape[4:]):
            raise ImageLoadError(
                f"{label} has {len(shape)} dimensions {shape}; only 2D, 3D and 4D volumes "
                "are read.",
                input=label,
                fix="Extract a 3D volume first (e.g. with nibabel or fslroi).",
            )
        self.spatial = (*shape, 1, 1, 1)[:3]
        self.num_frames = shape[3] if len(shape) >= 4 else 1
        itemsize = np.dtype(image.header.get_data_dtype()).itemsize
        if image.header.get_slope_inter()[0] not in (None, 1.0):
            itemsize = max(itemsize, 4)  # scaled data is returned as float
        nbytes = int(np.prod(self.spatial)) * itemsize
        if nbytes > settings.max_image_bytes:
            raise ImageTooLargeError(
                f"{label} holds a {'x'.join(map(str, self.spatial))} volume ({nbytes:,} bytes "
                f"in memory), over the {settings.max_image_bytes:,}-byte cap.",
                input=label,
            )
        self._cache: tuple[int, np.ndarray, tuple[float, float, float]] | None = None

    def canonical(self, frame: int) -> tuple[np.ndarray, tuple[float, float, float]]:
        """The RAS+ data of one frame and its voxel sizes (mm) along i, j, k."""
        if self._cache is not None and self._cache[0] == frame:
            return self._cache[1], self._cache[2]
        from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

        try:
            proxy = self.image.dataobj
            data = np.asanyarray(proxy[:, :, :, frame] if len(self.image.shape) >= 4 else proxy)
        except Exception as exc:
            raise _corrupt(self.label, exc) from exc
        data = data.reshape(self.spatial)
        affine = self.image.affine
        ornt = io_orientation(affine)
        data = apply_orientation(data, ornt)
        canon = affine @ inv_ornt_aff(ornt, self.spatial)
        zooms = tuple(float(z) for z in np.sqrt((canon[:3, :3] ** 2).sum(axis=0)))
        self._cache = (frame, data, zooms)  # type: ignore[assignment]
        return data, zooms  # type: ignore[return-value]

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
        data, zooms = self.canonical(t)
        axis, (row_axis, col_axis) = _AXES[plane_name]
        n = data.shape[axis]
        index = n // 2 if slice is None else int(slice)
        if not 0 <= index < n:
            raise ImageLoadError(
                f"Slice {index} is out of range for the {plane_name} plane of {self.label}, "
                f"which has {n} {plane_name} slice(s).",
                input=self.label,
                fix=f"Choose a slice between 0 and {n - 1}.",
            )
        plane2d = np.take(data, index, axis=axis)  # axes left: the two others, in order
        if plane2d.size > self.settings.max_image_pixels:
            raise ImageTooLargeError(
                f"A {plane_name} slice of {self.label} has {plane2d.size:,} pixels, over the "
                f"{self.settings.max_image_pixels:,}-pixel cap.",
                input=self.label,
            )
        # (first, second) remaining axes -> rows = higher canonical axis, flipped so that
        # anterior/superior is up; columns flipped so patient right / anterior is on the left.
        raw = np.ascontiguousarray(plane2d.T[::-1, ::-1])
        file_window = _cal_window(self.image.header)
        gray, used = render_window(raw, spec, file_window=file_window)
        meta = ImageMeta(
            source=self.label,
            format="nifti",
            original_size=(int(raw.shape[1]), int(raw.shape[0])),
            pixel_spacing=(round(zooms[row_axis], 6), round(zooms[col_axis], 6)),
            window=used,
            frame=t if self.num_frames > 1 else None,
            num_frames=self.num_frames if self.num_frames > 1 else None,
            slice=index,
            num_slices=n,
            plane=plane_name,
            bits_stored=int(np.dtype(self.image.header.get_data_dtype()).itemsize * 8),
            photometric="MONOCHROME2",
        )
        # kept single-channel; MedImage expands it to RGB when read
        return MedImage(pixels=gray, meta=meta, raw=raw, volume=self)


def _cal_window(header: Any) -> tuple[float, float] | None:
    try:
        lo, hi = float(header["cal_min"]), float(header["cal_max"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return None
    return (hi - lo, (hi + lo) / 2.0)
