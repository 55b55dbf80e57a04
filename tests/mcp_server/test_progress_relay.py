"""The progress relay on its own: counts posted from a plain thread (like the transformers
backend's batching worker) reach the request's task in order, and a failure to send is
logged, never raised into the call. The real backend over real transports is covered in
test_mcp_progress.py."""

from __future__ import annotations

import asyncio
import logging
import threading

import anyio
import pytest

from mcp_server.progress import ProgressRelay


class RecordingContext:
    """Stands in for the request context: records notifications, or fails as told."""

    def __init__(self, error: Exception | None = None):
        self.sent: list[tuple[float, float | None, str | None]] = []
        self.error = error

    async def report_progress(self, progress, total=None, message=None) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((progress, total, message))


async def _relay_from_thread(ctx: RecordingContext, counts: list[int]) -> ProgressRelay:
    relay = ProgressRelay(ctx, "report", 100.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.send_all)
        # not an AnyIO worker thread: anyio.from_thread has no event loop to go back to
        thread = threading.Thread(target=lambda: [relay.post(n) for n in counts])
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        relay.close()
    return relay


async def test_counts_posted_from_a_foreign_thread_arrive_in_order():
    ctx = RecordingContext()
    await _relay_from_thread(ctx, [8, 16, 24, 32])
    assert ctx.sent == [
        (8, 100.0, "8 tokens generated"),
        (16, 100.0, "16 tokens generated"),
        (24, 100.0, "24 tokens generated"),
        (32, 100.0, "32 tokens generated"),
    ]


async def test_a_count_posted_after_the_call_ended_is_dropped_quietly(caplog):
    ctx = RecordingContext()
    relay = await _relay_from_thread(ctx, [8])
    with caplog.at_level(logging.DEBUG, logger="mcp_server.progress"):
        late = threading.Thread(target=relay.post, args=(16,))
        late.start()
        await anyio.to_thread.run_sync(late.join)
        # callbacks run in the order they were queued: once this one ran, so did the
        # thread's
        flushed = asyncio.Event()
        asyncio.get_running_loop().call_soon(flushed.set)
        await flushed.wait()
    assert ctx.sent == [(8, 100.0, "8 tokens generated")]
    assert "arrived after the call ended" in caplog.text


@pytest.mark.parametrize(
    ("error", "level", "text"),
    [
        (anyio.BrokenResourceError(), logging.WARNING, "could not be sent (BrokenResourceError)"),
        (RuntimeError("bug"), logging.ERROR, "could not be sent"),
    ],
    ids=["client-gone", "unexpected"],
)
async def test_a_failure_to_send_is_logged_once_and_the_call_goes_on(caplog, error, level, text):
    ctx = RecordingContext(error)
    with caplog.at_level(logging.DEBUG, logger="mcp_server.progress"):
        await _relay_from_thread(ctx, [8, 16, 24])  # returns: nothing raised into the call
    records = [r for r in caplog.records if r.name == "mcp_server.progress"]
    assert [r.levelno for r in records] == [level]
    assert text in records[0].getMessage()
    assert (records[0].exc_info is not None) == (level == logging.ERROR)


def test_a_count_posted_after_the_server_stopped_is_dropped(caplog):
    async def create() -> ProgressRelay:
        return ProgressRelay(RecordingContext(), "report", 100.0)

    relay = asyncio.run(create())  # asyncio.run closes its event loop on return
    with caplog.at_level(logging.DEBUG, logger="mcp_server.progress"):
        relay.post(8)  # must not raise into the model's generating thread
    assert "the event loop has closed" in caplog.text
