"""A volume sweep result as the viewer reads it: slices, per-slice boxes and 3D findings.

The result arrives as the sweep's JSON shape (``to_dict()``, or the MCP tool's
``structuredContent``); this module checks the keys the viewer needs, ties each per-slice
box to the 3D finding it belongs to, and writes the findings table. No widgets here, so
the same reading serves tests and HTML exports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medmo_agent.errors import InputError

from .render import escape

__all__ = [
    "SliceBox",
    "SliceResult",
    "VolumeFinding",
    "VolumeSweep",
    "findings_table_html",
    "is_volume_result",
    "isolated_badge",
]

#: Keys every volume sweep result has (the rest of the shape is optional to the viewer).
_REQUIRED = ("plane", "shape", "per_slice", "findings")
#: How far (pixels) a per-slice box may be from a finding's box and still be the same box;
#: the two are the same numbers written twice, so only rounding separates them.
_SAME_BOX_PX = 0.51


def is_volume_result(result: Any) -> bool:
    """Whether ``result`` is a volume sweep result (a dict of that shape, or has ``to_dict``)."""
    try:
        data = _as_dict(result)
    except InputError:
        return False
    return all(key in data for key in _REQUIRED)


@dataclass(frozen=True)
class VolumeFinding:
    """One 3D finding: boxes of adjacent slices linked under one label."""

    id: int
    label: str
    slice_range: tuple[int, int]
    key_slice: int
    boxes: dict[int, tuple[float, float, float, float]]  # slice -> (x1, y1, x2, y2)
    extent_mm: tuple[float, float, float] | None
    volume_ml: float | None
    center_mm: tuple[float, float, float] | None
    isolated: bool

    @property
    def name(self) -> str:
        """The label with the finding's number, as the canvas tags it."""
        return f"{self.label} #{self.id}" + (" (isolated)" if self.isolated else "")

    @property
    def slices_text(self) -> str:
        """``"15–25"``, or ``"5"`` for a single slice."""
        first, last = self.slice_range
        return f"{first}" if first == last else f"{first}–{last}"

    @property
    def extent_text(self) -> str:
        """Extent along columns, rows and slices, in mm (``"–"`` when unknown)."""
        if self.extent_mm is None:
            return "–"
        return " × ".join(f"{v:.1f}" for v in self.extent_mm) + " mm"


@dataclass(frozen=True)
class SliceBox:
    """A box drawn on one slice, and the finding it belongs to (``None``: not linked)."""

    label: str
    box: tuple[float, float, float, float]
    finding: VolumeFinding | None


@dataclass(frozen=True)
class SliceResult:
    """What the sweep got on one slice."""

    slice: int
    boxes: list[SliceBox]
    answer: str = ""
    error: str | None = None


@dataclass
class VolumeSweep:
    """A volume sweep result, checked and indexed by slice."""

    plane: str
    shape: tuple[int, int, int]  # slices, rows, columns
    slices: list[SliceResult]
    findings: list[VolumeFinding]
    source: str = ""
    task: str = ""
    spacing_mm: tuple[float, float, float] | None = None
    frame: str = ""
    handle: str | None = None  # where the volume can be loaded again, when the result says
    study_read: str | None = None
    warnings: list[str] = field(default_factory=list)
    _by_slice: dict[int, SliceResult] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_slice = {s.slice: s for s in self.slices}

    @classmethod
    def read(cls, result: Any) -> VolumeSweep:
        """Read a sweep result: its ``to_dict()`` shape, or an object that has ``to_dict``.

        Raises:
            InputError: A key the viewer needs is missing, or a slice or box is malformed;
                the message names the key.
        """
        data = _as_dict(result)
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise InputError(
                f"This is not a volume sweep result: it has no {', '.join(missing)}.",
                input=", ".join(sorted(data)[:8]) or "{}",
                fix="Pass the result of the volume task (or its to_dict()) to VolumeViewer; "
                "for a single image's result use ImageViewer.from_result.",
            )
        shape = _numbers(data["shape"], "shape", 3, int)
        findings = [_finding(f, i) for i, f in enumerate(data["findings"])]
        for finding in findings:
            for index in (*finding.slice_range, finding.key_slice, *finding.boxes):
                _check_slice(index, shape[0], f"findings[{finding.id}]")
        slices = [_slice(s, i, findings, shape[0]) for i, s in enumerate(data["per_slice"])]
        spacing = data.get("spacing_mm")
        return cls(
            plane=str(data["plane"]),
            shape=(shape[0], shape[1], shape[2]),
            slices=sorted(slices, key=lambda s: s.slice),
            findings=findings,
            source=str(data.get("source") or ""),
            task=str(data.get("task") or ""),
            spacing_mm=_numbers(spacing, "spacing_mm", 3, float) if spacing else None,
            frame=str(data.get("frame") or ""),
            handle=_handle(data),
            study_read=data.get("study_read") or None,
            warnings=[str(w) for w in data.get("warnings") or []],
        )

    def at(self, index: int) -> SliceResult | None:
        """The sweep's result on slice ``index`` (``None`` when the slice was not swept)."""
        return self._by_slice.get(index)

    def finding(self, finding_id: int) -> VolumeFinding:
        """The finding with id ``finding_id``.

        Raises:
            InputError: No finding has that id.
        """
        for finding in self.findings:
            if finding.id == finding_id:
                return finding
        raise InputError(
            f"There is no finding {finding_id}.",
            input=str(finding_id),
            fix=f"Use one of the ids {[f.id for f in self.findings]}.",
        )

    @property
    def start_slice(self) -> int:
        """The slice to show first: the first finding's key slice, else the middle swept one."""
        if self.findings:
            return self.findings[0].key_slice
        if self.slices:
            return self.slices[len(self.slices) // 2].slice
        return self.shape[0] // 2


def findings_table_html(sweep: VolumeSweep, hidden: Iterable[int] = ()) -> str:
    """The findings as an HTML table: label, slices, key slice, extents in mm, volume, centre.

    Args:
        sweep: The sweep result.
        hidden: Ids of findings toggled off (their rows are greyed and say so).
    """
    if not sweep.findings:
        return "<div class='medmo-findings-table'><i>No findings in this volume.</i></div>"
    hidden = set(hidden)
    frame = f", {escape(sweep.frame)}" if sweep.frame else ""
    head = (
        "<tr><th>#</th><th>Finding</th><th>Slices</th><th>Key slice</th>"
        "<th>Extent x × y × z</th><th>Volume (bounding)</th>"
        f"<th>Centre (mm{frame})</th><th></th></tr>"
    )
    rows = []
    for f in sweep.findings:
        volume = "–" if f.volume_ml is None else f"≤ {f.volume_ml:.2f} ml"
        centre = "–" if f.center_mm is None else ", ".join(f"{v:.1f}" for v in f.center_mm)
        flags = []
        if f.isolated:
            flags.append(_ISOLATED_BADGE)
        if f.id in hidden:
            flags.append("<span style='color:#6e7781'>hidden</span>")
        style = " style='opacity:0.5'" if f.id in hidden else ""
        rows.append(
            f"<tr data-finding='{f.id}'{style}><td>{f.id}</td><td>{escape(f.label)}</td>"
            f"<td>{f.slices_text}</td><td>{f.key_slice}</td>"
            f"<td class='medmo-extent'>{f.extent_text}</td><td>{volume}</td>"
            f"<td>({centre})</td><td>{' '.join(flags)}</td></tr>"
        )
    return (
        "<table class='medmo-findings-table' style='border-collapse:collapse;font-size:12px'>"
        "<style>.medmo-findings-table td,.medmo-findings-table th{padding:2px 8px;"
        "border-bottom:1px solid #d0d7de;text-align:left;white-space:nowrap}</style>"
        f"{head}{''.join(rows)}</table>"
    )


#: How an isolated (single-slice) finding is flagged wherever findings are listed.
_ISOLATED_BADGE = (
    "<span class='medmo-isolated' title='Seen on one slice only: not confirmed by its "
    "neighbours' style='background:#fff3cd;color:#7d4e00;border:1px solid #d4a72c;"
    "border-radius:3px;padding:0 4px'>isolated</span>"
)


def isolated_badge() -> str:
    """The HTML badge that flags an isolated finding."""
    return _ISOLATED_BADGE


# -- reading ------------------------------------------------------------------------------


def _as_dict(result: Any) -> Mapping[str, Any]:
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


def _handle(data: Mapping[str, Any]) -> str | None:
    """Where the volume can be loaded again: ``handle``, else the result's ``image.handle``
    (the volume task's result names the study it swept there)."""
    image = data.get("image")
    handle = data.get("handle") or (image.get("handle") if isinstance(image, Mapping) else None)
    return str(handle) if handle else None


def _numbers(value: Any, key: str, count: int, kind: type) -> tuple[Any, ...]:
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


def _box(value: Any, where: str) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = _numbers(value, f"{where} box", 4, float)
    return (x1, y1, x2, y2)


def _check_slice(index: int, count: int, where: str) -> None:
    if not 0 <= index < count:
        raise InputError(
            f"The volume sweep result's {where} names slice {index}, outside the "
            f"{count} slices of its shape.",
            input=where,
            fix="Pass the result exactly as the volume task returns it.",
        )


def _finding(data: Mapping[str, Any], position: int) -> VolumeFinding:
    where = f"findings[{position}]"
    first, last = _numbers(data.get("slice_range"), f"{where}.slice_range", 2, int)
    boxes = {int(b["slice"]): _box(b["box"], where) for b in data.get("boxes") or []}
    extent = data.get("extent_mm")
    centre = data.get("center_mm")
    volume = data.get("volume_ml")
    return VolumeFinding(
        id=int(data.get("id", position)),
        label=str(data.get("label") or "finding"),
        slice_range=(first, last),
        key_slice=int(data.get("key_slice", first)),
        boxes=boxes,
        extent_mm=_numbers(extent, f"{where}.extent_mm", 3, float) if extent else None,
        volume_ml=None if volume is None else float(volume),
        center_mm=_numbers(centre, f"{where}.center_mm", 3, float) if centre else None,
        isolated=bool(data.get("isolated", first == last)),
    )


def _slice(
    data: Mapping[str, Any], position: int, findings: list[VolumeFinding], count: int
) -> SliceResult:
    where = f"per_slice[{position}]"
    index = int(data["slice"])
    _check_slice(index, count, where)
    # the findings' boxes on this slice, each claimed by at most one per-slice box
    unclaimed = [(f, f.boxes[index]) for f in findings if index in f.boxes]
    boxes = []
    for item in data.get("boxes") or []:
        label = str(item.get("label") or "finding")
        box = _box(item.get("box"), where)
        owner = next(
            (
                pair
                for pair in unclaimed
                if pair[0].label == label
                and max(abs(a - b) for a, b in zip(pair[1], box, strict=True)) <= _SAME_BOX_PX
            ),
            None,
        )
        if owner is not None:
            unclaimed.remove(owner)
        boxes.append(SliceBox(label, box, owner[0] if owner else None))
    # a finding's box the per-slice list lacks is still the finding's: draw it too
    boxes.extend(SliceBox(f.label, box, f) for f, box in unclaimed)
    return SliceResult(index, boxes, str(data.get("answer") or ""), data.get("error") or None)
