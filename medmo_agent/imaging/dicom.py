"""Reader for single DICOM files (pydicom 3), including multi-frame and compressed ones.

Rendering of grayscale images follows the DICOM pipeline: stored values -> modality LUT
(Rescale Slope/Intercept; HU for CT), kept in ``MedImage.raw`` -> VOI (the requested
window, else the file's Window Center/Width or VOI LUT, else auto) -> 8 bits, inverted for
MONOCHROME1 so that higher values always look brighter. Colour images (RGB, YBR_* which
pydicom converts to RGB, PALETTE COLOR through its lookup table) are shown as stored.

Multi-frame files default to the **middle** frame, like volumes default to the middle
slice: in enhanced CT/MR and tomosynthesis the frames are slices, and the middle one is
the most representative. Only the chosen frame is decoded, so the pixel cap applies to
one frame (Rows x Columns); the byte cap bounds the file.

Compressed transfer syntaxes decode through pydicom's plugins: pylibjpeg with
pylibjpeg-libjpeg (JPEG, JPEG-LS), pylibjpeg-openjpeg (JPEG 2000), pylibjpeg-rle or
pydicom's own RLE decoder, Pillow, or python-gdcm.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import ImageLoadError, ImageTooLargeError
from ..types import ImageMeta, MedImage, WindowInfo
from .deid import deidentified_attributes
from .sources import Source
from .windowing import parse_window, render_window, scale_to_uint8

__all__ = [
    "DicomFile",
    "file_window",
    "import_pydicom",
    "pixel_spacing",
    "read_dataset",
    "read_dicom",
    "render_dataset",
]

_PLUGIN_HINTS = {
    "1.2.840.10008.1.2.4.50": "pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pip install pylibjpeg pylibjpeg-libjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.57": "pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pip install pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pip install pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.81": "pip install pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.90": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pip install pylibjpeg pylibjpeg-rle",
}


def import_pydicom() -> Any:
    """Import pydicom, or explain how to install it."""
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - pydicom is a core dependency
        raise ImageLoadError(
            "Reading DICOM needs pydicom, which is not installed.",
            fix="pip install 'pydicom>=3' pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg",
        ) from exc
    return pydicom


def read_dataset(src: Source, *, stop_before_pixels: bool = False) -> Any:
    """Parse a DICOM source into a pydicom Dataset.

    Raises:
        ImageLoadError: The content is not readable DICOM (corrupt or truncated header).
    """
    pydicom = import_pydicom()
    fp = io.BytesIO(src.data) if src.data is not None else src.path
    try:
        return pydicom.dcmread(fp, force=True, stop_before_pixels=stop_before_pixels)
    except Exception as exc:  # pydicom raises many types for malformed files
        raise ImageLoadError(
            f"{src.label} is not a readable DICOM file (reader: dicom/pydicom): {exc}",
            input=src.label,
            fix="Check that the file is complete DICOM (re-export it from the PACS or viewer).",
        ) from exc


def read_dicom(
    src: Source, settings: Settings, *, frame: int | None = None, window: Any = None
) -> MedImage:
    """Read one DICOM file and render one frame.

    Args:
        src: The opened source.
        settings: Pixel cap and privacy switch.
        frame: Frame of a multi-frame file (default: the middle frame).
        window: See :mod:`medmo_agent.imaging.windowing`.
    """
    parse_window(window)  # fail on a bad window before reading anything big
    ds = read_dataset(src)
    return DicomFile(ds, src.label, settings).render(frame=frame, window=window)


class DicomFile:
    """A parsed DICOM file kept in memory, so other frames or windows render without
    re-reading it. Stored in ``MedImage.volume``."""

    def __init__(self, ds: Any, label: str, settings: Settings):
        self.ds = ds
        self.label = label
        self.settings = settings

    @property
    def num_frames(self) -> int:
        """Number of frames in the file."""
        return _num_frames(self.ds)

    def render(
        self,
        *,
        frame: int | None = None,
        window: Any = None,
        slice: int | None = None,
        plane: str | None = None,
    ) -> MedImage:
        """Render one frame with a window (``slice``/``plane`` must be unset or 0/axial)."""
        if slice not in (None, 0) or plane not in (None, "axial"):
            raise ImageLoadError(
                f"{self.label} is a single DICOM image; it has no slice {slice} or plane {plane}.",
                input=self.label,
                fix="Use frame= for multi-frame files, or pass the folder holding the series.",
            )
        image = render_dataset(self.ds, self.label, self.settings, frame=frame, window=window)
        image.volume = self
        return image


def render_dataset(
    ds: Any,
    label: str,
    settings: Settings,
    *,
    frame: int | None = None,
    window: Any = None,
    fmt: str = "dicom",
) -> MedImage:
    """Render one frame of a parsed dataset to a :class:`MedImage` (no ``volume`` set)."""
    spec = parse_window(window)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        kind = str(getattr(ds.get("SOPClassUID"), "name", "") or ds.get("Modality") or "")
        raise ImageLoadError(
            f"{label} holds no image pixels" + (f" (it is a {kind} object)." if kind else "."),
            input=label,
            fix="Pass a DICOM image file (CT, MR, CR, DX, US, ...) or a folder of them; "
            "if this file was one, it may have been cut short: copy it again.",
        )
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows * cols > settings.max_image_pixels:
        raise ImageTooLargeError(
            f"{label} has {cols}x{rows} = {rows * cols:,} pixels per frame, over the "
            f"{settings.max_image_pixels:,}-pixel cap.",
            input=label,
        )
    num_frames = _num_frames(ds)
    index = num_frames // 2 if frame is None else int(frame)
    if not 0 <= index < num_frames:
        raise ImageLoadError(
            f"Frame {index} is out of range for {label}, which has {num_frames} frame(s).",
            input=label,
            fix=f"Choose a frame between 0 and {num_frames - 1}.",
        )
    arr = _decode(ds, label, index if num_frames > 1 else None)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits = int(ds.get("BitsStored") or 0) or None
    raw = None
    used: WindowInfo | None = None
    if arr.ndim == 3 and photometric == "PALETTE COLOR":
        pixels = arr  # already expanded (defensive: some decoders do)
    elif photometric == "PALETTE COLOR":
        pixels = _palette(ds, arr)
    elif arr.ndim == 3:
        pixels = scale_to_uint8(arr, bits)
    else:
        raw, gray, used = _grayscale(ds, arr, spec)
        if photometric == "MONOCHROME1":
            gray = 255 - gray
        pixels = gray  # kept single-channel; MedImage expands it to RGB when read
    meta = ImageMeta(
        source=label,
        format=fmt,
        modality=str(ds.get("Modality") or "") or None,
        original_size=(int(pixels.shape[1]), int(pixels.shape[0])),
        pixel_spacing=pixel_spacing(ds),
        window=used,
        frame=index if num_frames > 1 else None,
        num_frames=num_frames if num_frames > 1 else None,
        bits_stored=bits,
        photometric=photometric,
        dicom=deidentified_attributes(ds, include_phi=settings.include_phi),
    )
    return MedImage(pixels=np.ascontiguousarray(pixels), meta=meta, raw=raw)


def _num_frames(ds: Any) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _decode(ds: Any, label: str, index: int | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""
    try:
        return pixel_array(ds, index=index)
    except Exception as exc:  # decoders raise RuntimeError, ValueError, NotImplementedError...
        text = str(exc).strip().rstrip(".") + "."  # the fix follows it in the same line
        name = _syntax_name(syntax)
        if "plugin" in text or "decompress" in text.lower() or isinstance(exc, NotImplementedError):
            hint = _PLUGIN_HINTS.get(syntax, "pip install python-gdcm")
            raise ImageLoadError(
                f"{label} uses the compressed transfer syntax {name}, which no installed "
                f"decoder could read (reader: dicom/pydicom): {text}",
                input=label,
                fix=f"Install a decoder: {hint}; if it is installed, the pixel data may be "
                "damaged (python-gdcm decodes some files other plugins cannot).",
            ) from exc
        raise ImageLoadError(
            f"{label} has pixel data that cannot be decoded (truncated or corrupt): {text}",
            input=label,
            fix="Re-export the file; check that the whole file was copied.",
        ) from exc


def _syntax_name(uid: str) -> str:
    if not uid:
        return "(unknown)"
    from pydicom.uid import UID

    return f"'{UID(uid).name}' ({uid})"


def _grayscale(ds: Any, arr: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray, WindowInfo]:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    raw = apply_modality_lut(arr, ds)
    if spec.mode == "file" and "WindowWidth" not in ds and "VOILUTSequence" in ds:
        voi = apply_voi_lut(raw, ds, index=0)
        return raw, scale_to_uint8(voi), WindowInfo(name="file")
    gray, used = render_window(raw, spec, file_window=file_window(ds))
    return raw, gray, used


def file_window(ds: Any) -> tuple[float, float] | None:
    """The file's first (width, level) pair, or ``None``."""
    width, center = ds.get("WindowWidth"), ds.get("WindowCenter")
    if width is None or center is None:
        return None
    try:
        w = float(width[0] if _is_multi(width) else width)
        c = float(center[0] if _is_multi(center) else center)
    except (TypeError, ValueError, IndexError):
        return None
    return (w, c) if w > 0 else None


def _is_multi(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def _palette(ds: Any, arr: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(arr, ds)
    try:
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    except (AttributeError, IndexError, TypeError, ValueError):
        bits = 16 if rgb.dtype != np.uint8 else 8
    return scale_to_uint8(rgb, bits)


def pixel_spacing(ds: Any) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else ImagerPixelSpacing, else the
    shared functional groups of an enhanced multi-frame file."""
    candidates = [ds.get("PixelSpacing"), ds.get("ImagerPixelSpacing")]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        measures = shared[0].get("PixelMeasuresSequence")
        if measures:
            candidates.append(measures[0].get("PixelSpacing"))
    for value in candidates:
        try:
            if value is not None and len(value) == 2:
                row, col = float(value[0]), float(value[1])
                if row > 0 and col > 0:
                    return (row, col)
        except (TypeError, ValueError):
            continue
    return None
