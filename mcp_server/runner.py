"""Run one toolkit call for an MCP request: off the event loop, with progress,
cancellation, auditing and the single error translation.

Toolkit calls block (a GPU generation takes seconds), so each runs in a worker thread
and the event loop keeps serving other requests. Generated text is counted as it
streams and reported as progress notifications; cancelling the request sets the
toolkit's ``cancel`` event so the model stops at its next token. Limits (image bytes
and pixels, new tokens) are enforced by the toolkit and the image loaders and come back
here as ``MedmoError``s like any other bad input.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from medmo_agent.errors import InputError, MedmoError
from medmo_agent.volume.sweep import slice_progress

from .audit import caller_of
from .errors import check_answer, tool_error_result
from .progress import ProgressRelay
from .render import render_result
from .state import lifespan_state
from .store import RESULT_URI_PREFIX

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context
    from mcp_types import CallToolResult

    from medmo_agent.tasks.results import TaskResult
    from medmo_agent.toolkit import Toolkit
    from medmo_agent.types import MedImage

    from .state import ServerState

__all__ = ["ToolCall", "image_source", "run_tool"]

#: Seconds to wait, after a cancellation, for the worker to notice and stop.
_CANCEL_GRACE_S = 30.0

Work = Callable[["Toolkit", "MedImage | None", dict[str, Any]], "TaskResult"]


@dataclass
class ToolCall:
    """One tool invocation, as the tool function describes it.

    Attributes:
        name: Tool name (for the audit log).
        arguments: The arguments as sent (audited without pixel data).
        work: ``work(toolkit, image, hooks)`` runs the toolkit method; ``hooks`` holds
            ``max_new_tokens``, ``on_text`` and ``cancel``.
        image: The image argument, or ``None`` for text-only tools.
        image_opts: ``window``/``slice``/``frame``/``plane`` given by the caller.
        max_new_tokens: The caller's token budget, if any.
        overlay: Whether to return the image with the result's boxes drawn on it.
        text_arguments: The free-text arguments, checked against the text limit before
            the image is loaded.
    """

    name: str
    arguments: dict[str, Any]
    work: Work
    image: str | None = None
    image_opts: dict[str, Any] = field(default_factory=dict)
    max_new_tokens: int | None = None
    overlay: bool = False
    text_arguments: dict[str, Any] = field(default_factory=dict)


async def run_tool(ctx: Context, call: ToolCall) -> CallToolResult:
    """Run ``call`` and turn its result (or its ``MedmoError``) into a tool result."""
    state = lifespan_state(ctx)
    start = time.perf_counter()
    outcome, error_name, result_uri = "error", None, None
    try:
        result, image = await _execute(ctx, state, call)
        result_uri = state.store.add(result)
        # Drawing the overlay and encoding it as PNG take CPU time in proportion to the
        # image: off the event loop, like the call itself.
        rendered = await anyio.to_thread.run_sync(
            _render, result, image if call.overlay else None, state
        )
        outcome = "ok"
        return rendered
    except MedmoError as exc:
        error_name = type(exc).__name__
        return tool_error_result(exc, _shown_paths(state, call))
    except anyio.get_cancelled_exc_class():
        outcome = "cancelled"
        raise
    except Exception as exc:
        error_name = type(exc).__name__
        raise
    finally:
        if state.audit is not None:
            state.audit.record(
                call.name,
                call.arguments,
                include_paths=state.settings.include_paths,
                seconds=time.perf_counter() - start,
                outcome=outcome,
                error=error_name,
                result_uri=result_uri,
                caller=caller_of(ctx),
            )


def _shown_paths(state: ServerState, call: ToolCall) -> tuple[str, ...]:
    """Paths an error text must not name (the call's image), unless paths are shown."""
    if state.settings.include_paths or not call.image:
        return ()
    return (call.image,)


def _render(result: TaskResult, overlay: MedImage | None, state: ServerState) -> CallToolResult:
    check_answer(result)
    return render_result(result, overlay, state.config, state.settings.include_paths)


def image_source(state: ServerState, image: str, opts: dict[str, Any]) -> tuple[str, dict]:
    """Map a result URI or ``file://`` URI to an image handle the resolver understands.

    A result URI stands for the image that result was about, rendered the same way
    (window, slice, frame, plane) unless the caller overrides those.
    """
    if image.startswith(RESULT_URI_PREFIX):
        earlier = state.store.get(image)
        if earlier.image is None or not earlier.image.handle:
            raise InputError(
                f"The result {image} was not about an image ({earlier.task}).",
                input="image",
                fix="Pass the result URI of an image task (vqa, ground, report, ...), a file "
                "path, or a data URI.",
            )
        meta = earlier.image.meta
        inherited: dict[str, Any] = {}
        if meta.window is not None:
            w = meta.window
            if w.name and w.name not in ("auto",):
                inherited["window"] = w.name
            elif w.width is not None and w.level is not None:
                inherited["window"] = f"{w.width:g}/{w.level:g}"
        for key in ("slice", "frame", "plane"):
            if getattr(meta, key) is not None:
                inherited[key] = getattr(meta, key)
        return earlier.image.handle, {**inherited, **_given(opts)}
    if image.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(image).path), _given(opts)
    return image, _given(opts)


def _given(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if v is not None}


async def _execute(
    ctx: Context, state: ServerState, call: ToolCall
) -> tuple[TaskResult, MedImage | None]:
    cancel = threading.Event()
    finished = threading.Event()
    every = max(1, state.config.progress_every_tokens)
    total = float(call.max_new_tokens or state.settings.max_new_tokens)
    # Created here, on the request's task: it captures this event loop, so ``on_text``
    # can reach it from the backend's own generating thread.
    progress = ProgressRelay(ctx, call.name, total)
    produced = 0

    def on_text(piece: str) -> None:
        nonlocal produced
        produced += 1
        if produced % every or cancel.is_set():
            return
        progress.post(produced)

    def work() -> tuple[TaskResult, MedImage | None]:
        try:
            image = None
            state.toolkit.check_text(**call.text_arguments)  # before any image is loaded
            if call.image is not None:
                # Loaded once here and handed to the toolkit as is: the overlay needs the
                # same rendering, and inline images get a medmo://images/ handle.
                handle, opts = image_source(state, call.image, call.image_opts)
                image = state.toolkit.load(handle, **opts)
            hooks = {"max_new_tokens": call.max_new_tokens, "on_text": on_text, "cancel": cancel}
            # a volume sweep reports each finished slice instead of tokens
            with slice_progress(progress.post_step):
                result = call.work(state.toolkit, image, hooks)
            return result, image
        finally:
            finished.set()

    outcome: tuple[TaskResult, MedImage | None] | None = None
    failure: MedmoError | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(progress.send_all)
        try:
            outcome = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except MedmoError as exc:
            # Raised after the task group closes, so it is not wrapped in a group.
            failure = exc
        except anyio.get_cancelled_exc_class():
            cancel.set()
            # Wait for the model to stop, so a cancelled request frees the GPU before
            # the next one starts; shielded because this scope is already cancelled.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(finished.wait, _CANCEL_GRACE_S)
            raise
        finally:
            progress.close()
    if failure is not None:
        raise failure
    assert outcome is not None
    return outcome
