"""VolumeViewer: a volume sweep's findings in 3D, slice by slice, over the volume itself.

The image viewer's slice slider now shows each slice's boxes from the sweep; the findings
list has one row per 3D finding (its slices, key slice and extent in mm) whose button jumps
to the key slice and highlights the finding's boxes, and whose tick box hides the finding
on every slice; the findings table gives extents, the bounding volume estimate and the
centre in patient coordinates. Isolated (single-slice) findings are flagged everywhere
they are listed. The canvas is the image viewer's own: nothing new runs in the browser.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

import ipywidgets as widgets

from medmo_agent.errors import InputError, MedmoError
from medmo_agent.types import Box, MedImage

from .canvas import box_detail, colour_for
from .render import escape
from .viewer import ImageViewer, Loader
from .volume_result import (
    SliceBox,
    VolumeFinding,
    VolumeSweep,
    findings_table_html,
    isolated_badge,
)

__all__ = ["VolumeViewer"]


class VolumeViewer(ImageViewer):
    """A volume with a sweep result's boxes on every slice, its 3D findings and their table.

    Args:
        result: A volume sweep result: the volume task's result (anything with
            ``to_dict()``) or that dict.
        volume: The volume the sweep ran on: a path (NIfTI file, DICOM series folder,
            multi-frame DICOM), a ``medmo://`` handle or a loaded :class:`MedImage`.
            Defaults to the result's ``handle`` when it has one.
        title: A heading (default: the task, the number of findings and the source).
        loader: Loads and re-slices the volume (default: the notebook session's).
        max_height: Height of the image area in screen pixels when fitted.

    Raises:
        InputError: The result is not a volume sweep result, or the volume is not the one
            the sweep ran on (a different number of slices or slice size).
    """

    def __init__(
        self,
        result: Any,
        volume: MedImage | str | os.PathLike[str] | None = None,
        *,
        title: str | None = None,
        loader: Loader | None = None,
        max_height: int = 520,
    ):
        self.sweep = VolumeSweep.read(result)
        #: The id of the finding whose boxes are highlighted, or ``None``.
        self.highlighted: int | None = None
        #: The boxes drawn on the slice shown now, with the findings they belong to.
        self.slice_boxes: list[SliceBox] = []
        self.finding_buttons: dict[int, widgets.Button] = {}
        self._syncing = False
        labels = [f.label for f in self.sweep.findings]
        labels += [b.label for s in self.sweep.slices for b in s.boxes]
        self._labels = list(dict.fromkeys(labels))
        self._loader = loader
        image = self._load_volume(_volume_argument(self.sweep, volume))
        self.slice_note = widgets.HTML("")
        self.table = widgets.HTML("")
        self.notes = widgets.HTML(_notes_html(self.sweep))
        super().__init__(
            image, [], title=title or _title(self.sweep), loader=loader, max_height=max_height
        )
        self.add_class("medmo-volume-viewer")
        self.slice_box.children = [self.slice_slider, self.slice_note]
        self.canvas.observe(self._on_canvas_selected, names="selected")
        above = tuple(cast(Any, self).children)  # traitlets leave mypy without its type
        self.children = [
            *above,
            widgets.HTML("<b>Findings in 3D</b>"),
            self.table,
            self.notes,
        ]
        self._refresh_table()

    @classmethod
    def from_result(
        cls,
        result: Any,
        image: MedImage | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> VolumeViewer:
        """A viewer for a volume sweep result over its volume (``image``)."""
        return cls(result, image, **kwargs)

    # -- loading --------------------------------------------------------------------------

    def _load_volume(self, volume: MedImage | str | os.PathLike[str]) -> MedImage:
        sweep = self.sweep
        first = self.loader(volume)
        meta = first.meta
        start = sweep.start_slice
        if meta.slice is not None:
            # a series may not know its plane; naming it again would be refused
            plane = sweep.plane if sweep.plane != (meta.plane or sweep.plane) else None
            image = self.loader(first, slice=start, plane=plane)
            count = image.meta.num_slices
        elif meta.frame is not None:
            image = self.loader(first, frame=start)
            count = image.meta.num_frames
        else:
            raise InputError(
                f"{meta.source} is a single image, not the volume this sweep ran on.",
                input=meta.source,
                fix="Pass the NIfTI file, DICOM series folder or multi-frame DICOM the "
                "volume task was given.",
            )
        slices, rows, cols = sweep.shape
        if (count, image.meta.original_size) != (slices, (cols, rows)):
            width, height = image.meta.original_size
            raise InputError(
                f"{meta.source} has {count} {sweep.plane} slices of {width} × {height} px, "
                f"but the sweep ran on {slices} slices of {cols} × {rows} px.",
                input=meta.source,
                fix="Pass the volume the sweep ran on, in the same plane.",
            )
        return image

    # -- findings list and table ----------------------------------------------------------

    def _build_findings(self) -> None:
        self.finding_toggles = []
        self.finding_buttons = {}
        rows: list[widgets.Widget] = []
        for finding in self.sweep.findings:
            toggle = widgets.Checkbox(
                value=True,
                description=f"#{finding.id} {finding.label}",
                indent=False,
                tooltip="Show or hide this finding on every slice",
                layout=widgets.Layout(width="auto", flex="1 1 auto"),
            )
            toggle.observe(lambda _change: self._on_toggle(), names="value")
            go = widgets.Button(
                description=f"key slice {finding.key_slice}",
                tooltip=f"Go to slice {finding.key_slice}, where the box is largest",
                icon="crosshairs",
                layout=widgets.Layout(width="auto"),
            )
            go.add_class("medmo-finding-go")
            go.on_click(lambda _b, fid=finding.id: self.show_finding(fid))
            colour = colour_for(finding.label, self._labels)
            swatch = widgets.HTML(
                f'<span style="display:inline-block;width:12px;height:12px;'
                f'background:{colour};border-radius:2px;margin-top:6px"></span>',
                layout=widgets.Layout(width="18px"),
            )
            badge = f" {isolated_badge()}" if finding.isolated else ""
            detail = widgets.HTML(
                f"<small>slices {finding.slices_text} · {finding.extent_text}{badge}</small>",
                layout=widgets.Layout(margin="0 0 4px 18px"),
            )
            row = widgets.VBox([widgets.HBox([swatch, toggle, go]), detail])
            row.add_class("medmo-finding")
            if finding.isolated:
                row.add_class("medmo-finding-isolated")
            self.finding_toggles.append(toggle)
            self.finding_buttons[finding.id] = go
            rows.append(row)
        if not rows:
            rows = [widgets.HTML("<i>No findings in this volume.</i>")]
        self.findings.children = rows

    def _refresh_table(self) -> None:
        self.table.value = findings_table_html(self.sweep, self.hidden_findings)

    @property
    def hidden_findings(self) -> list[int]:
        """Ids of the findings toggled off."""
        return [
            f.id
            for f, toggle in zip(self.sweep.findings, self.finding_toggles, strict=True)
            if not toggle.value
        ]

    def set_finding_visible(self, finding_id: int, visible: bool = True) -> None:
        """Show or hide a finding's boxes on every slice."""
        self._toggle_for(self.sweep.finding(finding_id)).value = visible

    def show_finding(self, finding_id: int) -> None:
        """Go to a finding's key slice and highlight its boxes (showing it if hidden)."""
        finding = self.sweep.finding(finding_id)
        self.highlighted = finding.id
        self._syncing = True
        try:
            self._toggle_for(finding).value = True
        finally:
            self._syncing = False
        self._mark_active_row()
        self._refresh_table()
        if self._position(self.image) == finding.key_slice:
            self._push_boxes()
        else:
            self.go_to(finding.key_slice)

    def _toggle_for(self, finding: VolumeFinding) -> widgets.Checkbox:
        return self.finding_toggles[self.sweep.findings.index(finding)]

    def _mark_active_row(self) -> None:
        for fid, button in self.finding_buttons.items():
            button.button_style = "info" if fid == self.highlighted else ""

    # -- boxes on the slice shown ---------------------------------------------------------

    @property
    def visible_boxes(self) -> list[Box]:
        """The boxes drawn on the slice shown now (findings toggled off are left out)."""
        hidden = set(self.hidden_findings)
        return [
            box
            for box, item in zip(self.boxes, self.slice_boxes, strict=True)
            if item.finding is None or item.finding.id not in hidden
        ]

    def set_boxes(self, boxes: Sequence[Box]) -> None:
        """Not available: a volume viewer's boxes come from its sweep result."""
        raise MedmoError(
            "A VolumeViewer draws the boxes of its sweep result; they cannot be replaced.",
            fix="Make a new VolumeViewer with the new result, or use ImageViewer for boxes "
            "on one slice.",
        )

    def _push_boxes(self) -> None:
        index = self._position(self.image)
        swept = self.sweep.at(index) if index is not None else None
        self.slice_boxes = list(swept.boxes) if swept is not None else []
        size = self.image.size
        spacing = self.image.meta.pixel_spacing
        self.boxes = [
            Box.from_pixels(_name(item), item.box, size, spacing) for item in self.slice_boxes
        ]
        hidden = set(self.hidden_findings)
        drawn = []
        selected = -1
        for i, (box, item) in enumerate(zip(self.boxes, self.slice_boxes, strict=True)):
            finding = item.finding
            detail = box_detail(box, spacing)
            if finding is not None:
                detail += f"\n3D finding #{finding.id}: slices {finding.slices_text}"
                if finding.extent_mm is not None:
                    detail += f", {finding.extent_text}"
                if finding.id == self.highlighted:
                    selected = i
            else:
                detail += "\nnot linked to a 3D finding"
            drawn.append(
                {
                    "label": box.label,
                    "x1": box.x1,
                    "y1": box.y1,
                    "x2": box.x2,
                    "y2": box.y2,
                    "color": colour_for(item.label, self._labels),
                    "visible": finding is None or finding.id not in hidden,
                    "detail": detail,
                }
            )
        self._syncing = True
        try:
            with self.canvas.hold_sync():
                self.canvas.boxes = drawn
                self.canvas.selected = selected
        finally:
            self._syncing = False
        shown = sum(1 for b in drawn if b["visible"])
        word = self.slice_slider.description or "Slice"
        self.slice_note.value = _slice_note(self.sweep, index, word, shown, len(drawn) - shown)

    def _info_text(self, index: int | None) -> str:
        text = super()._info_text(index)
        if index is None or not 0 <= index < len(self.slice_boxes):
            return text
        finding = self.slice_boxes[index].finding
        if finding is None:
            return text
        extra = f"<br><b>3D finding #{finding.id}</b>: {escape(finding.label)}, slices "
        extra += f"{finding.slices_text}, key slice {finding.key_slice}, {finding.extent_text}"
        if finding.isolated:
            extra += f" {isolated_badge()}"
        return text.removesuffix("</div>") + extra + "</div>"

    # -- callbacks ------------------------------------------------------------------------

    def _on_toggle(self) -> None:
        if self._syncing:
            return
        self._push_boxes()
        self._refresh_table()

    def _on_canvas_selected(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        index = change["new"]
        item = self.slice_boxes[index] if 0 <= index < len(self.slice_boxes) else None
        self.highlighted = item.finding.id if item is not None and item.finding else None
        self._mark_active_row()


def _name(item: SliceBox) -> str:
    return item.finding.name if item.finding is not None else item.label


def _volume_argument(
    sweep: VolumeSweep, volume: MedImage | str | os.PathLike[str] | None
) -> MedImage | str | os.PathLike[str]:
    if volume is not None:
        return volume
    if sweep.handle:
        return sweep.handle
    raise InputError(
        "This volume sweep result does not say where its volume is.",
        input=sweep.source or "result",
        fix="Pass the volume too: VolumeViewer(result, 'study/') with the path the sweep ran on.",
    )


def _title(sweep: VolumeSweep) -> str:
    task = sweep.task or "volume sweep"
    where = f" — {sweep.source}" if sweep.source else ""
    return (
        f"{task}: {len(sweep.findings)} finding(s) on {len(sweep.slices)} {sweep.plane} "
        f"slice(s){where}"
    )


def _slice_note(sweep: VolumeSweep, index: int | None, word: str, shown: int, hidden: int) -> str:
    if index is None:
        return ""
    swept = sweep.at(index)
    if swept is None:
        return f"<span style='color:#6e7781'>{word} {index} was not swept.</span>"
    if swept.error:
        return (
            f"<span class='medmo-slice-error' style='color:#cf222e'>{word} {index} failed: "
            f"{escape(swept.error)}</span>"
        )
    more = f", {hidden} hidden" if hidden else ""
    return f"<span style='color:#57606a'>{word} {index}: {shown} box(es){more}</span>"


def _notes_html(sweep: VolumeSweep) -> str:
    parts = []
    failed = [s.slice for s in sweep.slices if s.error]
    if failed:
        parts.append(f"{len(failed)} slice(s) failed: {_runs(failed)}")
    parts += [escape(w) for w in sweep.warnings]
    html = ""
    if parts:
        items = "".join(f"<li>{p}</li>" for p in parts)
        html += f"<ul class='medmo-volume-warnings' style='color:#7d4e00'>{items}</ul>"
    if sweep.study_read:
        html += (
            "<div class='medmo-study-read' style='white-space:pre-wrap;margin-top:6px'>"
            f"<b>Study read</b>: {escape(sweep.study_read)}</div>"
        )
    return html


def _runs(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` as ``"3–5, 9"``: a long failed stretch stays one short item."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)
