"""Reader for single DICOM files (pydicom 3), including multi-frame and compressed ones.

Rendering of grayscale images follows the DICOM pipeline: stored values -> modality LUT
(Rescale Slope/Intercept; HU for CT), kept in ``MedImage.raw`` -> VOI (the requested
window, else the file's Window Center/Width or VOI LUT, else auto) -> 8 bits, inverted for
MONOCHROME1 so that higher values always look brighter. Colour images (RGB, YBR_* which
pydicom converts to RGB, PALETTE COLOR through its lookup table) are shown as stored.
Pixels that are not square (PixelSpacing rows != columns) of cross-sectional and projection
images (:data:`SQUARE_MODALITIES`) are stretched to square ones, ``raw`` and the shown image
alike (:mod:`.square_pixels`); ``pixel_spacing`` and the size are the stretched image's.

Multi-frame files default to the **middle** frame, like volumes default to the middle
slice: in enhanced CT/MR and tomosynthesis the frames are slices, and the middle one is
the most representative. Only the chosen frame is decoded, so the pixel cap applies to
one frame (Rows x Columns); the byte cap bounds the file.

Compressed transfer syntaxes decode through pydicom's plugins: pylibjpeg with
pylibjpeg-libjpeg (JPEG, JPEG-LS), pylibjpeg-openjpeg (JPEG 2000), pylibjpeg-rle or
pydicom's own RLE decoder, Pillow, or python-gdcm.
"""

from __future__ import annotations

from typing import Any, BinaryIO, cast

import numpy as np

from ..config import Settings
from ..errors import ImageLoadError, ImageTooLargeError
from ..types import ImageMeta, MedImage, WindowInfo
from .deid import deidentified_attributes
from .dicom_pixels import (
    check_pixel_module,
    decode_frame,
    frame_count,
    infer_transfer_syntax,
    palette_rgb,
)
from .sources import Source
from .square_pixels import square_pixels, square_size
from .windowing import parse_window, render_window, scale_to_uint8

__all__ = [
    "DEFER_BYTES",
    "DicomFile",
    "file_window",
    "import_pydicom",
    "pixel_spacing",
    "read_dataset",
    "read_dicom",
    "render_dataset",
]


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


#: Elements longer than this are not read while parsing (pydicom's ``defer_size``): the
#: pixel data is then read on its own and any other large element (a private blob) is
#: dropped unread, so it is never held in memory. Not a limit: nothing is refused.
DEFER_BYTES = 1 << 20

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_DEFLATED = "1.2.840.10008.1.2.1.99"


def read_dataset(src: Source, settings: Settings, *, stop_before_pixels: bool = False) -> Any:
    """Parse a DICOM source into a pydicom Dataset, reading only what is needed.

    The file is read from the opened descriptor. Large elements are skipped while
    parsing; the pixel data is then loaded (unless ``stop_before_pixels``) and every
    other skipped element dropped. A deflated dataset is inflated as it is read, and
    refused once it expands past ``settings.max_image_bytes``.

    Raises:
        ImageLoadError: The content is not readable DICOM (corrupt or truncated header).
        ImageTooLargeError: A deflated dataset expands past the byte cap.
    """
    pydicom = import_pydicom()
    stream = src.stream()
    try:
        ds = _parse(pydicom, stream, src, settings, stop_before_pixels)
        if not stop_before_pixels:
            for tag in _PIXEL_TAGS:
                if tag in ds:
                    ds[tag]
        # What is still deferred is large and not needed: drop it rather than keep a
        # reference to a file that is about to be closed.
        for tag in [t for t, e in ds._dict.items() if _is_deferred(e)]:
            del ds[tag]
        ds.buffer = None
        ds.filename = None
    except (ImageLoadError, ImageTooLargeError):
        raise
    except Exception as exc:  # pydicom raises many types for malformed files
        raise ImageLoadError(
            f"{src.label} is not a readable DICOM file (reader: dicom/pydicom): {_short(exc)}",
            input=src.label,
            fix="Check that the file is complete DICOM (re-export it from the PACS or viewer).",
        ) from exc
    return ds


def _parse(pydicom: Any, stream: Any, src: Source, settings: Settings, stop: bool) -> Any:
    from pydicom.filereader import _read_file_meta_info, read_preamble

    preamble = read_preamble(stream, True)
    meta = _read_file_meta_info(stream)
    syntax = str(meta.get("TransferSyntaxUID", "") or "")
    if syntax != _DEFLATED:
        stream.seek(0)
        return pydicom.dcmread(stream, force=True, stop_before_pixels=stop, defer_size=DEFER_BYTES)
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset as read_body

    body = _InflatingStream(stream, stream.tell(), settings.max_image_bytes, src.label)
    stop_when = _stop_at_pixels if stop else None
    # a read-only binary file as far as pydicom is concerned: read, seek, tell
    dataset = read_body(
        cast(BinaryIO, body), False, True, stop_when=stop_when, defer_size=DEFER_BYTES
    )
    ds = FileDataset(body, dataset, preamble, meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _stop_at_pixels(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS


def _is_deferred(elem: Any) -> bool:
    return getattr(elem, "value", 0) is None and getattr(elem, "length", 0) not in (0, None)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


class _InflatingStream:
    """A seekable read-only view of a deflated dataset, inflated as it is read.

    Only a small window of output is kept; seeking backwards past it inflates again
    from the start. Output beyond ``limit`` bytes raises :class:`ImageTooLargeError`, so
    a small file cannot expand without bound in memory or time.
    """

    _WINDOW = 1 << 16
    _CHUNK = 1 << 16

    def __init__(self, raw: Any, start: int, limit: int, label: str):
        self._raw, self._start, self._limit, self._label = raw, start, limit, label
        self._pos = 0
        self._restart()

    def _restart(self) -> None:
        import zlib

        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._in_pos = self._start
        self._buf = bytearray()
        self._buf_start = 0
        self._out = 0
        self._eof = False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self._pos
        elif whence == 2:
            raise OSError("cannot seek from the end of a deflated DICOM dataset")
        self._pos = max(0, offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if self._pos < self._buf_start:
            self._restart()
        if n is None or n < 0:
            n = self._limit + 1 - self._pos
        self._fill(self._pos + n)
        lo = self._pos - self._buf_start
        data = bytes(self._buf[lo : lo + n]) if lo >= 0 else b""
        self._pos += len(data)
        return data

    def _fill(self, upto: int) -> None:
        while self._out < upto and not self._eof:
            data = self._inflater.unconsumed_tail
            if not data:
                self._raw.seek(self._in_pos)
                data = self._raw.read(self._CHUNK)
                self._in_pos += len(data)
                if not data:
                    self._eof = True
                    break
            out = self._inflater.decompress(data, self._CHUNK)
            if self._inflater.eof:
                self._eof = True
            self._out += len(out)
            if self._out > self._limit:
                raise ImageTooLargeError(
                    f"{self._label} is a deflated DICOM whose dataset expands past the "
                    f"{self._limit:,}-byte cap (max_image_bytes).",
                    input=self._label,
                )
            self._buf += out
            # keep what the current read needs, plus a window for short look-backs
            keep_from = max(self._buf_start, min(self._pos, self._out - self._WINDOW))
            if keep_from - self._buf_start > self._WINDOW:
                del self._buf[: keep_from - self._buf_start]
                self._buf_start = keep_from


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
    ds = read_dataset(src, settings)
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
        return frame_count(self.ds)

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
    check_pixel_module(ds, label)
    infer_transfer_syntax(ds, label)
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    spacing = pixel_spacing(ds)
    modality = str(ds.get("Modality") or "").strip().upper()
    stretch = spacing if modality in SQUARE_MODALITIES else None
    shown_rows, shown_cols = square_size((rows, cols), stretch) if stretch else (rows, cols)
    if shown_rows * shown_cols > settings.max_image_pixels:
        stretched = "" if (shown_rows, shown_cols) == (rows, cols) else " once made square"
        raise ImageTooLargeError(
            f"{label} has {shown_cols}x{shown_rows} = {shown_rows * shown_cols:,} pixels per "
            f"frame{stretched}, over the {settings.max_image_pixels:,}-pixel cap.",
            input=label,
        )
    num_frames = frame_count(ds)
    index = num_frames // 2 if frame is None else int(frame)
    if not 0 <= index < num_frames:
        raise ImageLoadError(
            f"Frame {index} is out of range for {label}, which has {num_frames} frame(s).",
            input=label,
            fix=f"Choose a frame between 0 and {num_frames - 1}.",
        )
    arr = decode_frame(ds, label, index if num_frames > 1 else None)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    bits = int(ds.get("BitsStored") or 0) or None
    raw = None
    used: WindowInfo | None = None
    if arr.ndim == 3 and photometric == "PALETTE COLOR":
        pixels = arr  # already expanded (defensive: some decoders do)
    elif photometric == "PALETTE COLOR":
        pixels = palette_rgb(ds, arr)
    elif arr.ndim == 3:
        pixels = scale_to_uint8(arr, bits)
    else:
        raw, gray, used = _grayscale(ds, arr, spec)
        if photometric == "MONOCHROME1":
            gray = 255 - gray
        pixels = gray  # kept single-channel; MedImage expands it to RGB when read
    if stretch is not None:
        # non-square pixels (PixelSpacing rows != columns) are stretched to square ones,
        # the stored values and the shown ones alike (see .square_pixels)
        if raw is not None:
            raw, _ = square_pixels(raw, stretch)
        pixels, shown = square_pixels(pixels, stretch)
        if shown != stretch:
            spacing = (round(shown[0], 6), round(shown[1], 6))
    meta = ImageMeta(
        source=label,
        format=fmt,
        modality=str(ds.get("Modality") or "") or None,
        original_size=(int(pixels.shape[1]), int(pixels.shape[0])),
        pixel_spacing=spacing,
        window=used,
        frame=index if num_frames > 1 else None,
        num_frames=num_frames if num_frames > 1 else None,
        bits_stored=bits,
        photometric=photometric,
        dicom=deidentified_attributes(ds, include_phi=settings.include_phi),
    )
    return MedImage(pixels=np.ascontiguousarray(pixels), meta=meta, raw=raw)


#: Modalities whose images are shown at their physical aspect, so non-square pixels are
#: stretched: cross-sectional and projection imaging. Others (ophthalmic OCT, ultrasound,
#: photographs, slides) are shown as stored, as their own viewers show them.
SQUARE_MODALITIES = frozenset({"CT", "MR", "PT", "NM", "CR", "DX", "MG", "RF", "XA"})


# Image Pixel module attributes every decoder needs (PS3.3 C.7.6.3), by keyword and name.
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
