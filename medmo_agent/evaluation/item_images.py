"""An item's image, kept encoded until asked (read as every image file is read), and the
hash of a prompt with its images that tells a resumed run which answers still hold."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ImageLoadError, MedmoError

__all__ = ["ImageSource", "prompt_hash"]


@dataclass(frozen=True)
class ImageSource:
    """An item's image, still encoded: its bytes (parquet rows) or its file (image folders).

    Items keep images encoded and decode them when asked, so a benchmark of many
    thousands of images does not sit decoded in memory.
    """

    data: bytes | None = None
    path: Path | None = None

    def read_bytes(self, settings: Any = None) -> bytes:
        """The encoded image (PNG, JPEG, ...). A file is opened as every image file is
        (a regular file, opened once, within ``max_image_bytes``), so a FIFO or a huge
        file in a data folder is refused by name instead of blocking or filling memory.

        Args:
            settings: Supplies ``max_image_bytes`` (default: from the environment).
        """
        if self.data is not None:
            return self.data
        assert self.path is not None
        from ..config import Settings
        from ..imaging.sources import open_source

        with open_source(self.path, settings or Settings.from_env()) as src:
            if src.is_dir:
                raise ImageLoadError(
                    f"{src.label} is a folder, not an image file.",
                    input=src.label,
                    fix="Name image files in the benchmark's rows, not folders.",
                )
            return src.read_bytes()


def prompt_hash(text: str, images: Sequence[ImageSource], settings: Any = None) -> str:
    """SHA-256 of a prompt text and its images' encoded bytes, in order.

    An image that cannot be read (over ``max_image_bytes``, not a regular file) counts
    as that failure, so planning a run goes on and the item itself fails with the reason.
    """
    digest = hashlib.sha256(text.encode("utf-8"))
    for img in images:
        try:
            data = img.read_bytes(settings)
        except MedmoError as exc:
            data = f"unreadable: {type(exc).__name__}".encode()
        digest.update(f"\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
