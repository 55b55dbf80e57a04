"""Checking and decoding the pixel data of a DICOM dataset for :mod:`.dicom`: the pixel
module's required attributes, the frame count, a missing transfer syntax inferred, one
frame decoded (with the plug-in to install when a codec is missing), and palette colour.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ImageLoadError
from .windowing import scale_to_uint8

__all__ = [
    "PIXEL_KEYWORDS",
    "check_pixel_module",
    "decode_frame",
    "frame_count",
    "infer_transfer_syntax",
    "palette_rgb",
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


PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


_REQUIRED = {
    "Rows": "Rows (0028,0010)",
    "Columns": "Columns (0028,0011)",
    "BitsAllocated": "Bits Allocated (0028,0100)",
    "PhotometricInterpretation": "Photometric Interpretation (0028,0004)",
}


def check_pixel_module(ds: Any, label: str) -> None:
    """Refuse, by name, a file whose pixel description is missing or malformed."""
    missing = [name for key, name in _REQUIRED.items() if ds.get(key) in (None, "")]
    if missing:
        raise ImageLoadError(
            f"{label} has pixel data but lacks {', '.join(missing)}, so its pixels cannot be "
            "laid out (the header is incomplete).",
            input=label,
            fix="Re-export the image from the PACS or viewer; the file was written without "
            "its Image Pixel attributes.",
        )
    if "NumberOfFrames" in ds and _frames_value(ds) is None:
        frames = _frames_from_length(ds)
        if frames is None:
            raise ImageLoadError(
                f"{label} has an invalid Number of Frames (0028,0008): it is not a whole "
                "number, and the pixel data's length does not tell the count either.",
                input=label,
                fix="Re-export the image; the file's header is damaged.",
            )
        ds.NumberOfFrames = frames  # the length says it unambiguously


def _frames_value(ds: Any) -> int | None:
    raw = ds["NumberOfFrames"].value
    try:
        return max(1, int(str(raw).strip() or 1))
    except (TypeError, ValueError):
        return None


def _frames_from_length(ds: Any) -> int | None:
    """Frames implied by native (uncompressed) pixel data's length, or ``None``."""
    elem = ds.get("PixelData") if "PixelData" in ds else None
    if elem is None or getattr(ds["PixelData"], "is_undefined_length", False):
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.BitsAllocated)
    frame_bytes = rows * cols * spp * bits // 8
    length = len(elem)
    if frame_bytes <= 0 or length < frame_bytes:
        return None
    # odd-length data is padded by one byte
    frames, rest = divmod(length, frame_bytes)
    return frames if rest in (0, 1) and frames >= 1 else None


def infer_transfer_syntax(ds: Any, label: str) -> None:
    """Set a missing Transfer Syntax UID from how the dataset was actually encoded.

    pydicom works out implicit/explicit VR and byte order while parsing; for native
    (uncompressed) pixel data that is all a decoder needs. Compressed pixel data does not
    say its codec, so such a file is refused by name.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    encapsulated = any(
        getattr(ds[k], "is_undefined_length", False) for k in PIXEL_KEYWORDS if k in ds
    )
    if encapsulated or little is None:
        raise ImageLoadError(
            f"{label} has no Transfer Syntax UID (0002,0010) and its pixel data is "
            "compressed, so the codec cannot be known.",
            input=label,
            fix="Re-export the file with its file meta information (any DICOM tool, e.g. "
            "dcmconv or gdcmconv, writes it).",
        )
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def frame_count(ds: Any) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def decode_frame(ds: Any, label: str, index: int | None) -> np.ndarray:
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


def palette_rgb(ds: Any, arr: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(arr, _native_order_luts(ds))
    try:
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    except (AttributeError, IndexError, TypeError, ValueError):
        bits = 16 if rgb.dtype != np.uint8 else 8
    return scale_to_uint8(rgb, bits)


_LUT_DATA = ("Red", "Green", "Blue", "Alpha")


def _native_order_luts(ds: Any) -> Any:
    """The palette attributes with 16-bit LUT data in the machine's byte order.

    pydicom keeps OW values as the file's raw bytes and reads (non-segmented) palette
    data in the machine's order, so a big-endian file's palette came out byte-swapped
    and the image nearly black. For such a file a small copy with swapped LUT data is
    returned; other files are returned unchanged.
    """
    import sys

    from pydicom.dataset import Dataset

    little = getattr(ds, "original_encoding", (None, None))[1]
    file_little = little if little is not None else True
    if file_little == (sys.byteorder == "little") or "RedPaletteColorLookupTableData" not in ds:
        return ds
    out = Dataset()
    for colour in _LUT_DATA:
        desc = f"{colour}PaletteColorLookupTableDescriptor"
        data = f"{colour}PaletteColorLookupTableData"
        if desc in ds:
            setattr(out, desc, ds[desc].value)
        if data in ds:
            raw = bytes(ds[data].value)
            entries = ds.RedPaletteColorLookupTableDescriptor[0] or 65536
            if len(raw) == 2 * entries:  # 16-bit entries: swap each pair
                raw = np.frombuffer(raw, dtype=">u2").astype("<u2").tobytes()
            setattr(out, data, raw)
    if "PixelPresentation" in ds:
        out.PixelPresentation = ds.PixelPresentation
    return out
