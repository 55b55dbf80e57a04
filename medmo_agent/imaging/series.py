"""Reader for a folder holding one DICOM series (one file per slice).

Only headers are read up front; the chosen slice's file is decoded on demand, so a
viewer can move through slices without reading the whole series into memory.

- Files that are not DICOM images (hidden files, DICOMDIR, reports, text) are skipped.
- Several series in one folder: the one with the most image files is used (ties: the
  lowest SeriesNumber); ``ImageMeta.dicom["SeriesNumber"]`` says which one it was.
- Slices are ordered by ImagePositionPatient projected on the slice normal (the cross
  product of the ImageOrientationPatient row and column directions), so for a standard
  axial CT slice 0 is the most inferior; without positions, by InstanceNumber, then by
  file name.
- ``slice`` defaults to the middle slice. Slices are shown in their acquisition plane;
  ``plane`` may name that plane but not another one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import ImageLoadError
from ..types import MedImage
from .dicom import read_dataset, render_dataset
from .fileaccess import DirHandle
from .filehandles import FileHandle
from .sources import Source, detect_format, open_source, sniff_head
from .windowing import parse_window

__all__ = ["MAX_SERIES_FILES", "DicomSeries", "read_series"]

#: Folders with more files than this are refused (a series is rarely over a few thousand).
MAX_SERIES_FILES = 20_000

_HEADER_TAGS = [
    "SeriesInstanceUID",
    "SeriesNumber",
    "InstanceNumber",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "Rows",
    "Columns",
    "Modality",
]


@dataclass(frozen=True)
class _Header:
    path: Path
    series: str
    series_number: int
    instance: int | None
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None


def read_series(
    src: Source,
    settings: Settings,
    *,
    frame: int | None = None,
    slice: int | None = None,
    plane: str | None = None,
    window: Any = None,
) -> MedImage:
    """Read a folder holding one DICOM series and render one slice.

    Args:
        src: The folder, as an opened source.
        settings: Caps and privacy switch.
        frame: Frame within the chosen slice's file, if it is multi-frame.
        slice: Slice index in position order (default: the middle slice).
        plane: The acquisition plane or ``None``; other planes are refused.
        window: See :mod:`medmo_agent.imaging.windowing`.

    The folder was opened by :func:`~.sources.open_source`; when it was confined to
    allowed folders, a link in it leading outside them is refused rather than read.

    Raises:
        ImageLoadError: No DICOM images in the folder, or an out-of-range slice.
        AccessDeniedError: A file of the folder escapes ``allowed_dirs``.
    """
    parse_window(window)
    assert isinstance(src.handle, DirHandle)
    series = DicomSeries.scan(src.handle, settings)
    return series.render(slice=slice, frame=frame, plane=plane, window=window)


class DicomSeries:
    """The sorted files of one series; stored in ``MedImage.volume`` to re-slice.

    Attributes:
        files: Slice files in display order.
        label: The folder as the caller named it.
        plane: The acquisition plane (axial, coronal, sagittal) or ``None`` if unknown.
        series_count: How many series the folder held (the largest was chosen).
        positions: ImagePositionPatient of each slice, in display order (or ``None``).
        orientations: ImageOrientationPatient of each slice, in display order (or ``None``).
    """

    def __init__(
        self,
        files: list[Path],
        label: str,
        settings: Settings,
        *,
        plane: str | None,
        series_count: int = 1,
        allowed_dirs: tuple[Path, ...] | None = None,
        positions: list[tuple[float, ...] | None] | None = None,
        orientations: list[tuple[float, ...] | None] | None = None,
    ):
        self.files = files
        # per slice, in display order: ImagePositionPatient and ImageOrientationPatient
        # (``None`` where a file lacks them), for 3D geometry
        self.positions = positions if positions is not None else [None] * len(files)
        self.orientations = orientations if orientations is not None else [None] * len(files)
        self.allowed_dirs = allowed_dirs
        self.label = label
        self.settings = settings
        self.plane = plane
        self.series_count = series_count

    @property
    def num_slices(self) -> int:
        """Number of slices."""
        return len(self.files)

    @classmethod
    def scan(cls, folder: DirHandle, settings: Settings) -> DicomSeries:
        """Read the headers of every DICOM file in the opened folder and sort one series."""
        label = folder.label
        headers = _scan_headers(folder, settings)
        groups: dict[str, list[_Header]] = defaultdict(list)
        for h in headers:
            groups[h.series].append(h)
        chosen = min(groups.values(), key=lambda g: (-len(g), g[0].series_number))
        ordered = _sort(chosen)
        return cls(
            [h.path for h in ordered],
            label,
            settings,
            plane=_plane(chosen[0].orientation),
            series_count=len(groups),
            allowed_dirs=folder.allowed,
            positions=[h.position for h in ordered],
            orientations=[h.orientation for h in ordered],
        )

    def render(
        self,
        *,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
        window: Any = None,
    ) -> MedImage:
        """Render one slice (default: the middle one)."""
        n = self.num_slices
        if plane is not None and plane.lower() != (self.plane or "").lower():
            raise ImageLoadError(
                f"{self.label} holds {self.plane or 'single-plane'} slices; re-slicing a DICOM "
                f"series in the {plane} plane is not supported.",
                input=self.label,
                fix=f"Omit plane= (or use plane='{self.plane}'), or convert the series to "
                "NIfTI (e.g. with dcm2niix) and load the .nii.gz.",
            )
        index = n // 2 if slice is None else int(slice)
        if not 0 <= index < n:
            raise ImageLoadError(
                f"Slice {index} is out of range for {self.label}, which has {n} slice(s).",
                input=self.label,
                fix=f"Choose a slice between 0 and {n - 1}.",
            )
        path = self.files[index]
        # opened again through the same checks: the folder may have changed since
        with open_source(path, self.settings, allowed_dirs=self.allowed_dirs) as src:
            ds = read_dataset(src, self.settings)
        image = render_dataset(
            ds, str(path), self.settings, frame=frame, window=window, fmt="dicom-series"
        )
        image.meta = image.meta.model_copy(
            update={"source": self.label, "slice": index, "num_slices": n, "plane": self.plane}
        )
        image.volume = self
        return image


def _scan_headers(folder: DirHandle, settings: Settings) -> list[_Header]:
    label = folder.label
    try:
        names = folder.names()
    except OSError as exc:
        raise ImageLoadError(
            f"Cannot list the folder {label}: {exc.strerror or exc}.",
            input=label,
            fix="Check that the folder exists and is readable.",
        ) from exc
    if len(names) > MAX_SERIES_FILES:
        raise ImageLoadError(
            f"{label} holds {len(names):,} entries, more than the {MAX_SERIES_FILES:,} a "
            "series folder may hold.",
            input=label,
            fix="Point at the folder of a single series.",
        )
    headers: list[_Header] = []
    skipped = 0
    for name in names:
        if name.startswith(".") or name.upper() == "DICOMDIR":
            continue
        # a link leaving the allowed folders raises AccessDeniedError here
        handle = folder.open_child(name)
        if handle is None:
            continue  # a folder, FIFO, device or socket: not part of the series
        header = _read_header(handle, folder, settings)
        if header is None:
            skipped += 1
        else:
            headers.append(header)
    if not headers:
        extra = f" ({skipped} file(s) were not readable DICOM images)" if skipped else ""
        raise ImageLoadError(
            f"The folder {label} holds no DICOM images{extra}.",
            input=label,
            fix="Point at a folder of .dcm files from one series, or at an image file.",
        )
    return headers


def _read_header(handle: FileHandle, folder: DirHandle, settings: Settings) -> _Header | None:
    with handle:
        if handle.size == 0 or handle.size > settings.max_image_bytes:
            return None  # empty, or over the byte cap: not part of the series
        src = Source(handle.label, handle.path, None, sniff_head(handle.read(1024)), handle)
        if detect_format(src) != "dicom":
            return None
        try:
            ds = read_dataset(src, settings, stop_before_pixels=True)
        except ImageLoadError:
            return None
    if not ds.get("Rows") or not ds.get("Columns"):
        return None  # a report, presentation state or other non-image object
    return _Header(
        path=handle.path,
        series=str(ds.get("SeriesInstanceUID") or ""),
        series_number=_int(ds.get("SeriesNumber"), 0),
        instance=_int(ds.get("InstanceNumber"), None),
        position=_floats(ds.get("ImagePositionPatient"), 3),
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
    )


def _sort(headers: list[_Header]) -> list[_Header]:
    first = headers[0].orientation
    placed = [(h, h.position) for h in headers if h.position is not None]
    if first is not None and len(placed) == len(headers):
        normal = np.cross(np.array(first[:3]), np.array(first[3:]))
        ordered = sorted(placed, key=lambda hp: (float(np.dot(hp[1], normal)), hp[0].path.name))
        return [h for h, _ in ordered]
    if all(h.instance is not None for h in headers):
        return sorted(headers, key=lambda h: (h.instance, h.path.name))
    return sorted(headers, key=lambda h: h.path.name)


def _plane(orientation: tuple[float, ...] | None) -> str | None:
    if orientation is None:
        return None
    normal = np.abs(np.cross(np.array(orientation[:3]), np.array(orientation[3:])))
    return ("sagittal", "coronal", "axial")[int(np.argmax(normal))]


def _int(value: Any, default: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None
