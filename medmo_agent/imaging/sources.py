"""Turn an image argument (path, bytes, ``data:`` URI) into bytes or a path, and sniff its format.

Format detection looks at content first (the ``DICM`` marker at offset 128, a NIfTI header,
the magic numbers Pillow knows) and falls back to the file extension, so a DICOM file named
``scan.png`` or a PNG without an extension is still read by the right reader.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import ImageLoadError, ImageTooLargeError
from .fileaccess import DirHandle, display_path, open_path
from .filehandles import FileHandle

__all__ = [
    "IMAGE_EXTENSIONS",
    "Source",
    "detect_format",
    "is_data_uri",
    "is_inside",
    "open_source",
    "sniff_head",
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
    ".hdr": "nifti",  # Analyze 7.5 / NIfTI pair header; its voxels are in the .img
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
        data: The bytes, for in-memory sources (files are read through ``handle``).
        head: The first bytes (up to 1 KiB; decompressed for gzip), for sniffing.
        handle: The opened file or folder (see :mod:`.fileaccess`); readers read from it,
            never from ``path`` again.
        allowed_dirs: The allowed folders the source was opened under (``None``:
            unconfined), for files a reader opens next to it (a series' slices, the
            ``.img`` of an Analyze pair).
    """

    label: str
    path: Path | None
    data: bytes | None
    head: bytes
    handle: FileHandle | DirHandle | None = None
    allowed_dirs: tuple[Path, ...] | None = None

    @property
    def name(self) -> str:
        """The file name or label, for extension checks."""
        return self.path.name.lower() if self.path is not None else ""

    @property
    def is_dir(self) -> bool:
        """True for a folder (a DICOM series)."""
        return isinstance(self.handle, DirHandle)

    @property
    def size(self) -> int:
        """The size in bytes (0 for a folder)."""
        if self.data is not None:
            return len(self.data)
        return self.handle.size if isinstance(self.handle, FileHandle) else 0

    def read_bytes(self) -> bytes:
        """All bytes of the source (already size-checked), read from the opened file."""
        if self.data is not None:
            return self.data
        assert isinstance(self.handle, FileHandle)
        try:
            return self.handle.read()
        except OSError as exc:
            raise ImageLoadError(
                f"Cannot read {self.label}: {exc.strerror or exc}.",
                input=self.label,
                fix="Check that the file is readable.",
            ) from exc

    def stream(self) -> io.RawIOBase | io.BytesIO:
        """A seekable file object over the content, at offset 0."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert isinstance(self.handle, FileHandle)
        return self.handle.reader()

    def detach(self) -> FileHandle | DirHandle | None:
        """Hand the opened file over to a reader that keeps it (it closes it)."""
        handle, self.handle = self.handle, None
        return handle

    def close(self) -> None:
        """Close the opened file or folder, if any (idempotent)."""
        if self.handle is not None:
            self.handle.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_data_uri(value: object) -> bool:
    """True for a ``data:...;base64,`` string."""
    return isinstance(value, str) and value[:5].lower() == "data:"


def open_source(
    source: str | os.PathLike[str] | bytes,
    settings: Settings,
    *,
    allowed_dirs: tuple[Path, ...] | None = None,
) -> Source:
    """Make an image argument concrete, enforcing the byte cap before reading anything.

    Files are opened once, through :func:`.fileaccess.open_path` (regular files only, no
    symlink followed outside the allowed folders); the caller closes the source.

    Args:
        source: A path (str or PathLike), raw bytes, or a ``data:image/...;base64,`` URI.
        settings: Supplies ``max_image_bytes`` and ``max_path_chars``.
        allowed_dirs: Folders a path must lie in; ``None`` for no confinement.

    Returns:
        A :class:`Source` with its first bytes read for format detection.

    Raises:
        ImageLoadError: Missing file, unreadable file, not a regular file, malformed URI.
        ImageTooLargeError: Over ``settings.max_image_bytes``.
        AccessDeniedError: ``allowed_dirs`` given and the path leads outside them.
        InputError: A path over ``settings.max_path_chars``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _check_bytes(len(data), "inline", settings)
        return Source("inline", None, data, sniff_head(data))
    if is_data_uri(source):
        data = _decode_data_uri(str(source), settings)
        return Source("inline", None, data, sniff_head(data))
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(
            f"Cannot load an image from a {type(source).__name__}.",
            input=repr(source)[:80],
            fix="Pass a file or folder path, bytes, or a data:image/...;base64, URI.",
        )
    label = display_path(source)
    handle = open_path(source, settings, allowed_dirs=allowed_dirs)
    src = Source(label, handle.path, None, b"", handle, allowed_dirs)
    if isinstance(handle, DirHandle):
        return src
    try:
        _check_bytes(handle.size, label, settings)
        if handle.size == 0:
            raise ImageLoadError(
                f"{label} is empty (0 bytes).", input=label, fix="Use a non-empty image file."
            )
        src.head = sniff_head(handle.read(1024))
    except OSError as exc:
        src.close()
        raise ImageLoadError(
            f"Cannot read {label}: {exc.strerror or exc}.",
            input=label,
            fix="Check that the file is readable.",
        ) from exc
    except BaseException:
        src.close()
        raise
    return src


def detect_format(src: Source) -> str | None:
    """The format of a source: content first, then extension; ``None`` when unknown.

    Returns one of ``dicom-series`` (a folder), ``dicom``, ``nifti`` (NIfTI-1/2, also as
    a ``.hdr``/``.img`` pair, and Analyze 7.5), ``png``, ``jpeg``, ``tiff``, ``bmp``,
    ``webp``, ``gif``, or the unsupported containers ``netcdf`` (MINC1) and ``hdf5``
    (MINC2), recognised only to say so.
    """
    if src.is_dir:
        return "dicom-series"
    head = src.head
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    pair_name = src.name.endswith((".hdr", ".img")) or src.path is None
    if _is_nifti(head) or (pair_name and _is_analyze(head, src.name)):
        return "nifti"
    if head[:4] in (b"CDF\x01", b"CDF\x02"):
        return "netcdf"  # MINC1 is NetCDF
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"  # MINC2 is HDF5
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


def _is_analyze(head: bytes, name: str) -> bool:
    """An Analyze 7.5 header (348 bytes, no NIfTI magic), or the ``.img`` of a pair."""
    if name.endswith(".img"):
        return True  # raw voxels: the reader looks for the .hdr next to it
    if len(head) < 348:
        return False
    return any(struct.unpack(order + "i", head[:4])[0] == 348 for order in "<>")


def sniff_head(data: bytes) -> bytes:
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
