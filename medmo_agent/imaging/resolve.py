"""Turn an image argument into a :class:`MedImage`, enforcing allowed folders.

Surfaces that take paths from untrusted callers (the MCP server) build an
``ImageResolver(settings, confine=True)``: every path must then lie, after following
symlinks, inside one of the allowed folders. In-memory images are registered under
``medmo://images/<id>`` handles so later steps pass a short reference, not pixels.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import InputError, NotFoundError
from ..lru import LRUStore
from ..types import MedImage
from .fileaccess import check_path_length, open_path
from .loader import load_image
from .sources import IMAGE_EXTENSIONS, is_data_uri, is_inside, open_source

__all__ = ["HANDLE_PREFIX", "ImageResolver", "held_nbytes"]

HANDLE_PREFIX = "medmo://images/"


class ImageResolver:
    """Resolves paths, data URIs, handles and loaded images to images.

    Args:
        settings: Caps and privacy switch passed to the loaders; its ``allowed_dirs`` are
            the default allowed folders.
        allowed_dirs: Folders paths must lie in (when ``confine``) and that
            :meth:`list_images` scans; defaults to ``settings.allowed_dirs``.
        confine: Refuse any path outside ``allowed_dirs`` (``..`` and symlinks are
            resolved by the loader, never by the kernel; each file is opened once, see
            :mod:`.fileaccess`). With no allowed folder, every path is refused.
        max_registered: How many registered in-memory images to keep (least recently
            used ones are dropped first).
        max_held_bytes: Their pixel bytes in all (default ``settings.max_held_image_bytes``);
            past it the least recently used are dropped too, so a few huge uploads cannot
            pin the server's memory.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        allowed_dirs: Sequence[str | os.PathLike[str]] | None = None,
        confine: bool = False,
        max_registered: int = 256,
        max_held_bytes: int | None = None,
    ):
        self.settings = settings if settings is not None else Settings.from_env()
        dirs = self.settings.allowed_dirs if allowed_dirs is None else allowed_dirs
        self.allowed_dirs: tuple[Path, ...] = tuple(Path(d).expanduser() for d in dirs)
        self.confine = confine
        self._max = max_registered
        self.max_held_bytes = (
            self.settings.max_held_image_bytes if max_held_bytes is None else max_held_bytes
        )
        # Sizes are measured afresh on each registration: a grey image's RGB expansion
        # may have been cached since it was registered.
        self._images: LRUStore[str, MedImage] = LRUStore(
            max_registered, max_size=self.max_held_bytes, size=held_nbytes
        )

    # -- registry -----------------------------------------------------------------------

    def register(self, image: MedImage) -> str:
        """Keep an image in memory and return its ``medmo://images/<id>`` handle.

        The image's ``handle`` is set to that handle. Thread-safe; the oldest unused
        images are dropped past ``max_registered``.
        """
        handle = HANDLE_PREFIX + uuid.uuid4().hex[:16]
        image.handle = handle
        # Over the budget on its own, it is not held, and nothing else is dropped for it.
        self._images.put(handle, image)
        return handle

    @property
    def held_bytes(self) -> int:
        """Bytes of pixel data the registered images hold now."""
        return self._images.total_size()

    def get(self, handle: str) -> MedImage:
        """The registered image for a handle.

        Raises:
            NotFoundError: Nobody registered that handle, or it was dropped.
        """
        image = self._images.get(handle)
        if image is None:
            raise NotFoundError(
                f"No image is registered as {handle}.",
                input=handle,
                fix="Load the image again by path or send it again (handles last only while "
                "this process runs and only for the most recent images, up to "
                f"{self._max} images and {self.max_held_bytes:,} bytes of pixels: "
                "MEDMO_MAX_HELD_IMAGE_BYTES).",
            )
        return image

    # -- resolving ----------------------------------------------------------------------

    def resolve(
        self,
        image: str | os.PathLike[str] | MedImage,
        *,
        window: Any = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
    ) -> MedImage:
        """Resolve an image argument.

        Args:
            image: A path (file or DICOM series folder), a ``data:image/...;base64,`` URI,
                a ``medmo://images/<id>`` handle, or a loaded :class:`MedImage`.
            window: Intensity window (preset, ``"WIDTH/LEVEL"``, ``"auto"``, ``"file"``).
            slice: Slice of a volume or series.
            frame: Frame of a multi-frame image.
            plane: Plane of a NIfTI volume.

        Returns:
            The image, with ``handle`` set to a string a later step can pass back.

        Raises:
            AccessDeniedError: A path outside the allowed folders (when confined).
            NotFoundError: An unknown ``medmo://`` handle.
            ImageLoadError: The image cannot be read.
        """
        opts = {"window": window, "slice": slice, "frame": frame, "plane": plane}
        if isinstance(image, MedImage):
            return self._rerender(image, opts)
        if isinstance(image, str) and image.startswith(HANDLE_PREFIX):
            return self._rerender(self.get(image), opts)
        if is_data_uri(image):
            loaded = load_image(str(image), settings=self.settings, **opts)
            self.register(loaded)
            return loaded
        if not isinstance(image, (str, os.PathLike)):
            raise InputError(
                f"Cannot use a {type(image).__name__} as an image.",
                fix="Pass a file path, a data:image/...;base64, URI, or a medmo://images/ handle.",
            )
        confined = self.allowed_dirs if self.confine else None
        given = image if self.confine else self._unconfined_path(image)
        # opened once, here: the same descriptor is checked and read (see fileaccess)
        src = open_source(given, self.settings, allowed_dirs=confined)
        path = src.path
        assert path is not None  # a path argument always opens a file or folder
        loaded = load_image(src, settings=self.settings, **opts)
        loaded.handle = os.fspath(path)
        return loaded

    def _rerender(self, image: MedImage, opts: dict[str, Any]) -> MedImage:
        if all(v is None for v in opts.values()):
            if image.handle is None:
                self.register(image)
            return image
        render = getattr(image.volume, "render", None)
        if _keeps_frame(image) and opts.get("frame") is None:
            # another slice, plane or window of a 4D volume: at the same time point
            opts = {**opts, "frame": image.meta.frame}
        if callable(render):
            out = render(**opts)
        elif image.handle and not image.handle.startswith(HANDLE_PREFIX):
            return self.resolve(image.handle, **opts)
        else:
            raise InputError(
                "This image cannot be re-windowed or re-sliced: it was not loaded from a "
                "clinical format.",
                input=image.handle or image.meta.source,
                fix="Omit window/slice/frame/plane, or load the original file by path.",
            )
        self.register(out)
        return out

    def check_path(self, path: str | os.PathLike[str]) -> Path:
        """The path ``path`` names, after checking it against the allowed folders.

        Relative paths are looked up in the allowed folders first (first one holding it);
        unconfined, then in the working directory. When confined, the path is opened
        through the same checks as for loading (and closed again).

        Raises:
            AccessDeniedError: Confined and the path leads outside every allowed folder.
            ImageLoadError: Confined and there is no such file or folder.
        """
        if not self.confine:
            return self._unconfined_path(path)
        handle = open_path(path, self.settings, allowed_dirs=self.allowed_dirs)
        handle.close()
        return handle.path

    def _unconfined_path(self, path: str | os.PathLike[str]) -> Path:
        check_path_length(path, self.settings)
        given = Path(os.fspath(path)).expanduser()
        if given.is_absolute():
            return given
        for root in self.allowed_dirs:
            joined = root / given
            if joined.exists():
                return joined.absolute()
        return given.absolute()

    # -- listing ------------------------------------------------------------------------

    def list_images(self, limit: int = 1000) -> Iterator[Path]:
        """Image files under the allowed folders, for browsing (e.g. MCP resources).

        Hidden files and folders are skipped, symlinks leading outside the allowed
        folders are skipped, and at most ``limit`` paths are yielded.
        """
        count = 0
        for root in self.allowed_dirs:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or not _has_image_ext(name):
                        continue
                    path = Path(dirpath) / name
                    inside = any(is_inside(path, root) for root in self.allowed_dirs)
                    if not inside or not path.is_file():
                        continue
                    yield path
                    count += 1
                    if count >= limit:
                        return


def held_nbytes(image: MedImage) -> int:
    """Bytes of the arrays an image keeps alive: renderings, raw values, and what its
    re-slicing handle holds (decoded slices, file bytes) one level down."""
    total = sum(_nbytes(v) for v in image.__dict__.values() if v is not image.volume)
    if image.volume is not None:
        total += sum(_nbytes(v) for v in getattr(image.volume, "__dict__", {}).values())
    return total


def _nbytes(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    size = getattr(value, "nbytes", None)
    return int(size) if isinstance(size, int) else 0


def _has_image_ext(name: str) -> bool:
    lower = name.lower()
    return any(lower.endswith(ext) for ext in IMAGE_EXTENSIONS)


def _keeps_frame(image: MedImage) -> bool:
    """Whether re-slicing ``image`` keeps its frame: a 4D volume's frame is its time point
    (the image has a slice too); a multi-frame file's frame is what re-slicing moves."""
    return image.meta.slice is not None and image.meta.frame is not None
