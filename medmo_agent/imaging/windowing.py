"""Intensity windows: map raw values (HU for CT) to 8 bits.

A window is (width, level): values below ``level - width/2`` become black, values above
``level + width/2`` white, and values in between a straight ramp. The mapping is the plain
linear one (not DICOM's ``c - 0.5``/``w - 1`` variant), which differs by under one grey level.

The ``window`` argument of the loaders accepts:

- a preset name from :data:`PRESETS` (``"lung"``, ``"bone"``, ...);
- ``"WIDTH/LEVEL"`` such as ``"400/40"`` (level may be negative: ``"1500/-600"``);
- a ``(width, level)`` tuple;
- ``"auto"``: the 0.5th to 99.5th percentile of the displayed slice;
- ``"file"`` or ``None``: the file's own window when it has one, else ``"auto"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..types import WindowInfo

__all__ = [
    "PRESETS",
    "WindowSpec",
    "apply_window",
    "auto_window",
    "parse_window",
    "render_window",
    "scale_to_uint8",
]

#: CT window presets as (width, level) in HU. ``soft_tissue`` is the common general
#: soft-tissue window; ``abdomen`` is the same width centred 10 HU higher.
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "bone": (2000.0, 500.0),
    "brain": (80.0, 40.0),
    "abdomen": (400.0, 50.0),
    "liver": (150.0, 30.0),
    "soft_tissue": (400.0, 40.0),
}

#: Values windowed per chunk in ``apply_window`` (1 Mi values: 4 MiB of float32).
_WINDOW_CHUNK = 1 << 20
#: Most values ``auto_window`` computes percentiles over (4 Mi: a 2048 x 2048 image).
_AUTO_SAMPLE = 1 << 22

_ALIASES = {"soft tissue": "soft_tissue", "soft-tissue": "soft_tissue", "softtissue": "soft_tissue"}

_WL = re.compile(r"^\s*(?P<w>[+-]?\d+(?:\.\d+)?)\s*[/,:]\s*(?P<l>[+-]?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class WindowSpec:
    """A parsed window request.

    Attributes:
        mode: ``"explicit"`` (width and level given), ``"auto"`` or ``"file"``.
        name: Preset name, ``"auto"``, ``"file"``, or ``None`` for explicit numbers.
        width: Window width (explicit mode only).
        level: Window level/centre (explicit mode only).
    """

    mode: str
    name: str | None = None
    width: float | None = None
    level: float | None = None


def parse_window(window: str | tuple[float, float] | WindowSpec | None) -> WindowSpec:
    """Parse a window argument.

    Args:
        window: A preset name, ``"WIDTH/LEVEL"``, ``(width, level)``, ``"auto"``,
            ``"file"`` or ``None``.

    Returns:
        The parsed :class:`WindowSpec`.

    Raises:
        InputError: The window is not understood, or its width is not positive.
    """
    if isinstance(window, WindowSpec):
        return window
    if window is None:
        return WindowSpec("file", "file")
    if isinstance(window, (tuple, list)):
        if len(window) != 2:
            raise _bad(window)
        try:
            width, level = float(window[0]), float(window[1])
        except (TypeError, ValueError) as exc:
            raise _bad(window) from exc
        return _explicit(width, level, None, window)
    if not isinstance(window, str):
        raise _bad(window)
    key = window.strip().lower()
    key = _ALIASES.get(key, key)
    if key in ("file", "default", ""):
        return WindowSpec("file", "file")
    if key == "auto":
        return WindowSpec("auto", "auto")
    if key in PRESETS:
        width, level = PRESETS[key]
        return WindowSpec("explicit", key, width, level)
    match = _WL.match(key)
    if match:
        return _explicit(float(match.group("w")), float(match.group("l")), None, window)
    raise _bad(window)


def _explicit(width: float, level: float, name: str | None, original: object) -> WindowSpec:
    if not width > 0:
        raise InputError(
            f"Window width must be positive, got {width:g}.",
            input=str(original),
            fix="Give the window as WIDTH/LEVEL with WIDTH > 0, e.g. '400/40'.",
        )
    return WindowSpec("explicit", name, width, level)


def _bad(window: object) -> InputError:
    return InputError(
        f"Unknown window {window!r}.",
        input=str(window),
        fix=(
            f"Use a preset ({', '.join(PRESETS)}), 'WIDTH/LEVEL' such as '400/40', "
            "a (width, level) pair, 'auto', or 'file'."
        ),
    )


def apply_window(raw: np.ndarray, width: float, level: float) -> np.ndarray:
    """Window raw values to uint8.

    Args:
        raw: Values in any numeric dtype (HU for CT).
        width: Window width, > 0.
        level: Window centre.

    Returns:
        A uint8 array of the same shape: 0 at ``level - width/2`` and below, 255 at
        ``level + width/2`` and above.
    """
    if not width > 0:
        raise InputError(f"Window width must be positive, got {width:g}.", fix="Use a width > 0.")
    low = level - width / 2.0
    values = np.asarray(raw)
    result = np.empty(values.shape, dtype=np.uint8)
    flat_in, flat_out = values.reshape(-1), result.reshape(-1)
    # A chunk at a time, so a large image needs a few MB of float32 temporaries rather
    # than four bytes per pixel on top of its raw values and the result.
    for start in range(0, flat_in.size, _WINDOW_CHUNK):
        # float32 throughout, in place. The Python-float operands stay float32 (NumPy 2
        # casting), so the values are those of the plain ``(raw - low) * (255 / width)``.
        out = flat_in[start : start + _WINDOW_CHUNK].astype(np.float32)
        np.subtract(out, low, out=out)
        np.multiply(out, 255.0 / width, out=out)
        np.rint(out, out=out)
        # fmax/fmin clip and, unlike np.clip, send NaN to 0 (NaN voxels render black) and
        # infinities to 0/255: the same as nan_to_num + clip, without the extra passes.
        np.fmax(out, 0.0, out=out)
        np.fmin(out, 255.0, out=out)
        flat_out[start : start + _WINDOW_CHUNK] = out
    return result


def auto_window(
    raw: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5
) -> tuple[float, float]:
    """A (width, level) spanning the given percentiles of the finite values.

    Constant images get a width of 1 so they render as one flat grey level. Above
    ``_AUTO_SAMPLE`` values the percentiles come from an evenly strided sample of that
    many: the same window to within a grey level, without float64 copies of the image.
    """
    values = np.asarray(raw)
    if values.size > _AUTO_SAMPLE:
        values = values.reshape(-1)[:: -(-values.size // _AUTO_SAMPLE)]
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 1.0, 0.0
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    width = float(hi - lo) if hi > lo else 1.0
    return width, float(lo + width / 2.0)


def scale_to_uint8(values: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Scale integer or float pixel values to uint8.

    uint8 input passes through. Otherwise, when ``bits`` (the stored bit depth) is given
    for unsigned integers, values are scaled by the full range of that depth so that a
    dark 16-bit image stays dark; without it, by the data's own min and max.
    """
    arr = np.asarray(values)
    if arr.dtype == np.uint8:
        return arr
    if bits and np.issubdtype(arr.dtype, np.unsignedinteger) and 8 < bits <= 32:
        top = float(2**bits - 1)
        return np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, dtype=np.uint8)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    out = (np.where(finite, arr, lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_window(
    raw: np.ndarray,
    spec: WindowSpec,
    file_window: tuple[float, float] | None = None,
) -> tuple[np.ndarray, WindowInfo]:
    """Render raw values with a parsed window, falling back from ``file`` to ``auto``.

    Args:
        raw: The values to render.
        spec: The parsed window request.
        file_window: The file's own (width, level), if it has one.

    Returns:
        The uint8 rendering and a :class:`WindowInfo` saying which window was used.
    """
    if spec.mode == "explicit":
        assert spec.width is not None and spec.level is not None
        width, level, name = spec.width, spec.level, spec.name
    elif spec.mode == "file" and file_window is not None and file_window[0] > 0:
        width, level, name = file_window[0], file_window[1], "file"
    else:
        width, level = auto_window(raw)
        name = "auto"
    info = WindowInfo(name=name, width=round(float(width), 3), level=round(float(level), 3))
    return apply_window(raw, width, level), info
