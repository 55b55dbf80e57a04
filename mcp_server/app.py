"""Build the MCP server: tools, resources and prompts over one shared model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.caching import apply_cache_hint
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ReadResourceResult
from mcp_types import Resource as MCPResource
from pydantic import ValidationError

from medmo_agent import __version__
from medmo_agent.config import Settings

from .arguments import prompt_arguments_problem, tool_arguments_text
from .caching import METHOD_HINTS, read_hint
from .completions import register_completions
from .config import ServerConfig
from .prompts import register_prompts
from .resources import image_file_resources, register_resources
from .state import state_lifespan
from .tools import TOOL_NAMES, register_tools
from .viewer_app import viewer_extension

if TYPE_CHECKING:
    from medmo_agent.backends.base import Backend
    from medmo_agent.imaging import ImageResolver

__all__ = ["INSTRUCTIONS", "MedmoServer", "create_server"]

INSTRUCTIONS = """\
MedMO is a medical vision-language model (X-ray, CT, MRI, ultrasound, pathology,
microscopy). Its tools answer questions (vqa), localise findings with boxes (ground),
write reports (report), reason step by step (reason), label images (classify), count
cells (detect), and work on text (summarize_report, text_qa).

Pass images by reference: a file path inside the allowed folders (see the medmo://server
resource), or the medmo://results/<id> URI that every result carries, which reuses that
result's image (same window and slice) without re-sending pixels. Send inline data URIs
only for images the server cannot read from disk. Boxes are in original-image pixels.
Each result links to its resources: the result as JSON, and for boxes the image with
the boxes drawn (medmo://results/<id>/overlay); read them when needed.
Outputs are drafts from a research model, not diagnoses.
"""


class MedmoServer(MCPServer):
    """An :class:`MCPServer` that also lists the image files in the allowed folders, and
    tells clients how long each resource it serves stays fresh.

    Args:
        resolver: The confined image resolver the tools use; it lists the files.
    """

    def __init__(self, *args: Any, resolver: ImageResolver, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.resolver = resolver

    async def list_resources(self) -> list[MCPResource]:
        """Fixed resources plus one per image file in the allowed folders."""
        import anyio.to_thread

        listed = await super().list_resources()
        # Walking folders touches the disk; keep it off the event loop.
        files = await anyio.to_thread.run_sync(image_file_resources, self.resolver)
        return listed + [MCPResource(**entry) for entry in files]

    async def _handle_read_resource(self, ctx: Any, params: Any) -> Any:
        """Read a resource, with the cache hint of that resource (:func:`.caching.read_hint`).

        The SDK takes one hint per method; a held result and a file on disk need
        different ones, so the read's own result carries its hint.
        """
        result = await super()._handle_read_resource(ctx, params)
        if isinstance(result, ReadResourceResult):
            result = apply_cache_hint(result, read_hint(str(params.uri), ctx.lifespan_context))
        return result

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> Any:
        """Render a prompt; an unknown name or a wrong argument is an invalid-params error.

        The SDK reports those as a generic error (code 0) and logs a traceback; they are
        the caller's mistake, so they get JSON-RPC's -32602 and a message that says what
        the prompt takes.
        """
        problem = prompt_arguments_problem(await self.list_prompts(), name, arguments)
        if problem is not None:
            raise MCPError(code=INVALID_PARAMS, message=problem)
        return await super().get_prompt(name, arguments, context)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        """Call a tool; arguments that fail validation come back as readable text.

        The tools report their own failures as results, never as ``ToolError``, so a
        plain ``ToolError`` caused by a ``ValidationError`` is the SDK rejecting the
        arguments against the input schema. The cause stays the ``ValidationError``, so
        the SDK still logs only the names of the rejected fields, at INFO.
        """
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if type(exc) is ToolError and isinstance(cause, ValidationError):
                raise ToolError(tool_arguments_text(name, cause)) from cause
            raise


def create_server(
    settings: Settings | None = None,
    config: ServerConfig | None = None,
    *,
    backend: Backend | None = None,
) -> MedmoServer:
    """Create the MedMO MCP server; the model loads when the server starts.

    Args:
        settings: Model settings; defaults to ``Settings.from_env()``.
        config: Server options; defaults to stdio with the working directory allowed.
        backend: A backend to share instead of creating one (it stays open afterwards).

    Returns:
        The server; run it with :func:`mcp_server.serve` or connect a client to it
        in-process (``mcp.Client(server)``).
    """
    from medmo_agent.imaging import ImageResolver

    config = (config or ServerConfig()).validate()
    allowed = config.effective_allowed_dirs()
    settings = (settings or Settings.from_env()).replace(allowed_dirs=allowed)
    resolver = ImageResolver(settings, allowed_dirs=allowed, confine=True)
    server = MedmoServer(
        name="medmo",
        title="MedMO medical imaging",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=state_lifespan(settings, config, resolver, backend),
        resolver=resolver,
        log_level="WARNING",
        cache_hints=METHOD_HINTS,
        # the interactive viewer for clients with MCP Apps (its resource and render tool)
        extensions=[viewer_extension()],
    )
    register_tools(server)
    register_prompts(server)
    register_completions(server, resolver)
    register_resources(
        server,
        {
            "model": settings.model,
            "backend": backend.name if backend is not None else settings.backend,
            "allowed_dirs": [str(d) for d in allowed],
            "image_argument": "a file path inside allowed_dirs, a data:image/...;base64 URI, "
            "medmo://images/<id>, or medmo://results/<id>",
            "image_formats": "PNG, JPEG, TIFF, BMP, WebP, DICOM (file or series folder), NIfTI",
            "limits": {
                "max_new_tokens": settings.max_new_tokens_limit,
                "max_image_bytes": settings.max_image_bytes,
                "max_image_pixels": settings.max_image_pixels,
                "max_request_bytes": config.max_request_bytes,
            },
            "tools": list(TOOL_NAMES),
        },
    )
    return server
