"""Open image files safely: regular files only, each opened once, never through a symlink.

Paths from untrusted callers (the MCP server) are confined to allowed folders. The check
and the open are one operation, so nothing can be swapped in between:

1. the path is normalised lexically (``..`` removed without touching the file system, so
   nothing outside the allowed folders is ever looked at, and the cost is linear in the
   path's length) and matched against the allowed folders;
2. it is then opened one component at a time, each relative to the descriptor of the
   folder above it, with ``O_NOFOLLOW``. A symbolic link met on the way is read (never
   followed by the kernel) and its target checked again from step 1, so links that stay
   inside the allowed folders work and links that leave them are refused;
3. the last component must be a regular file (or a folder, for a DICOM series): FIFOs,
   devices and sockets are refused from ``lstat`` before any open, and the opened
   descriptor is checked again with ``fstat``. Files are opened with ``O_NONBLOCK`` so a
   file swapped for a FIFO cannot block the thread.

Readers then read from the returned descriptor (``pread``), never from the path again.
Without allowed folders (a local user's own paths) symlinks are followed as usual, but
the regular-file check, the single open and the byte cap still apply.

Error messages name the path only as the caller gave it: never its resolved form, the
working directory, or whether something exists outside the allowed folders.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from ..errors import AccessDeniedError, ImageLoadError, InputError
from .filehandles import FileHandle

__all__ = [
    "DirHandle",
    "check_path_length",
    "display_path",
    "open_path",
]

# Symbolic links resolved (by us) along one path before giving up, as the kernel's ELOOP.
_MAX_LINKS = 40
# How much of a very long path an error message repeats.
_DISPLAY_CHARS = 200

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_FILE_FLAGS = os.O_RDONLY | _O_CLOEXEC | _O_NONBLOCK | _O_NOCTTY | _O_BINARY
_DIR_FLAGS = os.O_RDONLY | _O_CLOEXEC | _O_DIRECTORY
# Component-wise opening needs openat(2) with O_NOFOLLOW (every POSIX system Python
# supports); elsewhere (Windows) confinement falls back to a resolve-then-open check.
_WALK = bool(_O_NOFOLLOW) and os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as given, cut short for messages (a path can be hundreds of KB long)."""
    text = os.fspath(path)
    if len(text) > _DISPLAY_CHARS:
        return text[: _DISPLAY_CHARS - 3] + "..."
    return text


def check_path_length(path: str | os.PathLike[str], settings: Settings) -> None:
    """Refuse a path longer than ``settings.max_path_chars`` before looking at it.

    Raises:
        InputError: The path is over the limit; the message names the setting.
    """
    n = len(os.fspath(path))
    if n > settings.max_path_chars:
        raise InputError(
            f"The image path is {n:,} characters long, over the {settings.max_path_chars:,}"
            "-character limit (max_path_chars).",
            input=display_path(path),
            fix="Use a shorter path, or raise the limit with MEDMO_MAX_PATH_CHARS.",
        )


@dataclass
class DirHandle:
    """An opened folder (a DICOM series); its files are opened through :meth:`open_child`.

    Attributes:
        fd: The open descriptor of the folder.
        path: The folder's path.
        label: The folder as the caller gave it.
        allowed: The allowed folders it was opened under, or ``None`` (unconfined).
    """

    fd: int
    path: Path
    label: str
    allowed: tuple[Path, ...] | None
    settings: Settings
    _closed: bool = field(default=False, repr=False)

    def names(self) -> list[str]:
        """The folder's entries, sorted."""
        return sorted(os.listdir(self.fd if _WALK else self.path))

    def open_child(self, name: str) -> FileHandle | None:
        """Open one entry of the folder; ``None`` when it is not a regular file.

        A symbolic link is followed only through :func:`open_path`'s checks, so a link
        leaving the allowed folders raises :class:`AccessDeniedError`.
        """
        child = self.path / name
        label = os.path.join(self.label, name)
        try:
            if _WALK:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    return _open_regular(name, self.fd, child, label, follow=False)
                if not stat.S_ISLNK(st.st_mode):
                    return None
            opened = open_path(child, self.settings, allowed_dirs=self.allowed, label=label)
        except (FileNotFoundError, _NotRegular):
            return None
        except ImageLoadError:
            return None  # gone, or not a regular file, since the folder was listed
        if isinstance(opened, DirHandle):
            opened.close()
            return None
        return opened

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def __enter__(self) -> DirHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class _NotRegular(Exception):
    """The final component is a FIFO, device or socket (kind in ``args[0]``)."""


def open_path(
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    allowed_dirs: Sequence[str | os.PathLike[str]] | None = None,
    label: str | None = None,
) -> FileHandle | DirHandle:
    """Open a file or folder for reading, confined to ``allowed_dirs`` when given.

    Args:
        path: The path as the caller gave it. Relative paths are looked up in the allowed
            folders (the first one holding it) when confined, else in the working directory.
        settings: Supplies ``max_path_chars``.
        allowed_dirs: Folders the path must lie in; ``None`` for no confinement.
        label: How to name the path in messages (default: the path as given).

    Returns:
        A :class:`FileHandle` for a regular file, a :class:`DirHandle` for a folder.

    Raises:
        InputError: The path is longer than ``max_path_chars``.
        AccessDeniedError: Confined, and the path (or a link on it) leads outside the
            allowed folders. The message is the same whether or not it exists.
        ImageLoadError: No such file (inside the allowed folders), not a regular file,
            or unreadable.
    """
    check_path_length(path, settings)
    given = os.fspath(path)
    name = display_path(label if label is not None else given)
    if "\x00" in given:
        raise ImageLoadError(
            "The image path contains a NUL character.",
            input=name,
            fix="Pass the path of an image file.",
        )
    expanded = os.path.expanduser(given)
    if allowed_dirs is None:
        return _open_unconfined(expanded, name, settings)
    roots = _roots(allowed_dirs)
    if _WALK:
        return _open_confined(expanded, name, roots, settings, tuple(map(Path, allowed_dirs)))
    return _open_confined_fallback(expanded, name, roots, settings, allowed_dirs)


def _open_unconfined(path: str, name: str, settings: Settings) -> FileHandle | DirHandle:
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(path, _DIR_FLAGS)
            return DirHandle(fd, Path(path), name, None, settings)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular(_kind(st.st_mode))
        return _open_regular(path, None, Path(path), name, follow=True)
    except _NotRegular as exc:
        raise _not_regular(name, str(exc)) from None
    except FileNotFoundError:
        raise ImageLoadError(
            f"No such file: {name}.",
            input=name,
            fix="Check the path (relative paths are relative to the working directory).",
        ) from None
    except OSError as exc:
        raise _unreadable(name, exc) from exc


@dataclass(frozen=True)
class _Root:
    given: str  # normalised absolute form of the folder as configured
    real: str  # the folder with its own symlinks resolved (trusted: the operator chose it)


def _roots(allowed_dirs: Sequence[str | os.PathLike[str]]) -> list[_Root]:
    roots = []
    for d in allowed_dirs:
        given = posixpath.normpath(os.path.abspath(os.path.expanduser(os.fspath(d))))
        roots.append(_Root(given, os.path.realpath(given)))
    return roots


def _under(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` when it lies inside (lexically), else ``None``."""
    if path == root:
        return ""
    prefix = root if root.endswith("/") else root + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _denied(name: str, allowed: tuple[Path, ...]) -> AccessDeniedError:
    listed = ", ".join(str(d) for d in allowed) or "none"
    return AccessDeniedError(
        f"Access denied: {name} is outside the allowed folders ({listed}).", input=name
    )


def _open_confined(
    path: str,
    name: str,
    roots: list[_Root],
    settings: Settings,
    allowed: tuple[Path, ...],
) -> FileHandle | DirHandle:
    if os.path.isabs(path):
        candidates = [posixpath.normpath(path)]
    else:
        # looked up in each allowed folder in turn, never in the working directory
        candidates = [posixpath.normpath(posixpath.join(r.given, path)) for r in roots]
    missing = False
    for candidate in candidates:
        try:
            return _walk_from_roots(candidate, name, roots, settings, allowed)
        except FileNotFoundError:
            missing = True
        except _Escape:
            continue
    if missing:
        where = "in the allowed folders" if not os.path.isabs(path) else ""
        raise ImageLoadError(
            f"No such file{' ' + where if where else ''}: {name}.",
            input=name,
            fix="Check the path; relative paths are looked up in the allowed folders "
            f"({', '.join(str(d) for d in allowed)}).",
        )
    raise _denied(name, allowed)


class _Escape(Exception):
    """The path (after links) lies outside every allowed folder."""


def _walk_from_roots(
    path: str, name: str, roots: list[_Root], settings: Settings, allowed: tuple[Path, ...]
) -> FileHandle | DirHandle:
    """Open ``path`` (absolute, normalised) under the allowed folder that holds it."""
    for _ in range(_MAX_LINKS + 1):
        for root in roots:
            for base in (root.given, root.real):
                rel = _under(path, base)
                if rel is not None:
                    break
            else:
                continue
            result = _walk(root.real, base, rel, path, name, settings, allowed)
            if isinstance(result, str):  # a link: start again from its target
                path = result
                break
            return result
        else:
            raise _Escape()
    raise ImageLoadError(
        f"Too many symbolic links on the way to {name}.",
        input=name,
        fix="Pass the path of the file itself.",
    )


def _walk(
    real_root: str,
    base: str,
    rel: str,
    path: str,
    name: str,
    settings: Settings,
    allowed: tuple[Path, ...],
) -> FileHandle | DirHandle | str:
    """Open ``rel`` component by component under the root; a link's target is returned
    (as a normalised absolute path) for the caller to check and walk again."""
    parts = [p for p in rel.split("/") if p]
    try:
        cur = os.open(real_root, _DIR_FLAGS)
    except OSError as exc:
        raise ImageLoadError(
            f"The allowed folder {base} cannot be opened: {exc.strerror or exc}.",
            input=name,
            fix="Check that the allowed folders exist and are readable.",
        ) from exc
    try:
        if not parts:
            fd, cur = cur, -1
            return DirHandle(fd, Path(path), name, allowed, settings)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                st = os.stat(part, dir_fd=cur, follow_symlinks=False)
            except NotADirectoryError:
                raise FileNotFoundError(path) from None
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(part, dir_fd=cur)
                here = posixpath.join(base, *parts[:i]) if i else base
                rest = parts[i + 1 :]
                return posixpath.normpath(posixpath.join(here, target, *rest))
            if stat.S_ISDIR(st.st_mode):
                try:
                    nfd = os.open(part, _DIR_FLAGS | _O_NOFOLLOW, dir_fd=cur)
                except OSError as exc:
                    raise _changed(name, exc) from exc
                os.close(cur)
                cur = nfd
                if last:
                    fd, cur = cur, -1
                    return DirHandle(fd, Path(path), name, allowed, settings)
                continue
            if not last:
                raise FileNotFoundError(path)  # a file used as a folder
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(name, _kind(st.st_mode))
            try:
                return _open_regular(part, cur, Path(path), name, follow=False)
            except _NotRegular as exc:
                raise _not_regular(name, str(exc)) from None
        raise AssertionError("unreachable")
    except (FileNotFoundError, _Escape, ImageLoadError, AccessDeniedError):
        raise
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    finally:
        if cur >= 0:
            os.close(cur)


def _open_regular(
    name_or_path: str, dir_fd: int | None, path: Path, label: str, *, follow: bool
) -> FileHandle:
    """Open a regular file once and check the descriptor itself with ``fstat``."""
    flags = _FILE_FLAGS | (0 if follow else _O_NOFOLLOW)
    try:
        fd = os.open(name_or_path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and not follow:
            raise _changed(label, exc) from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular(_kind(st.st_mode))
        if _O_NONBLOCK:
            os.set_blocking(fd, True)  # a regular file: reads never block anyway
    except BaseException:
        os.close(fd)
        raise
    return FileHandle(fd, st.st_size, path, label)


def _open_confined_fallback(
    path: str,
    name: str,
    roots: list[_Root],
    settings: Settings,
    allowed_dirs: Sequence[str | os.PathLike[str]],
) -> FileHandle | DirHandle:  # pragma: no cover - platforms without openat (Windows)
    allowed = tuple(Path(d) for d in allowed_dirs)
    bases = [r.given for r in roots] if not os.path.isabs(path) else [""]
    for base in bases:
        candidate = os.path.realpath(os.path.join(base, path)) if base else os.path.realpath(path)
        inside = any(
            os.path.commonpath([candidate, r.real]) == r.real
            for r in roots
            if os.path.splitdrive(candidate)[0] == os.path.splitdrive(r.real)[0]
        )
        if inside and os.path.exists(candidate):
            return _open_unconfined(candidate, name, settings)
    raise _denied(name, allowed)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(name: str, kind: str) -> ImageLoadError:
    return ImageLoadError(
        f"{name} is {kind}, not a regular file; only regular files are read.",
        input=name,
        fix="Pass an image file (or a folder holding one DICOM series).",
    )


def _changed(name: str, exc: OSError) -> ImageLoadError:
    return ImageLoadError(
        f"{name} changed while it was being opened (it was replaced, or is now a link).",
        input=name,
        fix="Try again once the file is no longer being replaced.",
    )


def _unreadable(name: str, exc: OSError) -> ImageLoadError:
    return ImageLoadError(
        f"Cannot read {name}: {exc.strerror or type(exc).__name__}.",
        input=name,
        fix="Check that the file exists and is readable.",
    )
