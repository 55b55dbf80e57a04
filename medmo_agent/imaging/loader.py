"""The one entry point: :func:`load_image` reads any supported clinical image.

Each format has its own reader module returning pixels *and* metadata; this module only
detects the format and dispatches. DICOM and NIfTI readers are imported on first use, so
``import medmo_agent.imaging`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ImageLoadError
from ..types import MedImage
from .scrub import library_warnings_scrubbed
from .sources import Source, detect_format, open_source

__all__ = ["RASTER_FORMATS", "load_image"]

RASTER_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "webp", "gif"})

WindowArg = Any  # str | tuple[float, float] | None; see medmo_agent.imaging.windowing


def load_image(
    source: str | os.PathLike[str] | bytes | Source,
    *,
    frame: int | None = None,
    slice: int | None = None,
    plane: str | None = None,
    window: WindowArg = None,
    settings: Settings | None = None,
    allowed_dirs: Sequence[str | os.PathLike[str]] | None = None,
) -> MedImage:
    """Load a clinical or ordinary image as an 8-bit RGB rendering plus metadata.

    Args:
        source: A file path, a folder holding one DICOM series, raw bytes, or a
            ``data:image/...;base64,`` URI. The format is detected from the content
            (DICOM marker, NIfTI header, image magic numbers), then the extension.
        frame: Frame of a multi-frame DICOM (default: the middle frame), page of a
            multi-page TIFF (default 0), or volume of a 4D NIfTI (default 0).
        slice: Slice of a DICOM series or NIfTI volume (default: the middle slice).
        plane: ``"axial"`` (default), ``"coronal"`` or ``"sagittal"``, for NIfTI volumes.
        window: Intensity window for CT/MR and high-bit-depth images: a preset name
            (``"lung"``, ``"bone"``, ...), ``"WIDTH/LEVEL"``, ``(width, level)``, ``"auto"``,
            or ``"file"``/``None`` for the file's own window (else auto).
        settings: Byte and pixel caps and the privacy switch; defaults to
            ``Settings.from_env()``.
        allowed_dirs: When given, every file read (the source and each file of a series
            folder) must lie inside one of these folders; links are resolved by the
            loader itself and each file is opened once, with no link followed by the
            kernel (see :mod:`medmo_agent.imaging.fileaccess`).

    Returns:
        A :class:`~medmo_agent.types.MedImage`; ``raw`` holds the un-windowed values of
        the chosen slice or frame for clinical formats, ``volume`` a handle to re-slice.

    Raises:
        ImageLoadError: Missing, unreadable, corrupt or unsupported input, not a regular
            file, or an out-of-range slice/frame; the message names the input and the fix.
        ImageTooLargeError: Over the byte or pixel caps.
        InputError: An unknown window or plane.
        AccessDeniedError: ``allowed_dirs`` is given and a file lies outside it.
        InputError: A path longer than ``settings.max_path_chars``.
    """
    settings = settings if settings is not None else Settings.from_env()
    allowed = None if allowed_dirs is None else tuple(Path(d) for d in allowed_dirs)
    if isinstance(source, Source):
        src = source
    else:
        src = open_source(source, settings, allowed_dirs=allowed)
    try:
        with library_warnings_scrubbed():
            return _dispatch(src, settings, frame, slice, plane, window)
    finally:
        src.close()


def _dispatch(
    src: Source,
    settings: Settings,
    frame: int | None,
    slice: int | None,
    plane: str | None,
    window: WindowArg,
) -> MedImage:
    fmt = detect_format(src)
    opts = {"frame": frame, "slice": slice, "plane": plane, "window": window}
    if fmt == "dicom-series":
        from .series import read_series

        return read_series(src, settings, **opts)
    if fmt == "dicom":
        from .dicom import read_dicom

        _no_slice(src, slice, "a single DICOM file (use frame= for multi-frame files)")
        _no_plane(src, plane, "a single DICOM image")
        return read_dicom(src, settings, frame=frame, window=window)
    if fmt == "nifti":
        from .nifti import read_nifti

        return read_nifti(src, settings, **opts)
    if fmt in ("netcdf", "hdf5"):
        raise _unsupported_container(src, fmt)
    from .raster import read_raster

    _no_slice(src, slice, "a 2D image")
    _no_plane(src, plane, "a 2D image")
    if fmt in RASTER_FORMATS:
        return read_raster(src, settings, frame=frame, window=window, fmt=fmt)
    return _read_unknown(src, settings, frame=frame, window=window)


def _unsupported_container(src: Source, fmt: str) -> ImageLoadError:
    minc = src.name.endswith(".mnc")
    if fmt == "netcdf":
        what = "a MINC1 volume (NetCDF)" if minc else "a NetCDF file"
    else:
        what = "a MINC2 volume (HDF5)" if minc else "an HDF5 file"
    return ImageLoadError(
        f"{src.label} is {what}; this format is not supported (supported: DICOM, NIfTI, "
        "Analyze, PNG, JPEG, TIFF, BMP, WebP).",
        input=src.label,
        fix=(
            "Convert the volume to NIfTI first, e.g. with mnc2nii (minc-tools) or nibabel: "
            "nibabel.save(nibabel.load('in.mnc'), 'out.nii.gz')."
            if minc
            else "Export the image as DICOM, NIfTI or PNG."
        ),
    )


def _read_unknown(src: Source, settings: Settings, **opts: Any) -> MedImage:
    """Last resort for content nobody recognised: let Pillow try its other formats."""
    from .raster import read_raster

    try:
        return read_raster(src, settings, **opts)
    except ImageLoadError as exc:
        if exc.__cause__ is None or "Pillow can read" not in exc.message:
            raise
        raise ImageLoadError(
            f"Cannot tell what kind of image {src.label} is. Readers tried: dicom (pydicom: "
            "no DICM marker), nifti (nibabel: no NIfTI header), raster (Pillow: not identified).",
            input=src.label,
            fix=(
                "Use PNG, JPEG, TIFF, BMP or WebP, a DICOM file (.dcm), a NIfTI volume "
                "(.nii/.nii.gz), or a folder holding one DICOM series."
            ),
        ) from exc


def _no_plane(src: Source, plane: str | None, what: str) -> None:
    # a plane picks how a volume is cut; on a 2D image it would be silently ignored
    if plane is not None:
        raise ImageLoadError(
            f"{src.label} is {what}; it has no {plane} plane to choose.",
            input=src.label,
            fix="Omit plane= (--plane), or pass a NIfTI volume or a DICOM series folder.",
        )


def _no_slice(src: Source, slice: int | None, what: str) -> None:
    if slice not in (None, 0):
        raise ImageLoadError(
            f"{src.label} is {what}; it has no slice {slice}.",
            input=src.label,
            fix="Omit slice=, or pass a DICOM series folder or a NIfTI volume.",
        )
