"""The interactive image viewer as an MCP App (extension ``io.modelcontextprotocol/ui``).

Clients that render MCP Apps (Claude, ChatGPT, VS Code, Goose) show the result of a
viewer task (``ground``, ``detect``, ...: every task declared with ``viewer``) in a
sandboxed view: the image with its boxes, findings to toggle, coordinates in px and mm
under the pointer, window presets, a slice slider and export. The view is one
self-contained HTML document built from the same front-end files as the Jupyter
``ImageViewer`` (``jupyter_ext/static``), inlined because the default app sandbox loads
nothing from outside.

The view draws the boxes from the tool result's structured content and asks for the
picture itself through :data:`VIEW_TOOL`, an app-only tool (hidden from the model) that
re-renders the image a held result is about, with another window or slice, as a PNG.
For a volume sweep (``ground_volume``) that tool also sends the boxes the sweep found on
the slice shown, each tied to its 3D finding, and the findings list, read by the same
code as the Jupyter ``VolumeViewer`` (:mod:`medmo_agent.volume.display`). Clients
without Apps get the same text and overlay (or overview) PNG as before.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from mcp.server.apps import Apps
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from medmo_agent import __version__
from medmo_agent.errors import InputError, MedmoError
from medmo_agent.tasks.params import FrameParam, SliceParam, WindowParam

from .audit import caller_of
from .errors import tool_error_result
from .runner import image_source
from .state import lifespan_state
from .store import RESULT_URI_PREFIX

if TYPE_CHECKING:
    from medmo_agent.volume.display import VolumeSweep

    from .state import ServerState

__all__ = ["VIEWER_URI", "VIEW_TOOL", "ViewData", "viewer_extension", "viewer_html", "viewer_meta"]

#: The view's resource: one HTML document for every viewer task.
VIEWER_URI = "ui://medmo/viewer.html"
#: The app-only tool the view calls to (re-)render the image of a held result.
VIEW_TOOL = "viewer_render"

_STATIC = Path(__file__).resolve().parents[1] / "jupyter_ext" / "static"
#: Inlined in this order: the canvas (shared with the Jupyter widget), the findings list
#: of a volume sweep, then the app.
_STYLES = ("canvas.css", "app.css")
_SCRIPTS = ("canvas.js", "volume.js", "app.js")


class WindowView(BaseModel):
    """The intensity window an image is shown with."""

    name: str | None = None
    width: float | None = None
    level: float | None = None


class FindingRow(BaseModel):
    """One 3D finding of a volume sweep as the findings list shows it (texts made by
    :func:`medmo_agent.volume.display.finding_rows`, as in the notebook's table)."""

    id: int
    label: str
    color: str = Field(description="The CSS colour of its boxes.")
    slices: str = Field(description="Its slice range, '5–11'.")
    key_slice: int = Field(description="The slice with its largest box.")
    extent: str = Field(description="Extent along columns, rows and slices, mm.")
    volume: str = Field(description="Bounding volume estimate, ml.")
    centre: str = Field(description="Centre in patient mm, in `frame`.")
    frame: str = Field(description="The patient frame: LPS (DICOM) or RAS (NIfTI).")
    isolated: bool = Field(description="Seen on one slice only.")


class VolumeView(BaseModel):
    """What the view shows of a volume sweep besides the slice's boxes."""

    first: int = Field(description="The first slice swept (the slider's start).")
    last: int = Field(description="The last slice swept (the slider's end).")
    start: int = Field(description="The slice to open on: the first finding's key slice.")
    findings: list[FindingRow] = Field(default_factory=list)
    status: str | None = Field(
        None, description="Why the slice shown has no answer: not swept, or failed."
    )
    notes: list[str] = Field(
        default_factory=list, description="Failed slices and the sweep's warnings."
    )
    study_read: str | None = None


class ViewData(BaseModel):
    """What the view needs to draw a held result's image (structured content of
    :data:`VIEW_TOOL`; the PNG itself is the tool result's image content)."""

    result_uri: str = Field(description="The held result whose image this is.")
    task: str = Field(description="The task of that result.")
    width: int = Field(description="Width of the image in original pixels (box space).")
    height: int = Field(description="Height of the image in original pixels.")
    modality: str | None = None
    pixel_spacing: tuple[float, float] | None = Field(
        None, description="(row, column) mm per pixel, when known."
    )
    window: WindowView | None = Field(None, description="The window shown now.")
    windowable: bool = Field(description="Whether the image can be re-windowed (raw values).")
    presets: list[WindowView] = Field(default_factory=list, description="Window presets.")
    axis: str | None = Field(None, description="'slice', 'frame', or None for 2-D images.")
    position: int | None = Field(None, description="The slice or frame shown now.")
    count: int | None = Field(None, description="How many slices or frames there are.")
    box_position: int | None = Field(
        None, description="The slice or frame the boxes were found on."
    )
    boxes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The result's boxes as the viewer draws them (colour, hover text); "
        "for a volume sweep, the boxes of the slice shown, each with its `finding` id.",
    )
    volume: VolumeView | None = Field(
        None, description="The findings of a volume sweep (None for a single image)."
    )
    export_name: str = Field(description="File name for an exported PNG.")


ResultParam = Annotated[
    str,
    Field(
        min_length=1,
        description="The medmo://results/<id> URI of the result whose image to render.",
    ),
]


def viewer_meta() -> dict[str, Any]:
    """The ``_meta`` a viewer task's tool carries: it renders in the viewer."""
    return {"ui": {"resourceUri": VIEWER_URI}}


@functools.cache
def viewer_html() -> str:
    """The view: one HTML document with the viewer's styles and scripts inlined.

    Raises:
        RuntimeError: A front-end file would end its inline block early.
    """
    styles = [(_STATIC / name).read_text(encoding="utf-8") for name in _STYLES]
    scripts = [(_STATIC / name).read_text(encoding="utf-8") for name in _SCRIPTS]
    for name, text in zip(_STYLES + _SCRIPTS, styles + scripts, strict=True):
        if "</script" in text.lower() or "</style" in text.lower():
            raise RuntimeError(f"{name} contains a closing tag and cannot be inlined")
    config = json.dumps({"viewTool": VIEW_TOOL, "version": __version__})
    css = "\n".join(styles)
    js = "\n".join(scripts)
    return (
        "<!doctype html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        "<title>MedMO viewer</title>\n"
        f"<style>\n{css}\n</style>\n</head>\n<body>\n<div id='medmo-app'></div>\n"
        f"<script type='application/json' id='medmo-config'>{config}</script>\n"
        f"<script type='module'>\n{js}\n</script>\n</body>\n</html>\n"
    )


def viewer_extension() -> Apps:
    """The MCP Apps extension: the view's resource and its app-only render tool."""
    apps = Apps()
    apps.add_html_resource(
        VIEWER_URI,
        viewer_html(),
        name="medmo-viewer",
        title="MedMO image viewer",
        description="The image of a ground or detect result with its boxes, or a volume "
        "sweep slice by slice with its 3D findings: toggle findings, jump to key slices, "
        "read coordinates in px and mm, change window and slice, export.",
        prefers_border=True,
    )
    apps.tool(
        resource_uri=VIEWER_URI,
        visibility=["app"],
        name=VIEW_TOOL,
        title="Render a result's image for the viewer",
        description="Render the image a held result is about, with another window or "
        "slice, as a PNG (used by the image viewer).",
        annotations=ToolAnnotations(
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )(render_view)
    return apps


async def render_view(
    ctx: Context,
    result: ResultParam,
    window: WindowParam = None,
    slice: SliceParam = None,
    frame: FrameParam = None,
) -> Annotated[CallToolResult, ViewData]:
    """Render the image of the held result ``result`` with a window, slice or frame."""
    state = lifespan_state(ctx)
    start = time.perf_counter()
    outcome, error_name = "error", None
    arguments = {"result": result, "window": window, "slice": slice, "frame": frame}
    try:
        # Loading and encoding take CPU time in proportion to the image: off the loop.
        view, png = await anyio.to_thread.run_sync(
            _render, state, result, {"window": window, "slice": slice, "frame": frame}
        )
        outcome = "ok"
        return CallToolResult(
            content=[
                TextContent(type="text", text=_caption(view)),
                ImageContent(
                    type="image", data=base64.b64encode(png).decode(), mime_type="image/png"
                ),
            ],
            structured_content=view.model_dump(mode="json"),
        )
    except MedmoError as exc:
        error_name = type(exc).__name__
        if state.settings.include_paths:
            return tool_error_result(exc)
        # a loader's error names the held image's file or folder, which may carry a
        # patient's name: shown as its label, as the tools show it
        return tool_error_result(exc, hide_paths=_held_paths(state, result))
    finally:
        if state.audit is not None:
            state.audit.record(
                VIEW_TOOL,
                {k: v for k, v in arguments.items() if v is not None},
                include_paths=state.settings.include_paths,
                seconds=time.perf_counter() - start,
                outcome=outcome,
                error=error_name,
                result_uri=result,
                caller=caller_of(ctx),
            )


def _render(state: ServerState, uri: str, opts: dict[str, Any]) -> tuple[ViewData, bytes]:
    from medmo_agent.box_display import canvas_boxes
    from medmo_agent.imaging.overlay import to_png_bytes
    from medmo_agent.imaging.windowing import PRESETS
    from medmo_agent.volume.display import finding_rows, slice_boxes, slice_status, sweep_notes

    if not uri.startswith(RESULT_URI_PREFIX):
        # the argument is not echoed: a path in it may carry a patient's name
        raise InputError(
            f"The image to render is given by a result URI ({RESULT_URI_PREFIX}<id>), "
            "not a file or handle.",
            input="result",
            fix=f"Pass the {RESULT_URI_PREFIX}<id> URI a ground or detect result carries.",
        )
    held = state.store.get(uri)
    sweep = _sweep_of(held)
    if sweep is not None and opts.get("slice") is None and opts.get("frame") is None:
        # a sweep opens on its first finding's key slice, not the slice it was loaded on
        # a multi-frame DICOM's frames are its slices; a 4D NIfTI keeps its time point
        held_meta = held.image.meta if held.image is not None else None
        framed = bool(held_meta and held_meta.slice is None and held_meta.frame is not None)
        opts = {**opts, "frame" if framed else "slice": sweep.start_slice}
    handle, load_opts = image_source(state, uri, opts)
    image = state.toolkit.load(handle, **load_opts)
    png = to_png_bytes(
        image, state.config.overlay_max_side, max_bytes=state.config.overlay_max_bytes
    )
    meta = image.meta
    axis = "slice" if meta.slice is not None else "frame" if meta.frame is not None else None
    position = meta.slice if meta.slice is not None else meta.frame
    found_on = held.image.meta if held.image is not None else None
    box_position = None
    if found_on is not None:
        box_position = found_on.slice if found_on.slice is not None else found_on.frame
    window = meta.window
    boxes = canvas_boxes(list(getattr(held, "boxes", []) or []), meta.pixel_spacing)
    volume = None
    if sweep is not None:
        boxes = [
            d.canvas for d in slice_boxes(sweep, position, meta.original_size, meta.pixel_spacing)
        ]
        box_position = None  # each slice has its own boxes
        first, last = sweep.swept_range
        volume = VolumeView(
            first=first,
            last=last,
            start=sweep.start_slice,
            findings=[FindingRow(**row) for row in finding_rows(sweep)],
            status=slice_status(sweep, position, "Frame" if axis == "frame" else "Slice"),
            notes=sweep_notes(sweep),
            study_read=sweep.study_read,
        )
    view = ViewData(
        result_uri=uri,
        task=held.task,
        width=meta.original_size[0],
        height=meta.original_size[1],
        modality=meta.modality,
        pixel_spacing=meta.pixel_spacing,
        window=WindowView(**window.model_dump()) if window is not None else None,
        windowable=image.raw is not None,
        presets=[WindowView(name=n, width=w, level=lv) for n, (w, lv) in PRESETS.items()],
        axis=axis,
        position=position,
        count=meta.num_slices if axis == "slice" else meta.num_frames if axis else None,
        box_position=box_position,
        boxes=boxes,
        volume=volume,
        # no source file name: it may carry a patient's name
        export_name=f"medmo-{held.task}{'' if position is None else f'-{position}'}.png",
    )
    return view, png


def _held_paths(state: ServerState, uri: str) -> tuple[str, ...]:
    """The image path of the held result ``uri`` (none when it is not held or not a path)."""
    from medmo_agent.privacy import is_path

    try:
        held = state.store.get(uri) if uri.startswith(RESULT_URI_PREFIX) else None
    except MedmoError:
        return ()
    handle = held.image.handle if held is not None and held.image is not None else None
    return (handle,) if handle and is_path(handle) else ()


def _sweep_of(held: Any) -> VolumeSweep | None:
    """The held result read as a volume sweep, or ``None`` when it is not one."""
    from medmo_agent.volume.display import VolumeSweep, is_volume_result

    data = held.to_dict() if hasattr(held, "to_dict") else None
    return VolumeSweep.read(data) if data is not None and is_volume_result(data) else None


def _caption(view: ViewData) -> str:
    parts = [f"{view.task} image, {view.width} × {view.height} px"]
    if view.window is not None and view.window.width is not None:
        parts.append(f"window {view.window.width:g}/{view.window.level:g}")
    if view.axis is not None:
        parts.append(f"{view.axis} {view.position} of {view.count}")
    return ", ".join(parts)
