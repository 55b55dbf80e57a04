"""Resources: the images in the allowed folders, images the server holds, and earlier
results, so an agent can look at or refer to them without re-sending pixels.

- ``file:///<path>``: an image file inside an allowed folder, rendered as PNG;
- ``medmo://images/<id>``: an image the server holds (e.g. one sent inline), as PNG;
- ``medmo://results/<id>``: an earlier tool result, as JSON;
- ``medmo://results/<id>/overlay``: that result's image with its boxes drawn, as PNG
  (``ground`` and ``detect`` results);
- ``medmo://results/<id>/slices``: every slice's own result of a volume sweep, as JSON;
- ``medmo://server``: the model, the allowed folders and the limits, as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import FunctionResource, ResourceSecurity

from medmo_agent.errors import InputError, MedmoError, NotFoundError

from .caching import OVERLAY_SUFFIX, SLICES_SUFFIX
from .errors import resource_error
from .state import ServerState, lifespan_state
from .store import RESULT_URI_PREFIX

if TYPE_CHECKING:
    from medmo_agent.imaging import ImageResolver

__all__ = ["file_uri", "image_file_resources", "register_resources"]

#: Most files listed as resources; a folder of a million slices must not flood a client.
MAX_LISTED = 500
_RESOURCE_PNG_SIDE = 1024


def file_uri(path: Path) -> str:
    """The ``file://`` URI of an absolute path."""
    return path.as_uri()


def _state(ctx: Context) -> ServerState:
    return lifespan_state(ctx)


def _stored(ctx: Context, result_id: str) -> Any:
    """A stored result, or the resource error that says it is not (or no longer) kept."""
    try:
        return _state(ctx).store.get(result_id)
    except MedmoError as exc:
        raise resource_error(exc) from exc


async def _png_of(state: ServerState, handle: str) -> bytes:
    from medmo_agent.imaging.overlay import to_png_bytes

    def render() -> bytes:
        return to_png_bytes(state.toolkit.load(handle), max_side=_RESOURCE_PNG_SIDE)

    try:
        return await anyio.to_thread.run_sync(render)
    except MedmoError as exc:
        raise resource_error(exc) from exc


async def _overlay_of(state: ServerState, result_uri: str) -> bytes:
    """The PNG of ``result_uri``'s image with its boxes drawn, as the tool returned it."""
    from .render import overlay_png
    from .runner import image_source

    def render() -> bytes:
        result = state.store.get(result_uri)
        if not hasattr(result, "boxes") or result.image is None:
            raise NotFoundError(
                f"The result {result_uri} is a {result.task} result: it has no boxes to draw.",
                input=result_uri + OVERLAY_SUFFIX,
                fix="Read the overlay of a ground or detect result, or the result itself "
                f"({result_uri}).",
            )
        # The result's own image, rendered as it was for the call (window, slice, ...).
        handle, opts = image_source(state, result_uri, {})
        image = state.toolkit.load(handle, **opts)
        return overlay_png(image, result, _RESOURCE_PNG_SIDE, state.config.overlay_max_bytes)

    try:
        return await anyio.to_thread.run_sync(render)
    except MedmoError as exc:
        raise _hidden(exc, state, result_uri) from exc


def _hidden(exc: MedmoError, state: ServerState, result_uri: str) -> Exception:
    """The resource error for ``exc`` with the held result's image path (a file or
    folder name may carry a patient's name) shown as its label unless paths are shown."""
    from medmo_agent.privacy import is_path, scrub_text

    error = resource_error(exc)
    if state.settings.include_paths:
        return error
    try:
        image = state.store.get(result_uri).image
    except MedmoError:
        return error
    handle = image.handle if image is not None else None
    if not handle or not is_path(handle):
        return error
    return type(error)(scrub_text(str(error), [handle]))


def register_resources(server: MCPServer, info: dict[str, Any]) -> None:
    """Add the resources and resource templates to ``server``.

    Args:
        server: The server.
        info: What ``medmo://server`` reports (model, allowed folders, limits).
    """

    @server.resource(
        "medmo://results/{result_id}",
        name="result",
        title="An earlier MedMO result",
        description="A tool result kept by the server, as JSON (bounded store: recent only).",
        mime_type="application/json",
    )
    def read_result(result_id: str, ctx: Context) -> str:
        result = _stored(ctx, result_id)
        import json

        from .render import result_data

        include = _state(ctx).settings.include_paths
        return json.dumps(result_data(result, include), indent=2, ensure_ascii=False)

    @server.resource(
        "medmo://results/{result_id}" + OVERLAY_SUFFIX,
        name="result-overlay",
        title="An earlier result's image with its boxes",
        description="The image of a ground or detect result with its boxes drawn, as PNG.",
        mime_type="image/png",
    )
    async def read_result_overlay(result_id: str, ctx: Context) -> bytes:
        return await _overlay_of(_state(ctx), RESULT_URI_PREFIX + result_id)

    @server.resource(
        "medmo://results/{result_id}" + SLICES_SUFFIX,
        name="result-slices",
        title="Every slice of a volume sweep",
        description="The full per-slice results of a ground_volume result (boxes in pixels "
        "and normalised, sizes in mm, raw text, usage), as JSON keyed by slice index.",
        mime_type="application/json",
    )
    def read_result_slices(result_id: str, ctx: Context) -> str:
        result = _stored(ctx, result_id)
        from .render import result_data

        per_slice = getattr(result, "slice_results", None)
        if per_slice is None:
            raise resource_error(
                InputError(
                    f"The result {result_id} is a {result.task} result, not a volume sweep.",
                    input=result_id,
                    fix="Read medmo://results/<id> for it; /slices is for ground_volume results.",
                )
            )
        include = _state(ctx).settings.include_paths
        data = {str(k): result_data(v, include) for k, v in sorted(per_slice.items())}
        return json.dumps(data, indent=2, ensure_ascii=False)

    @server.resource(
        "medmo://images/{image_id}",
        name="held-image",
        title="An image the server holds",
        description="An image sent earlier (e.g. inline), rendered as PNG.",
        mime_type="image/png",
    )
    async def read_held_image(image_id: str, ctx: Context) -> bytes:
        return await _png_of(_state(ctx), f"medmo://images/{image_id}")

    @server.resource(
        "file:///{+path}",
        name="image-file",
        title="An image file in an allowed folder",
        description="An image file (PNG, JPEG, TIFF, DICOM, NIfTI) rendered as PNG.",
        mime_type="image/png",
        # Absolute paths are the point here; confinement to the allowed folders is
        # enforced by the image resolver, which also rejects traversal and symlinks.
        security=ResourceSecurity(reject_absolute_paths=False),
    )
    async def read_file_image(path: str, ctx: Context) -> bytes:
        return await _png_of(_state(ctx), "/" + path.lstrip("/"))

    def server_info() -> str:
        return json.dumps(info, indent=2, default=str)

    server.add_resource(
        FunctionResource.from_function(
            server_info,
            uri="medmo://server",
            name="server",
            title="MedMO server information",
            description="What the server can read and what the image argument accepts.",
            mime_type="application/json",
        )
    )


def image_file_resources(resolver: ImageResolver) -> list[dict[str, Any]]:
    """Listing entries for the image files in the allowed folders."""
    return [
        {"uri": file_uri(Path(p).absolute()), "name": Path(p).name, "mime_type": "image/png"}
        for p in resolver.list_images(limit=MAX_LISTED)
    ]
