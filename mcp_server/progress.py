"""Progress notifications for a tool call whose text is generated on another thread.

The model streams text on whatever thread the backend chooses: the thread the request
handed the call to, or a thread the backend owns (the transformers backend generates on
one batching worker for every request). ``anyio.from_thread`` only works from AnyIO's
own worker threads, so the relay captures the request's event loop when it is created
and hands each count over with ``loop.call_soon_threadsafe``. That never blocks the
generating thread: a busy event loop must not stall every row of a batch. The request's
task drains the counts and sends the notifications, in order.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

__all__ = ["ProgressRelay"]

log = logging.getLogger(__name__)

#: One notification: (progress, total, message).
_Note = tuple[float, float, str]


class ProgressRelay:
    """Carry token counts from the generating thread to the request's task.

    Create it on the request's task; call :meth:`post` from any thread; run
    :meth:`send_all` in the request's task group and :meth:`close` when the call ends.

    Args:
        ctx: The request's context; notifications go to the client that asked for them
            (none are sent when the request carried no progress token).
        tool: The tool name, for the log.
        total: The token budget, sent as the notifications' ``total``.
    """

    def __init__(self, ctx: Context, tool: str, total: float):
        self._ctx = ctx
        self._tool = tool
        self._total = total
        self._loop = asyncio.get_running_loop()
        self._send, self._receive = anyio.create_memory_object_stream[_Note](
            max_buffer_size=math.inf
        )

    def post(self, produced: int) -> None:
        """Queue a notification for ``produced`` tokens; safe to call from any thread."""
        self._post((min(produced, self._total), self._total, f"{produced} tokens generated"))

    def post_step(self, done: int, total: int, message: str) -> None:
        """Queue a notification for ``done`` of ``total`` steps (a volume sweep's slices);
        safe to call from any thread."""
        self._post((float(done), float(total), message))

    def _post(self, note: _Note) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, note)
        except RuntimeError:
            if not self._loop.is_closed():
                raise
            # The server is shutting down: there is no client left to tell.
            log.debug("progress for %s dropped: the event loop has closed", self._tool)

    def close(self) -> None:
        """No more counts (call on the request's task once the work has returned)."""
        self._send.close()

    async def send_all(self) -> None:
        """Send a notification per queued count until :meth:`close`; run as a task."""
        failed = False
        async with self._receive:
            async for progress, total, message in self._receive:
                if failed:
                    continue  # keep draining, so late counts do not pile up
                try:
                    await self._ctx.report_progress(progress, total, message)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    # The client went away mid-call: the call itself still finishes (its
                    # result is kept in the result store), so this is not the call's error.
                    log.warning(
                        "Progress for %s could not be sent (%s); the call continues without "
                        "progress notifications.",
                        self._tool,
                        type(exc).__name__,
                    )
                    failed = True
                except Exception:
                    # A bug in building or sending the notification: logged with its
                    # traceback, and the answer the caller waits for is still delivered.
                    log.exception("Progress for %s could not be sent", self._tool)
                    failed = True

    def _deliver(self, note: _Note) -> None:
        # Runs on the event loop, in the order the counts were posted.
        try:
            self._send.send_nowait(note)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # Posted after the call returned or was cancelled (the model may emit a last
            # piece before it notices): nobody waits for it any more.
            log.debug("progress for %s arrived after the call ended", self._tool)
