"""Steps of a run as an iterator: the run reports each step to a callback, and these
helpers hand the steps to a sync or async consumer as they happen."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from .trace import StepCallback, TraceStep

__all__ = ["astream_steps", "iter_steps"]


def _tee(user_cb: StepCallback | None, put: Callable[[TraceStep], None]) -> StepCallback:
    def on_step(step: TraceStep) -> None:
        if user_cb is not None:
            user_cb(step)
        put(step)

    return on_step


def iter_steps(
    run: Callable[[StepCallback], Any], user_cb: StepCallback | None, name: str
) -> Iterator[TraceStep]:
    """Run ``run(on_step)`` in a worker thread named ``name`` and yield its steps as they
    come; ``user_cb`` also sees each one. A failure of the run is re-raised at the end."""
    steps: queue.Queue[Any] = queue.Queue()
    done = object()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            run(_tee(user_cb, steps.put))
        except BaseException as exc:
            failure.append(exc)
        finally:
            steps.put(done)

    threading.Thread(target=work, daemon=True, name=name).start()
    while (item := steps.get()) is not done:
        yield item
    if failure:
        raise failure[0]


async def astream_steps(
    run: Callable[[StepCallback], Awaitable[Any]], user_cb: StepCallback | None
) -> AsyncIterator[TraceStep]:
    """Run the coroutine ``run(on_step)`` as a task and yield its steps as they come (steps
    reported from other threads are welcome); its failure is re-raised at the end."""
    steps: asyncio.Queue[Any] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def put(step: TraceStep | None) -> None:
        loop.call_soon_threadsafe(steps.put_nowait, step)

    task = asyncio.ensure_future(run(_tee(user_cb, put)))
    task.add_done_callback(lambda _t: put(None))
    while (item := await steps.get()) is not None:
        yield item
    await task  # re-raise a failure
