"""ImageViewer: an image with labelled, colour-coded boxes and the controls to read it.

Each finding can be toggled; hovering or clicking a box shows its label and corners in
original pixels (and mm when the pixel spacing is known). Clinical images get window
presets and width/level sliders that re-render from the raw values (HU for CT) without
reloading, and volumes and series get a slice slider.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np

from medmo_agent.box_display import canvas_boxes
from medmo_agent.errors import MedmoError
from medmo_agent.types import Box, MedImage

from .canvas import BoxCanvas, box_detail, colour_for, png_bytes
from .jobs import describe_error
from .render import error_html, escape

__all__ = ["ImageViewer", "Loader"]

#: Loads an image argument with display options, like ``Toolkit.load``.
Loader = Callable[..., MedImage]

_CUSTOM = "custom"


def _default_loader() -> Loader:
    from .session import get_session

    return get_session().load


class ImageViewer(widgets.VBox):
    """Show an image with boxes; toggle findings, re-window, change slice, zoom, export.

    Args:
        image: A loaded :class:`MedImage`, or anything ``loader`` accepts (a path, a
            DICOM series folder, a data URI, a ``medmo://`` handle).
        boxes: Boxes in original-image pixels.
        title: A heading shown above the image.
        loader: Loads an image argument with ``window``/``slice``/``frame``/``plane``
            keywords; defaults to the notebook session's (so allowed folders and caps apply).
        max_height: Height of the image area in screen pixels when fitted.
    """

    def __init__(
        self,
        image: MedImage | str | os.PathLike[str],
        boxes: Sequence[Box] = (),
        *,
        title: str | None = None,
        loader: Loader | None = None,
        max_height: int = 520,
    ):
        self._loader = loader
        if not isinstance(image, MedImage):
            image = self.loader(image)
        self.image: MedImage = image
        self.boxes: list[Box] = list(boxes)
        #: The slice or frame the boxes were found on; they are hidden on other slices.
        self.box_position = self._position(image)
        self._updating = False

        self.title = widgets.HTML(f"<b>{escape(title)}</b>" if title else "")
        self.canvas = BoxCanvas(max_height=max_height)
        self.info = widgets.HTML(self._info_text(None))
        self.status = widgets.HTML("")
        self.finding_toggles: list[widgets.Checkbox] = []
        self.findings = widgets.VBox(layout=widgets.Layout(max_height=f"{max_height}px"))
        self.findings.layout.overflow = "auto"

        self.window_preset = widgets.Dropdown(description="Window", layout={"width": "220px"})
        self.window_width = widgets.FloatSlider(
            description="Width",
            min=1,
            max=4000,
            step=1,
            continuous_update=False,
            layout={"width": "320px"},
        )
        self.window_level = widgets.FloatSlider(
            description="Level",
            min=-1500,
            max=3000,
            step=1,
            continuous_update=False,
            layout={"width": "320px"},
        )
        self.window_box = widgets.HBox(
            [self.window_preset, self.window_width, self.window_level],
            layout=widgets.Layout(flex_flow="row wrap"),
        )
        self.slice_slider = widgets.IntSlider(
            description="Slice", min=0, max=0, continuous_update=False, layout={"width": "420px"}
        )
        self.slice_box = widgets.HBox([self.slice_slider])

        self.fit_button = widgets.Button(
            description="Fit", tooltip="Fit to the cell", icon="expand"
        )
        self.zoom_in_button = widgets.Button(description="", tooltip="Zoom in", icon="search-plus")
        self.zoom_out_button = widgets.Button(
            description="", tooltip="Zoom out", icon="search-minus"
        )
        self.export_button = widgets.Button(
            description="Export PNG", tooltip="Download the image with its boxes", icon="download"
        )
        for button in (self.zoom_in_button, self.zoom_out_button):
            button.layout.width = "40px"
        self.toolbar = widgets.HBox(
            [self.fit_button, self.zoom_out_button, self.zoom_in_button, self.export_button]
        )

        self.fit_button.on_click(lambda _: self.fit())
        self.zoom_in_button.on_click(lambda _: self.zoom_by(1.25))
        self.zoom_out_button.on_click(lambda _: self.zoom_by(0.8))
        self.export_button.on_click(lambda _: self.export())
        self.window_preset.observe(self._on_preset, names="value")
        self.window_width.observe(self._on_window_slider, names="value")
        self.window_level.observe(self._on_window_slider, names="value")
        self.slice_slider.observe(self._on_slice, names="value")
        self.canvas.observe(self._on_pointer, names=["selected", "hovered"])

        side = widgets.VBox(
            [widgets.HTML("<b>Findings</b>"), self.findings, self.info],
            layout=widgets.Layout(width="300px", margin="0 0 0 12px"),
        )
        main = widgets.HBox(
            [widgets.VBox([self.canvas], layout=widgets.Layout(flex="1 1 auto")), side]
        )
        super().__init__(
            [self.title, main, self.window_box, self.slice_box, self.toolbar, self.status]
        )
        self.add_class("medmo-image-viewer")
        self._setup_window_controls()
        self._setup_slice_controls()
        self._build_findings()
        self._show(self.image)

    # -- construction helpers -------------------------------------------------------------

    @classmethod
    def from_result(
        cls,
        result: Any,
        image: MedImage | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> ImageViewer:
        """A viewer for a grounding or detection result (its boxes on its image).

        Args:
            result: A result with ``boxes`` and ``image.handle`` (``GroundingResult``,
                ``DetectionResult``).
            image: The image, when the result's handle cannot be reloaded here.
            **kwargs: Passed to the constructor.
        """
        if image is None:
            ref = getattr(result, "image", None)
            handle = getattr(ref, "handle", None) if ref is not None else None
            if handle is None:
                raise MedmoError(
                    "This result does not say which image it is about.",
                    fix="Pass the image too: ImageViewer.from_result(result, image).",
                )
            image = handle
        kwargs.setdefault("title", _result_title(result))
        return cls(image, list(getattr(result, "boxes", []) or []), **kwargs)

    @property
    def loader(self) -> Loader:
        """The function that loads images and re-slices volumes."""
        if self._loader is None:
            self._loader = _default_loader()
        return self._loader

    @staticmethod
    def _position(image: MedImage) -> int | None:
        meta = image.meta
        return meta.slice if meta.slice is not None else meta.frame

    def _setup_window_controls(self) -> None:
        from medmo_agent.imaging.windowing import PRESETS

        raw = self.image.raw
        if raw is None:
            self.window_box.layout.display = "none"
            return
        finite = np.asarray(raw, dtype=np.float64)
        lo, hi = float(np.nanmin(finite)), float(np.nanmax(finite))
        span = max(hi - lo, 1.0)
        window = self.image.meta.window
        width = (window.width if window and window.width else span) or span
        level = window.level if window and window.level is not None else (lo + hi) / 2
        self._updating = True
        try:
            self.window_width.max = max(4000.0, span * 2, width)
            self.window_level.min = min(-1500.0, lo, level)
            self.window_level.max = max(3000.0, hi, level)
            current = f"{window.name} (as loaded)" if window and window.name else "as loaded"
            self._loaded_window = (float(width), float(level))
            self.window_preset.options = [
                current,
                *[f"{name} ({w:g}/{lvl:g})" for name, (w, lvl) in PRESETS.items()],
                _CUSTOM,
            ]
            self._preset_values = {
                current: self._loaded_window,
                **{f"{n} ({w:g}/{lv:g})": (w, lv) for n, (w, lv) in PRESETS.items()},
            }
            self.window_preset.value = current
            self.window_width.value = float(width)
            self.window_level.value = float(level)
        finally:
            self._updating = False

    def _setup_slice_controls(self) -> None:
        meta = self.image.meta
        count = meta.num_slices if meta.slice is not None else meta.num_frames
        position = self._position(self.image)
        if not count or count <= 1 or position is None:
            self.slice_box.layout.display = "none"
            return
        self.slice_slider.description = "Slice" if meta.slice is not None else "Frame"
        self._updating = True
        try:
            self.slice_slider.max = count - 1
            self.slice_slider.value = position
        finally:
            self._updating = False

    def _build_findings(self) -> None:
        labels = [b.label for b in self.boxes]
        self.finding_toggles = []
        rows = []
        for i, box in enumerate(self.boxes):
            colour = colour_for(box.label, labels)
            toggle = widgets.Checkbox(
                value=True,
                description=f"{i + 1}. {box.label}",
                indent=False,
                layout=widgets.Layout(width="auto"),
            )
            toggle.observe(lambda _change: self._push_boxes(), names="value")
            swatch = widgets.HTML(
                f'<span style="display:inline-block;width:12px;height:12px;'
                f'background:{colour};border-radius:2px;margin-top:6px"></span>',
                layout=widgets.Layout(width="18px"),
            )
            self.finding_toggles.append(toggle)
            rows.append(widgets.HBox([swatch, toggle]))
        if not rows:
            rows = [widgets.HTML("<i>No boxes.</i>")]
        self.findings.children = rows

    # -- state ----------------------------------------------------------------------------

    @property
    def visible_boxes(self) -> list[Box]:
        """The boxes currently drawn (toggled on, and on the slice they were found on)."""
        if self._position(self.image) != self.box_position:
            return []
        return [b for b, t in zip(self.boxes, self.finding_toggles, strict=True) if t.value]

    def set_boxes(self, boxes: Sequence[Box]) -> None:
        """Replace the boxes (e.g. with a new result on the slice shown now)."""
        self.boxes = list(boxes)
        self.box_position = self._position(self.image)
        self._build_findings()
        self._push_boxes()

    def _push_boxes(self) -> None:
        on_slice = self._position(self.image) == self.box_position
        self.canvas.boxes = canvas_boxes(
            self.boxes,
            self.image.meta.pixel_spacing,
            visible=[on_slice and toggle.value for toggle in self.finding_toggles],
        )
        if self.boxes and not on_slice:
            where = self.slice_slider.description.lower()
            self.status.value = (
                f"<span style='color:#777'>The boxes were found on {where} "
                f"{self.box_position}; move back to it to see them.</span>"
            )
        elif not self.status.value.startswith("<div class='medmo-error'"):
            self.status.value = ""

    def _show(self, image: MedImage, pixels: np.ndarray | None = None) -> None:
        self.image = image
        pixels = image.pixels if pixels is None else pixels
        key = f"{image.meta.source}#{self._position(image)}"
        self.canvas.export_name = _export_name(image)
        self.canvas.set_pixels(pixels, key=key)
        self._push_boxes()

    def _info_text(self, index: int | None) -> str:
        meta = self.image.meta
        w, h = meta.original_size
        parts = [f"{w} × {h} px"]
        if meta.pixel_spacing:
            row, col = meta.pixel_spacing
            parts.append(f"{w * col:.0f} × {h * row:.0f} mm ({col:.3g} × {row:.3g} mm/px)")
        if meta.modality:
            parts.insert(0, meta.modality)
        head = " · ".join(parts)
        if index is None or not 0 <= index < len(self.boxes):
            return f"<div class='medmo-info'><small>{escape(head)}</small></div>"
        detail = box_detail(self.boxes[index], meta.pixel_spacing).replace("\n", "<br>")
        return (
            f"<div class='medmo-info'><small>{escape(head)}</small><br>"
            f"<b>Box {index + 1}</b>: {detail}</div>"
        )

    # -- callbacks ------------------------------------------------------------------------

    def _on_pointer(self, _change: dict[str, Any]) -> None:
        index = self.canvas.selected if self.canvas.selected >= 0 else self.canvas.hovered
        self.info.value = self._info_text(index if index >= 0 else None)

    def _on_preset(self, change: dict[str, Any]) -> None:
        if self._updating or change["new"] == _CUSTOM:
            return
        width, level = self._preset_values[change["new"]]
        self._updating = True
        try:
            self.window_width.value = width
            self.window_level.value = level
        finally:
            self._updating = False
        self._rewindow()

    def _on_window_slider(self, _change: dict[str, Any]) -> None:
        if self._updating:
            return
        self._updating = True
        try:
            self.window_preset.value = _CUSTOM
        finally:
            self._updating = False
        self._rewindow()

    def set_window(self, width: float, level: float) -> None:
        """Re-render the image with a window (width, level) in raw units (HU for CT)."""
        self._updating = True
        try:
            self.window_preset.value = _CUSTOM
            self.window_width.value = width
            self.window_level.value = level
        finally:
            self._updating = False
        self._rewindow()

    def _rewindow(self) -> None:
        from medmo_agent.imaging.windowing import apply_window

        raw = self.image.raw
        if raw is None:
            return
        try:
            grey = apply_window(raw, self.window_width.value, self.window_level.value)
        except MedmoError as exc:
            self.show_error(exc)
            return
        pixels = np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey
        if (self.image.meta.photometric or "").upper() == "MONOCHROME1":
            pixels = 255 - pixels
        self._show(self.image, pixels)

    @property
    def window(self) -> tuple[float, float] | None:
        """The (width, level) shown now, or ``None`` for images without raw values."""
        if self.image.raw is None:
            return None
        return (self.window_width.value, self.window_level.value)

    def _on_slice(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        self.go_to(change["new"])

    def go_to(self, position: int) -> None:
        """Show another slice (volumes, series) or frame (multi-frame files)."""
        meta = self.image.meta
        opts: dict[str, Any] = {"window": self.window}
        if meta.slice is not None:
            opts["slice"] = position
            opts["plane"] = meta.plane  # (a 4D volume's loader keeps its time point)
        else:
            opts["frame"] = position
        source = self.image.handle or meta.source
        try:
            image = self.loader(self.image if self.image.volume is not None else source, **opts)
        except Exception as exc:  # shown in the widget; the kernel stays usable
            self.show_error(exc)
            return
        self.clear_error()
        self._updating = True
        try:
            self.slice_slider.value = position
        finally:
            self._updating = False
        self._show(image)
        self.info.value = self._info_text(None)

    def show_error(self, exc: BaseException | str) -> None:
        """Show an error in red under the image."""
        message = exc if isinstance(exc, str) else describe_error(exc)
        self.status.value = error_html(message)

    def clear_error(self) -> None:
        """Remove an error message."""
        self.status.value = ""

    # -- zoom and export ------------------------------------------------------------------

    def fit(self) -> None:
        """Fit the image to the cell."""
        self.canvas.zoom = 0.0

    def zoom_by(self, factor: float) -> None:
        """Zoom relative to the current size (fitted: as tall as ``max_height``, in a cell
        taken to be 800 px wide, which scales small images up)."""
        current = self.canvas.zoom
        if current <= 0:
            width = max(self.canvas.image_width, 1)
            height = max(self.canvas.image_height, 1)
            current = min(self.canvas.max_height / height, 800 / width)
        self.canvas.zoom = float(min(max(current * factor, 0.05), 16.0))

    def export(self) -> None:
        """Download the image with its visible boxes as PNG (in the browser)."""
        self.canvas.export_count += 1

    def to_png(self, path: str | os.PathLike[str] | None = None) -> bytes:
        """The image as shown now (window, slice) with its visible boxes, as PNG bytes.

        Args:
            path: Also write the PNG to this file.
        """
        from PIL import Image

        from medmo_agent.imaging.overlay import draw_boxes

        raw = self.image.raw
        if raw is not None and self.window is not None:
            from medmo_agent.imaging.windowing import apply_window

            grey = apply_window(raw, *self.window)
            pixels = np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey
        else:
            pixels = self.image.pixels
        drawn = draw_boxes(Image.fromarray(pixels), self.visible_boxes)
        data = png_bytes(np.asarray(drawn))
        if path is not None:
            with open(path, "wb") as fh:
                fh.write(data)
        return data


def _export_name(image: MedImage) -> str:
    base = os.path.basename(str(image.meta.source).rstrip("/")) or "image"
    if base.startswith("data:") or base.startswith("medmo:"):
        base = "image"
    stem = base.split(".")[0] or "image"
    position = ImageViewer._position(image)
    return f"{stem}{'' if position is None else f'-{position}'}-boxes.png"


def _result_title(result: Any) -> str:
    boxes = getattr(result, "boxes", None) or []
    task = getattr(result, "task", "result")
    return f"{task}: {len(boxes)} box(es)"
