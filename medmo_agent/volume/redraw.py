"""A volume sweep's overview strip (the key slices with their boxes) drawn again from its
volume.

Traces and review records keep a sweep as its JSON shape (``VolumeResult.to_dict()``), never
its pixels, so the overview is drawn again from the volume the result names when a report
is written; where the volume cannot be read the findings table
(:mod:`medmo_agent.volume.tables`) is shown alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import MedmoError

__all__ = ["overview_png"]

_TILE = 160  # px, height of one key slice in a redrawn overview


def _window(data: Mapping[str, Any]) -> str | None:
    window = ((data.get("image") or {}).get("meta") or {}).get("window") or {}
    if window.get("width") is not None and window.get("level") is not None:
        return f"{window['width']:g}/{window['level']:g}"
    return None


def _renderer(
    volume: Any, plane: str, window: str | None, time_point: int | None
) -> Callable[[int], Any]:
    from ..imaging.dicom import DicomFile

    if isinstance(volume, DicomFile):  # its frames are the slices
        return lambda i: volume.render(frame=i, window=window)
    return lambda i: volume.render(slice=i, window=window, plane=plane, frame=time_point)


def overview_png(data: Mapping[str, Any], image: Any, *, most: int | None = None) -> bytes | None:
    """The overview strip of a sweep, redrawn from its volume: the key slice of each of the
    largest findings, boxes drawn, side by side.

    Args:
        data: The sweep's JSON shape.
        image: Any loaded slice of the volume the sweep ran on (its ``volume`` is re-sliced).
        most: How many findings to show (default ``Settings.volume_overview_findings``).

    Returns:
        PNG bytes, or ``None`` when there is no finding or ``image`` is not that volume
        (another number of slices, or a 2D image).
    """
    from ..imaging.overlay import to_png_bytes
    from .overview import overview_strip
    from .results import Finding

    volume = getattr(image, "volume", None)
    findings = [Finding.model_validate(f) for f in data.get("findings") or []]
    if volume is None or not findings:
        return None
    if most is None:
        from ..config import Settings

        most = Settings.from_env().volume_overview_findings
    render = _renderer(
        volume, str(data.get("plane") or "axial"), _window(data), data.get("time_point")
    )
    try:
        probe = render(findings[0].key_slice).meta
    except MedmoError:  # the volume changed since the sweep: show the table alone
        return None
    # a multi-frame DICOM counts frames; a series or NIfTI (4D too) counts slices
    count = probe.num_slices if probe.slice is not None else probe.num_frames
    shape = list(data.get("shape") or [None, None, None])
    if [count, probe.original_size[1], probe.original_size[0]] != shape:
        # another volume (its key slices would be the wrong pictures), or slices shown at
        # another size than when the sweep ran (its boxes would be misplaced)
        return None
    strip = overview_strip(render, findings, most=most, tile=_TILE)
    return None if strip is None else to_png_bytes(strip)
