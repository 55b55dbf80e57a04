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
from medmo_agent.volume.display import (
    SliceBox,
    VolumeFinding,
    VolumeSweep,
    findings_table_html,
    isolated_badge,
    slice_boxes,
    slice_status,
    sweep_notes,
)

from .canvas import colour_for
from .render import escape
from .viewer import ImageViewer, Loader

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
        self._labels = self.sweep.labels
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
            image = self.loader(first, slice=start, plane=plane, frame=sweep.time_point)
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
        drawn = slice_boxes(
            self.sweep,
            index,
            self.image.size,
            self.image.meta.pixel_spacing,
            self.hidden_findings,
        )
        self.slice_boxes = [d.item for d in drawn]
        self.boxes = [d.box for d in drawn]
        selected = next(
            (
                i
                for i, d in enumerate(drawn)
                if d.item.finding is not None and d.item.finding.id == self.highlighted
            ),
            -1,
        )
        self._syncing = True
        try:
            with self.canvas.hold_sync():
                self.canvas.boxes = [d.canvas for d in drawn]
                self.canvas.selected = selected
        finally:
            self._syncing = False
        shown = sum(1 for d in drawn if d.canvas["visible"])
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
    status = slice_status(sweep, index, word)
    if status is not None:
        failed = sweep.at(index) is not None
        kind = "class='medmo-slice-error' style='color:#cf222e'" if failed else ""
        kind = kind or "style='color:#6e7781'"
        return f"<span {kind}>{escape(status)}</span>"
    more = f", {hidden} hidden" if hidden else ""
    return f"<span style='color:#57606a'>{word} {index}: {shown} box(es){more}</span>"


def _notes_html(sweep: VolumeSweep) -> str:
    parts = [escape(note) for note in sweep_notes(sweep)]
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
