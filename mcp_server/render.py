"""Turn a task result into an MCP tool result: structured content, a short text, for
box results the image with labelled boxes, and links to the resources the result left.

The structured content is the result model itself (it matches the tool's output
schema); the text is for clients that show only text, and ends with the result's URI
so a later call can refer to it. The overlay is a PNG downscaled until it fits the
byte budget, well under the 1 MiB a streamed event may carry. Everything else goes by
reference: resource links to the result as JSON (``medmo://results/<id>``), to the
overlay (``.../overlay``), to a volume sweep's per-slice results (``.../slices``) and to
a held image (``medmo://images/<id>``), which a client
reads when it wants them instead of receiving them inline with every call.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent

from medmo_agent.imaging.resolve import HANDLE_PREFIX
from medmo_agent.privacy import is_path

from .caching import OVERLAY_SUFFIX, SLICES_SUFFIX

if TYPE_CHECKING:
    from medmo_agent.tasks.results import TaskResult
    from medmo_agent.types import MedImage

    from .config import ServerConfig

__all__ = ["overlay_png", "render_result", "result_data", "result_links", "result_text"]

_MIN_SIDE = 128


def result_data(result: TaskResult, include_paths: bool) -> dict:
    """The result as JSON, image paths shown as labels unless ``include_paths``."""
    from medmo_agent.privacy import scrub_data

    return scrub_data(result.model_dump(mode="json"), include_paths)


def result_text(result: TaskResult, include_paths: bool = False) -> str:
    """The result's summary plus where it is kept and which image it is about."""
    from medmo_agent.privacy import path_label

    lines = [result.summary() or "(the model returned no text)"]
    if result.notes:
        lines.append("Notes: " + " ".join(result.notes))
    if result.image is not None and result.image.handle:
        handle = result.image.handle
        shown = handle if include_paths or not is_path(handle) else path_label(handle)
        lines.append(f"Image: {shown}")
    if result.result_uri:
        lines.append(
            f"Result: {result.result_uri} (pass it as `image` to ask more about the same image)"
            if result.image is not None
            else f"Result: {result.result_uri}"
        )
        if hasattr(result, "slice_results"):  # a volume sweep: every slice by reference
            lines.append(f"Per-slice results: {result.result_uri}/slices")
    return "\n".join(lines)


def overlay_png(image: MedImage, result: TaskResult, max_side: int, max_bytes: int) -> bytes:
    """The image with the result's boxes drawn, as PNG bytes within ``max_bytes``."""
    from medmo_agent.imaging.overlay import draw_boxes, to_png_bytes

    drawn = draw_boxes(image, list(getattr(result, "boxes", [])))
    side = max_side
    png = to_png_bytes(drawn, max_side=side)
    while len(png) > max_bytes and side > _MIN_SIDE:
        side = max(_MIN_SIDE, int(side * 0.7))
        png = to_png_bytes(drawn, max_side=side)
    return png


def _link(uri: str, name: str, title: str, mime_type: str) -> ResourceLink:
    return ResourceLink(type="resource_link", uri=uri, name=name, title=title, mime_type=mime_type)


def result_links(result: TaskResult, overlay: bool) -> list[ResourceLink]:
    """Resource links to what ``result`` left on the server (none before it is stored).

    Args:
        result: A stored result (its ``result_uri`` is set).
        overlay: Whether the result has an overlay (boxes drawn on its image).
    """
    if not result.result_uri:
        return []
    uri = result.result_uri
    links = [_link(uri, "result", f"The {result.task} result as JSON", "application/json")]
    if overlay:
        links.append(
            _link(uri + OVERLAY_SUFFIX, "overlay", "The image with the boxes drawn", "image/png")
        )
    if getattr(result, "slice_results", None) is not None:  # a volume sweep
        links.append(
            _link(
                uri + SLICES_SUFFIX, "slices", "Every slice's result, as JSON", "application/json"
            )
        )
    handle = result.image.handle if result.image is not None else None
    # Held images only: a file's URI would name its path, which results show only when
    # paths are allowed; the result's URI already leads back to that image.
    if handle and handle.startswith(HANDLE_PREFIX):
        links.append(_link(handle, "image", "The image the result is about", "image/png"))
    return links


def render_result(
    result: TaskResult,
    overlay_image: MedImage | None,
    config: ServerConfig,
    include_paths: bool = False,
) -> CallToolResult:
    """The tool result for ``result``; with an overlay when ``overlay_image`` is given.

    Image paths appear only when ``include_paths`` (``Settings.include_paths``); the
    result kept for reuse keeps the real path, so a later call can reopen the image.
    """
    text = result_text(result, include_paths)
    content: list[TextContent | ImageContent | ResourceLink] = [TextContent(type="text", text=text)]
    if overlay_image is not None:
        # Inline as well as linked: a model sees the boxes only if the picture is in
        # the result it reads, and many clients do not follow links.
        png = overlay_png(overlay_image, result, config.overlay_max_side, config.overlay_max_bytes)
        content.append(
            ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png")
        )
    overview = getattr(result, "overview_png", None)
    if isinstance(overview, bytes):  # a volume sweep: its key slices, boxes drawn
        content.append(
            ImageContent(
                type="image", data=base64.b64encode(overview).decode(), mime_type="image/png"
            )
        )
    content.extend(result_links(result, overlay=overlay_image is not None))
    structured = result_data(result, include_paths)
    return CallToolResult(content=content, structured_content=structured)
