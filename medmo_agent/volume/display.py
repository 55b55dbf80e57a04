"""A volume sweep result as the viewers read it: slices, per-slice boxes and 3D findings.

The result arrives as the sweep's JSON shape (``to_dict()``, or the MCP tool's
``structuredContent``); this module checks the keys a viewer needs, ties each per-slice
box to the 3D finding it belongs to, and writes the boxes of a slice, the findings list
and the findings table as the viewers show them. Both viewers read a sweep through it:
the Jupyter ``VolumeViewer`` and the MCP App viewer (whose render tool sends the boxes
of a slice and the findings rows made here). No widgets here, so the same reading serves
tests and HTML exports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..box_display import box_detail, colour_for
from ..errors import InputError
from ..rendering import escape
from ..types import Box
from .sweep_values import (
    check_slice,
    checked_box,
    checked_numbers,
    checked_time_point,
    sweep_dict,
    volume_handle,
)

__all__ = [
    "DrawnBox",
    "SliceBox",
    "SliceResult",
    "VolumeFinding",
    "VolumeSweep",
    "finding_rows",
    "findings_table_html",
    "is_volume_result",
    "isolated_badge",
    "slice_boxes",
    "slice_status",
    "sweep_notes",
]

#: Keys every volume sweep result has (the rest of the shape is optional to the viewer).
_REQUIRED = ("plane", "shape", "per_slice", "findings")
#: How far (pixels) a per-slice box may be from a finding's box and still be the same box;
#: the two are the same numbers written twice, so only rounding separates them.
_SAME_BOX_PX = 0.51


def is_volume_result(result: Any) -> bool:
    """Whether ``result`` is a volume sweep result (a dict of that shape, or has ``to_dict``)."""
    try:
        data = sweep_dict(result)
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

    @property
    def volume_text(self) -> str:
        """The bounding volume estimate, ``"≤ 1.23 ml"`` (``"–"`` when unknown)."""
        return "–" if self.volume_ml is None else f"≤ {self.volume_ml:.2f} ml"

    @property
    def centre_text(self) -> str:
        """The centre in patient mm, ``"(x, y, z)"`` (``"(–)"`` when unknown)."""
        if self.center_mm is None:
            return "(–)"
        return "(" + ", ".join(f"{v:.1f}" for v in self.center_mm) + ")"


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
    time_point: int | None = None  # the volume of a 4D NIfTI the sweep ran on
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
        data = sweep_dict(result)
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise InputError(
                f"This is not a volume sweep result: it has no {', '.join(missing)}.",
                input=", ".join(sorted(data)[:8]) or "{}",
                fix="Pass the result of the volume task (or its to_dict()) to VolumeViewer; "
                "for a single image's result use ImageViewer.from_result.",
            )
        shape = checked_numbers(data["shape"], "shape", 3, int)
        findings = [_finding(f, i) for i, f in enumerate(data["findings"])]
        for finding in findings:
            for index in (*finding.slice_range, finding.key_slice, *finding.boxes):
                check_slice(index, shape[0], f"findings[{finding.id}]")
        slices = [_slice(s, i, findings, shape[0]) for i, s in enumerate(data["per_slice"])]
        spacing = data.get("spacing_mm")
        return cls(
            plane=str(data["plane"]),
            shape=(shape[0], shape[1], shape[2]),
            slices=sorted(slices, key=lambda s: s.slice),
            findings=findings,
            source=str(data.get("source") or ""),
            task=str(data.get("task") or ""),
            spacing_mm=checked_numbers(spacing, "spacing_mm", 3, float) if spacing else None,
            frame=str(data.get("frame") or ""),
            time_point=checked_time_point(data.get("time_point")),
            handle=volume_handle(data),
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
    def labels(self) -> list[str]:
        """Every label in the sweep, findings first: the order box colours are given in."""
        labels = [f.label for f in self.findings]
        labels += [b.label for s in self.slices for b in s.boxes]
        return list(dict.fromkeys(labels))

    @property
    def swept_range(self) -> tuple[int, int]:
        """The first and last slice swept (the whole plane when none was)."""
        if not self.slices:
            return (0, self.shape[0] - 1)
        return (self.slices[0].slice, self.slices[-1].slice)

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
        flags = []
        if f.isolated:
            flags.append(_ISOLATED_BADGE)
        if f.id in hidden:
            flags.append("<span style='color:#6e7781'>hidden</span>")
        style = " style='opacity:0.5'" if f.id in hidden else ""
        rows.append(
            f"<tr data-finding='{f.id}'{style}><td>{f.id}</td><td>{escape(f.label)}</td>"
            f"<td>{f.slices_text}</td><td>{f.key_slice}</td>"
            f"<td class='medmo-extent'>{f.extent_text}</td><td>{f.volume_text}</td>"
            f"<td>{f.centre_text}</td><td>{' '.join(flags)}</td></tr>"
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


@dataclass(frozen=True)
class DrawnBox:
    """A box of one slice as a viewer draws it.

    Attributes:
        item: The per-slice box and the finding it belongs to.
        box: The box in that slice's pixels, named as the canvas tags it.
        canvas: What the viewer front end (``jupyter_ext/static/canvas.js``) draws:
            ``label``, ``x1``..``y2``, ``color``, ``visible``, ``detail``, and ``finding``
            (the id of its 3D finding, ``None`` when not linked).
    """

    item: SliceBox
    box: Box
    canvas: dict[str, Any]


def slice_boxes(
    sweep: VolumeSweep,
    index: int | None,
    image_size: tuple[int, int],
    pixel_spacing: tuple[float, float] | None = None,
    hidden: Iterable[int] = (),
) -> list[DrawnBox]:
    """The boxes the sweep found on slice ``index``, as the viewers draw them.

    Args:
        sweep: The sweep result.
        index: The slice shown (``None`` or a slice not swept: no boxes).
        image_size: (width, height) of the slice in pixels.
        pixel_spacing: (row, column) mm per pixel, for sizes in mm.
        hidden: Ids of findings toggled off: their boxes are not visible.
    """
    swept = sweep.at(index) if index is not None else None
    if swept is None:
        return []
    hidden = set(hidden)
    labels = sweep.labels
    drawn = []
    for item in swept.boxes:
        finding = item.finding
        box = Box.from_pixels(_name(item), item.box, image_size, pixel_spacing)
        detail = box_detail(box, pixel_spacing)
        if finding is not None:
            detail += f"\n3D finding #{finding.id}: slices {finding.slices_text}"
            if finding.extent_mm is not None:
                detail += f", {finding.extent_text}"
        else:
            detail += "\nnot linked to a 3D finding"
        canvas = {
            "label": box.label,
            "x1": box.x1,
            "y1": box.y1,
            "x2": box.x2,
            "y2": box.y2,
            "color": colour_for(item.label, labels),
            "visible": finding is None or finding.id not in hidden,
            "detail": detail,
            "finding": None if finding is None else finding.id,
        }
        drawn.append(DrawnBox(item, box, canvas))
    return drawn


def finding_rows(sweep: VolumeSweep) -> list[dict[str, Any]]:
    """The findings list as the MCP App viewer shows it: one row of texts per finding.

    Each row has ``id``, ``label``, ``color``, ``slices`` (``"5–11"``), ``key_slice``,
    ``extent`` (mm), ``volume`` (the bounding estimate), ``centre`` (mm in ``frame``),
    ``frame`` and ``isolated``: the same texts as the findings table.
    """
    labels = sweep.labels
    return [
        {
            "id": f.id,
            "label": f.label,
            "color": colour_for(f.label, labels),
            "slices": f.slices_text,
            "key_slice": f.key_slice,
            "extent": f.extent_text,
            "volume": f.volume_text,
            "centre": f.centre_text,
            "frame": sweep.frame,
            "isolated": f.isolated,
        }
        for f in sweep.findings
    ]


def slice_status(sweep: VolumeSweep, index: int | None, word: str = "Slice") -> str | None:
    """Why slice ``index`` has no boxes to show, when that is not the answer itself:
    ``"Slice 17 was not swept."`` or ``"Slice 33 failed: ..."``; ``None`` otherwise."""
    if index is None:
        return None
    swept = sweep.at(index)
    if swept is None:
        return f"{word} {index} was not swept."
    if swept.error:
        return f"{word} {index} failed: {swept.error}"
    return None


def sweep_notes(sweep: VolumeSweep) -> list[str]:
    """What a viewer warns about, as plain text: the slices that failed, then the
    sweep's own warnings (uneven spacing, missing slices, gantry tilt, ...)."""
    failed = [s.slice for s in sweep.slices if s.error]
    notes = [f"{len(failed)} slice(s) failed: {_runs(failed)}"] if failed else []
    return notes + list(sweep.warnings)


def _name(item: SliceBox) -> str:
    return item.finding.name if item.finding is not None else item.label


def _runs(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` as ``"3–5, 9"``: a long failed stretch stays one short item."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)


# -- reading ------------------------------------------------------------------------------


def _finding(data: Mapping[str, Any], position: int) -> VolumeFinding:
    where = f"findings[{position}]"
    first, last = checked_numbers(data.get("slice_range"), f"{where}.slice_range", 2, int)
    boxes = {int(b["slice"]): checked_box(b["box"], where) for b in data.get("boxes") or []}
    extent = data.get("extent_mm")
    centre = data.get("center_mm")
    volume = data.get("volume_ml")
    return VolumeFinding(
        id=int(data.get("id", position)),
        label=str(data.get("label") or "finding"),
        slice_range=(first, last),
        key_slice=int(data.get("key_slice", first)),
        boxes=boxes,
        extent_mm=checked_numbers(extent, f"{where}.extent_mm", 3, float) if extent else None,
        volume_ml=None if volume is None else float(volume),
        center_mm=checked_numbers(centre, f"{where}.center_mm", 3, float) if centre else None,
        isolated=bool(data.get("isolated", first == last)),
    )


def _slice(
    data: Mapping[str, Any], position: int, findings: list[VolumeFinding], count: int
) -> SliceResult:
    where = f"per_slice[{position}]"
    index = int(data["slice"])
    check_slice(index, count, where)
    # the findings' boxes on this slice, each claimed by at most one per-slice box
    unclaimed = [(f, f.boxes[index]) for f in findings if index in f.boxes]
    boxes = []
    for item in data.get("boxes") or []:
        label = str(item.get("label") or "finding")
        box = checked_box(item.get("box"), where)
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
