"""Opened image files, as :func:`.fileaccess.open_path` returns them: the descriptor is
the only way back to the file (read with ``pread``), so nothing can be swapped in after
the checks.
"""

from __future__ import annotations

import errno
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FdReader", "FileHandle"]


class FdReader(io.RawIOBase):
    """A read-only, seekable file object over a descriptor, reading with ``pread``.

    It has no ``name``, so libraries that re-open files by name (pydicom's deferred
    reads) keep reading from this object instead of the path. Several readers can share
    one descriptor: each keeps its own position.
    """

    def __init__(self, handle: FileHandle):
        super().__init__()
        self._handle = handle
        self._fd = handle.fd
        self._size = handle.size
        self._pos = 0

    def _check(self) -> None:
        # The descriptor number may be reused once the handle is closed: never read it.
        if self.closed or self._handle.closed:
            raise ValueError("I/O operation on a closed image file")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer) -> int:
        self._check()
        view = memoryview(buffer).cast("B")
        data = os.pread(self._fd, len(view), self._pos)
        n = len(data)
        view[:n] = data
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        self._check()
        if size is None or size < 0:
            size = max(0, self._size - self._pos)
        data = os.pread(self._fd, size, self._pos) if size else b""
        self._pos += len(data)
        return data

    def close(self) -> None:
        """Closes this reader only; the descriptor belongs to its :class:`FileHandle`."""
        super().close()


@dataclass
class FileHandle:
    """An opened regular file.

    Attributes:
        fd: The open descriptor (closed by :meth:`close`).
        size: Its size in bytes, from ``fstat``.
        path: The file's path inside its folder, for names, extensions and siblings.
        label: The path as the caller gave it, for messages.
    """

    fd: int
    size: int
    path: Path
    label: str
    _closed: bool = field(default=False, repr=False)

    def reader(self) -> FdReader:
        """A fresh file object at offset 0 over the descriptor."""
        return FdReader(self)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def read(self, n: int = -1, offset: int = 0) -> bytes:
        """Up to ``n`` bytes from ``offset`` (all remaining bytes for ``n < 0``)."""
        if self._closed:
            raise ValueError("I/O operation on a closed image file")
        if n < 0:
            n = max(0, self.size - offset)
        chunks: list[bytes] = []
        while n > 0:
            chunk = os.pread(self.fd, min(n, 1 << 24), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def __enter__(self) -> FileHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
