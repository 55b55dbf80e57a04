"""Completions: values a client can offer while the user fills in a prompt argument or a
resource-template parameter (``completion/complete``).

- a prompt's ``image`` argument and the ``file:///{+path}`` template: the image files in
  the allowed folders whose path (or file name) starts with what was typed;
- a prompt's ``window`` argument: the CT window presets;
- anything else: no suggestions (an empty list, which the protocol allows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
from mcp_types import Completion as MCPCompletion
from mcp_types import (
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from .resources import MAX_LISTED

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from medmo_agent.imaging import ImageResolver

__all__ = ["MAX_VALUES", "complete_argument", "register_completions"]

#: Most values one answer carries; the protocol caps a completion at 100.
MAX_VALUES = 100
FILE_TEMPLATE = "file:///{+path}"


def _answer(matches: list[str]) -> MCPCompletion:
    return MCPCompletion(
        values=matches[:MAX_VALUES], total=len(matches), has_more=len(matches) > MAX_VALUES
    )


def _image_paths(resolver: ImageResolver, typed: str, *, strip_root: bool) -> list[str]:
    out = []
    for path in resolver.list_images(limit=MAX_LISTED):
        shown = str(path).lstrip("/") if strip_root else str(path)
        if shown.startswith(typed) or path.name.startswith(typed):
            out.append(shown)
    return out


async def complete_argument(
    resolver: ImageResolver,
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
) -> MCPCompletion:
    """Suggested values for one argument of a prompt or resource template.

    Args:
        resolver: The confined image resolver; only its allowed folders are listed.
        ref: The prompt or resource template being filled in.
        argument: The argument's name and what has been typed so far.

    Returns:
        Up to :data:`MAX_VALUES` values, with the total number of matches.
    """
    typed = argument.value
    if isinstance(ref, ResourceTemplateReference):
        if ref.uri != FILE_TEMPLATE or argument.name != "path":
            return _answer([])
        # Walking folders touches the disk; keep it off the event loop.
        paths = await anyio.to_thread.run_sync(
            lambda: _image_paths(resolver, typed.lstrip("/"), strip_root=True)
        )
        return _answer(paths)
    if argument.name == "image":
        return _answer(
            await anyio.to_thread.run_sync(lambda: _image_paths(resolver, typed, strip_root=False))
        )
    if argument.name == "window":
        from medmo_agent.imaging.windowing import PRESETS

        return _answer([name for name in PRESETS if name.startswith(typed.lower())])
    return _answer([])


def register_completions(server: MCPServer, resolver: ImageResolver) -> None:
    """Answer ``completion/complete`` on ``server`` (and declare the capability).

    Args:
        server: The server.
        resolver: The confined image resolver whose allowed folders are suggested.
    """

    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> MCPCompletion:
        return await complete_argument(resolver, ref, argument)
