"""The checked values of a volume sweep's JSON shape: each helper reads one key and
raises an :class:`~medmo_agent.errors.InputError` naming it when it is malformed (a
hand-edited or truncated result), so a viewer fails with a message, not a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InputError

__all__ = [
    "check_slice",
    "checked_box",
    "checked_numbers",
    "checked_time_point",
    "sweep_dict",
    "volume_handle",
]


def sweep_dict(result: Any) -> Mapping[str, Any]:
    """The sweep as its JSON shape: a mapping as given, or an object's ``to_dict()``."""
    if isinstance(result, Mapping):
        return result
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping):
            return data
    raise InputError(
        f"Cannot read a {type(result).__name__} as a volume sweep result.",
        input=type(result).__name__,
        fix="Pass the volume task's result, or its to_dict() as a dict.",
    )


def volume_handle(data: Mapping[str, Any]) -> str | None:
    """Where the volume can be loaded again: ``handle``, else the result's ``image.handle``
    (the volume task's result names the study it swept there)."""
    image = data.get("image")
    handle = data.get("handle") or (image.get("handle") if isinstance(image, Mapping) else None)
    return str(handle) if handle else None


def checked_numbers(value: Any, key: str, count: int, kind: type) -> tuple[Any, ...]:
    """``value`` as ``count`` numbers of ``kind``; the error names ``key``."""
    try:
        numbers = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != count:
        raise InputError(
            f"The volume sweep result's {key} must be {count} numbers, not {value!r}.",
            input=key,
            fix="Pass the result exactly as the volume task returns it.",
        )
    return numbers


def checked_box(value: Any, where: str) -> tuple[float, float, float, float]:
    """A box's (x1, y1, x2, y2) in pixels; the error names ``where``."""
    x1, y1, x2, y2 = checked_numbers(value, f"{where} box", 4, float)
    return (x1, y1, x2, y2)


def check_slice(index: int, count: int, where: str) -> None:
    """Refuse a slice index outside the ``count`` slices of the sweep's shape."""
    if not 0 <= index < count:
        raise InputError(
            f"The volume sweep result's {where} names slice {index}, outside the "
            f"{count} slices of its shape.",
            input=where,
            fix="Pass the result exactly as the volume task returns it.",
        )


def checked_time_point(value: Any) -> int | None:
    """The 4D time point the sweep read: ``None`` (a 3D volume) or a whole number from 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"The sweep's time_point {value!r} is not a volume number.",
            input="time_point",
            fix="Pass the volume task's result unchanged (time_point is a whole number "
            "from 0, or null).",
        )
    return value
