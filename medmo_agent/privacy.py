"""Image paths in machine outputs: shown only when the user chose to show them.

A file path can identify a patient (``/scans/Jane_Doe_1961/chest.png``), and so can the
file name alone. Every machine output (``--json``, MCP structured content, the MCP audit
log, agent traces, review files) therefore names an image file by a label such as
``path#3f2a9c1b0e.png``: the file's extension and a short hash of its absolute path. The
same file always gets the same label, so steps about one image can still be matched up.
``Settings.include_paths`` (``MEDMO_INCLUDE_PATHS=1``) shows the paths themselves.
``medmo://`` handles, ``data:`` URIs and ``inline`` are not paths and stay as they are.

>>> path_label("/scans/Jane_Doe/chest.png")[:5], path_label("/scans/Jane_Doe/chest.png")[-4:]
('path#', '.png')
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "PATH_KEYS",
    "include_paths_or_env",
    "is_path",
    "path_label",
    "scrub_data",
    "scrub_text",
]

#: JSON keys whose string values are image locations.
PATH_KEYS = frozenset({"image", "handle", "source", "path", "location"})

_LABEL_PREFIX = "path#"
# further path components after a hidden folder: "/IM0001.dcm", "\\sub\\x.dcm"
_INSIDE = r"(?:[/\\][^\s'\"<>()\[\],;:/\\]+)*"
# "<...>" is a placeholder the audit log and traces put in place of inline image data
_NOT_PATHS = ("medmo://", "data:", "http://", "https://", "<", _LABEL_PREFIX)


def is_path(value: str) -> bool:
    """Whether ``value`` names a file (a path or ``file://`` URI), not a handle or data."""
    return bool(value) and value != "inline" and not value.startswith(_NOT_PATHS)


def _plain(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def path_label(path: str) -> str:
    """A label for a file path that does not reveal it: extension plus a short hash.

    Args:
        path: A file path or ``file://`` URI.

    Returns:
        ``path#<10 hex digits><extension>``, the same for every spelling of one absolute path.
    """
    plain = _plain(path)
    digest = hashlib.sha256(os.path.abspath(plain).encode("utf-8", "replace")).hexdigest()
    name = os.path.basename(plain.rstrip("/\\")).lower()
    ext = ""
    for suffix in (".nii.gz", ".tar.gz"):
        if name.endswith(suffix):
            ext = suffix
    if not ext:
        ext = os.path.splitext(name)[1]
    if not ext[1:].isalnum() or len(ext) > 8:
        ext = ""
    return f"{_LABEL_PREFIX}{digest[:10]}{ext}"


def _forms(path: str) -> set[str]:
    # An error message may name the path as given, absolute or with links resolved.
    plain = _plain(path)
    return {path, plain, os.path.abspath(plain), os.path.realpath(plain)} - {"", "/", "."}


def scrub_text(text: str, paths: Iterable[str] | dict[str, str]) -> str:
    """``text`` with every spelling of each path replaced by its label.

    Args:
        text: Free text, e.g. an error message.
        paths: The paths to hide, or a mapping of path to the label to use for it.
    """
    labels = paths if isinstance(paths, dict) else {p: path_label(p) for p in paths if is_path(p)}
    replace: dict[str, str] = {}
    for path, label in labels.items():
        for form in _forms(path):
            replace.setdefault(form, label)
    for form in sorted(replace, key=len, reverse=True):  # longest first: /a/b before b
        # A path inside a hidden folder (a series' slice file) is hidden with it: its own
        # name may carry a patient's name too.
        pattern = re.escape(form) + _INSIDE

        def label_of(match: re.Match[str], form: str = form) -> str:
            return replace[form] if match.group(0) == form else path_label(match.group(0))

        text = re.sub(pattern, label_of, text)
    return text


#: An absolute path (or ``file://`` URL) inside free text, e.g. an exception's message.
_ABS_PATH = re.compile(r"(?<![\w:/.])(?:file://)?/(?:[^\s'\"<>()\[\],;:/]+/)+[^\s'\"<>()\[\],;:/]*")


def scrub_absolute_paths(text: str, include_paths: bool = False) -> str:
    """``text`` with every absolute path in it replaced by its label, unless
    ``include_paths``: for messages whose paths are not known in advance (a dataset's
    files named in an exception)."""
    return text if include_paths else _ABS_PATH.sub(lambda m: path_label(m.group(0)), text)


def include_paths_or_env(include_paths: bool | None) -> bool:
    """``include_paths`` itself, or ``MEDMO_INCLUDE_PATHS`` when it is ``None``."""
    if include_paths is not None:
        return include_paths
    from .config import Settings

    return Settings.from_env().include_paths


def _collect(data: Any, found: set[str]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in PATH_KEYS and isinstance(value, str) and is_path(value):
                found.add(value)
            else:
                _collect(value, found)
    elif isinstance(data, list | tuple):
        for value in data:
            _collect(value, found)


def _replace(data: Any, labels: dict[str, str]) -> Any:
    if isinstance(data, str):
        return scrub_text(data, labels) if labels else data
    if isinstance(data, dict):
        return {k: _replace(v, labels) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_replace(v, labels) for v in data]
    return data


def scrub_data(
    data: Any, include_paths: bool = False, paths: Iterable[str] | dict[str, str] = ()
) -> Any:
    """A copy of JSON data with image paths replaced by labels, unless ``include_paths``.

    Paths are found under the keys in :data:`PATH_KEYS` and in ``paths``; every string
    that mentions one (an error message, a note) has it replaced too.

    Args:
        data: JSON-ready data (dicts, lists, strings, numbers).
        include_paths: True returns ``data`` unchanged.
        paths: Further paths to hide, e.g. the image argument of a failed call, or a
            mapping of path to label (to give a relative path its file's label).
    """
    if include_paths:
        return data
    labels = dict(paths) if isinstance(paths, dict) else {}
    found = {p for p in paths if p and is_path(p)}
    _collect(data, found)
    for path in found - set(labels):
        labels[path] = path_label(path)
    return _replace(data, labels)
