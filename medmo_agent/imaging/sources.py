"""Turn an image argument (path, bytes, ``data:`` URI) into bytes or a path, and sniff its format.

Format detection looks at content first (the ``DICM`` marker at offset 128, a NIfTI header,
the magic numbers Pillow knows) and falls back to the file extension, so a DICOM file named
``scan.png`` or a PNG without an extension is still read by the right reader.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import AccessDeniedError, ImageLoadError, ImageTooLargeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Source",
    "confine_path",
    "detect_format",
    "is_data_uri",
    "is_inside",
    "open_source",
]

#: Extensions :func:`medmo_agent.imaging.load_image` reads, by format.
IMAGE_EXTENSIONS: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".webp": "webp",
    ".gif": "gif",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".ima": "dicom",
    ".nii": "nifti",
    ".nii.gz": "nifti",
}

_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I
)

_MAGIC: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"II+\x00", 0, "tiff"),  # BigTIFF
    (b"MM\x00+", 0, "tiff"),
    (b"BM", 0, "bmp"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
]

# DICOM written without the 128-byte preamble usually starts with a group 0x0002 or 0x0008
# element in little-endian order; pydicom reads such files with force=True.
_BARE_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00")


@dataclass
class Source:
    """An image argument made concrete.

    Attributes:
        label: What to call the source in metadata and error messages: the path as given,
            or ``"inline"`` for bytes and data URIs (never the data itself).
        path: The file or folder on disk, or ``None`` for in-memory data.
        data: The bytes, for in-memory sources (files are read by their reader).
        head: The first bytes (up to 1 KiB; decompressed for gzip), for sniffing.
    """

    label: str
    path: Path | None
    data: bytes | None
    head: bytes

    @property
    def name(self) -> str:
        """The file name or label, for extension checks."""
        return self.path.name.lower() if self.path is not None else ""

    def read_bytes(self) -> bytes:
        """All bytes of a file source (already size-checked)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise ImageLoadError(
                f"Cannot read {self.label}: {exc.strerror or exc}.",
                input=self.label,
                fix="Check that the file exists and is readable.",
            ) from exc


def is_data_uri(value: object) -> bool:
    """True for a ``data:...;base64,`` string."""
    return isinstance(value, str) and value[:5].lower() == "data:"


def open_source(source: str | os.PathLike[str] | bytes, settings: Settings) -> Source:
    """Make an image argument concrete, enforcing the byte cap before reading anything.

    Args:
        source: A path (str or PathLike), raw bytes, or a ``data:image/...;base64,`` URI.
        settings: Supplies ``max_image_bytes``.

    Returns:
        A :class:`Source` with its first bytes read for format detection.

    Raises:
        ImageLoadError: Missing file, unreadable file, malformed data URI.
        ImageTooLargeError: Over ``settings.max_image_bytes``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _check_bytes(len(data), "inline", settings)
        return Source("inline", None, data, _head(data))
    if is_data_uri(source):
        data = _decode_data_uri(str(source), settings)
        return Source("inline", None, data, _head(data))
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(
            f"Cannot load an image from a {type(source).__name__}.",
            input=repr(source)[:80],
            fix="Pass a file or folder path, bytes, or a data:image/...;base64, URI.",
        )
    label = os.fspath(source)
    path = Path(label).expanduser()
    if path.is_dir():
        return Source(label, path, None, b"")
    if not path.exists():
        raise ImageLoadError(
            f"No such file: {label}.",
            input=label,
            fix="Check the path (relative paths are relative to the working directory).",
        )
    try:
        size = path.stat().st_size
        _check_bytes(size, label, settings)
        with path.open("rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise ImageLoadError(
            f"Cannot read {label}: {exc.strerror or exc}.",
            input=label,
            fix="Check that the file exists and is readable.",
        ) from exc
    if size == 0:
        raise ImageLoadError(
            f"{label} is empty (0 bytes).", input=label, fix="Use a non-empty image file."
        )
    return Source(label, path, None, _head(head))


def detect_format(src: Source) -> str | None:
    """The format of a source: content first, then extension; ``None`` when unknown.

    Returns one of ``dicom-series`` (a folder), ``dicom``, ``nifti``, ``png``, ``jpeg``,
    ``tiff``, ``bmp``, ``webp``, ``gif``.
    """
    if src.path is not None and src.path.is_dir():
        return "dicom-series"
    head = src.head
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if _is_nifti(head):
        return "nifti"
    for magic, offset, fmt in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    by_ext = _format_from_name(src.name)
    if by_ext is not None:
        return by_ext
    if head[:2] in _BARE_DICOM_GROUPS and len(head) >= 8:
        return "dicom"
    return None


def _format_from_name(name: str) -> str | None:
    for ext in sorted(IMAGE_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return IMAGE_EXTENSIONS[ext]
    return None


def _is_nifti(head: bytes) -> bool:
    if len(head) < 348:
        return False
    for order in ("<", ">"):
        (sizeof_hdr,) = struct.unpack(order + "i", head[:4])
        if sizeof_hdr == 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
            return True
        if sizeof_hdr == 540 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
            return True
    return False


def _head(data: bytes) -> bytes:
    """First bytes for sniffing; gzip streams are peeked into (a .nii.gz is a NIfTI)."""
    if data[:2] == b"\x1f\x8b":
        try:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], 1024)
        except zlib.error:
            return data[:1024]
    return data[:1024]


def _check_bytes(size: int, label: str, settings: Settings) -> None:
    if size > settings.max_image_bytes:
        raise ImageTooLargeError(
            f"{label} is {size:,} bytes, over the {settings.max_image_bytes:,}-byte cap.",
            input=label,
        )


def _decode_data_uri(uri: str, settings: Settings) -> bytes:
    match = _DATA_URI.match(uri)
    if not match or not match.group("b64"):
        raise ImageLoadError(
            "Malformed data URI: expected data:image/<type>;base64,<data>.",
            input=uri[:40] + "...",
            fix="Encode the image as data:image/png;base64,<base64 bytes>.",
        )
    payload = uri[match.end() :]
    # base64 inflates by 4/3: refuse before decoding anything huge.
    _check_bytes(len(payload) * 3 // 4, "inline data URI", settings)
    try:
        data = base64.b64decode(payload.strip(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageLoadError(
            "The data URI's base64 payload does not decode.",
            input=uri[:40] + "...",
            fix="Check the base64 encoding of the image.",
        ) from exc
    if not data:
        raise ImageLoadError(
            "The data URI holds no data.", input=uri[:40] + "...", fix="Send a non-empty image."
        )
    return data


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies in ``root`` once both are resolved (``..`` and symlinks)."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    try:
        return os.path.commonpath([real, real_root]) == real_root
    except ValueError:  # different drives on Windows
        return False


def confine_path(
    path: str | os.PathLike[str],
    allowed_dirs: tuple[Path, ...],
    *,
    label: str | None = None,
) -> None:
    """Raise :class:`AccessDeniedError` unless ``path`` resolves inside an allowed folder.

    Args:
        path: The path to check; ``..`` and symlinks are resolved first.
        allowed_dirs: The allowed folders (none: every path is refused).
        label: How to name the path in the message (default: the path itself).
    """
    if any(is_inside(path, root) for root in allowed_dirs):
        return
    name = label or os.fspath(path)
    listed = ", ".join(str(d) for d in allowed_dirs) or "none"
    raise AccessDeniedError(
        f"Access denied: {name} resolves to {os.path.realpath(path)}, outside the allowed "
        f"folders ({listed}).",
        input=name,
    )
