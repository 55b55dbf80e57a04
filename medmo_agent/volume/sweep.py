"""Run one request per slice, concurrently, through the backend.

Every slice is an independent request: the local engine batches requests that are in
flight together (continuous batching), and the OpenAI-compatible backend sends them as
concurrent HTTP requests. At most ``Settings.volume_concurrency`` slices are in flight at
once. A slice that fails (an unreadable file, a backend error) is recorded with its
error and the others go on; setting the ``cancel`` event stops the slices not yet
started and the ones generating stop at their next token.

Progress: surfaces that follow a sweep (the MCP server, the CLI) wrap the call in
:func:`slice_progress`; the sweep calls the callback once per finished slice with
``(done, total, message)``. (Token-by-token ``on_text`` would interleave every slice's
text, so the sweep does not stream it.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..errors import MedmoError
from ..tasks.params import Generation
from ..tasks.results import GroundingResult
from ..types import MedImage, Message

__all__ = ["ProgressCallback", "SliceOutcome", "current_progress", "slice_progress", "sweep"]

#: ``callback(done, total, message)``, called on the sweeping thread after each slice.
ProgressCallback = Callable[[int, int, str], None]

_PROGRESS: ContextVar[ProgressCallback | None] = ContextVar("medmo_slice_progress", default=None)


@contextmanager
def slice_progress(callback: ProgressCallback) -> Iterator[None]:
    """Report each finished slice of sweeps run inside this block to ``callback``."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def current_progress() -> ProgressCallback | None:
    """The callback of the innermost :func:`slice_progress` block, if any."""
    return _PROGRESS.get()


@dataclass
class SliceOutcome:
    """One slice's result, or why it has none."""

    slice: int
    result: GroundingResult | None = None
    error: str | None = None
    exception: MedmoError | None = None


def sweep(
    core: Any,
    render: Callable[[int], MedImage],
    slices: list[int],
    build: Callable[[MedImage], list[Message]],
    parse: Callable[..., GroundingResult],
    gen: Generation,
    *,
    concurrency: int,
    extra_steps: int = 0,
    **parse_kwargs: Any,
) -> list[SliceOutcome]:
    """Ask about every slice in ``slices``; outcomes come back in slice order.

    Args:
        core: The toolkit (``generate``, ``finish``, ``settings``).
        render: Renders slice ``i`` as the model will see it (thread-safe).
        slices: The slice indices to sweep.
        build: Messages for one slice image.
        parse: The per-slice task's parser (``ground.parse`` or ``detect.parse``).
        gen: Token budget and cancellation (``on_text`` is not used, see the module).
        concurrency: Most slices in flight at once.
        extra_steps: Steps the caller will report after the sweep (the progress total
            counts them, so progress never runs backwards).
        **parse_kwargs: Passed to ``parse`` (targets, label).
    """
    from ..imaging.geometry import model_input_size

    progress = current_progress()
    total = len(slices) + extra_steps
    cancel = gen.cancel if gen.cancel is not None else threading.Event()
    quiet = Generation(max_new_tokens=gen.max_new_tokens, on_text=None, cancel=cancel)

    def one(index: int) -> SliceOutcome:
        if cancel.is_set():
            return SliceOutcome(index, error="cancelled before it ran")
        try:
            image = render(index)
            completion = core.generate(build(image), quiet)
            sizes = completion.image_input_sizes
            input_size = (
                sizes[0]
                if sizes
                else model_input_size(
                    image.size, core.settings.min_pixels, core.settings.max_pixels
                )
            )
            result = parse(
                completion.text,
                input_size=input_size,
                original_size=image.size,
                pixel_spacing=image.meta.pixel_spacing,
                **parse_kwargs,
            )
            return SliceOutcome(index, result=core.finish(result, completion, None))
        except MedmoError as exc:
            # recorded for this slice; the other slices go on
            return SliceOutcome(index, error=f"{type(exc).__name__}: {exc}", exception=exc)

    outcomes: dict[int, SliceOutcome] = {}
    workers = max(1, min(concurrency, len(slices)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medmo-sweep") as pool:
        pending: set[Future[SliceOutcome]] = set()
        queue = list(slices)
        while queue or pending:
            # keep at most `workers` in flight, so a cancel leaves nothing queued behind
            while queue and len(pending) < workers and not cancel.is_set():
                pending.add(pool.submit(one, queue.pop(0)))
            if cancel.is_set():
                for index in queue:
                    outcomes[index] = SliceOutcome(index, error="cancelled before it ran")
                queue = []
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()
                outcomes[outcome.slice] = outcome
                if progress is not None:
                    progress(len(outcomes), total, _message(outcome, len(outcomes), len(slices)))
    return [outcomes[i] for i in slices]


def _message(outcome: SliceOutcome, done: int, total: int) -> str:
    if outcome.error is not None:
        what = "failed" if not outcome.error.startswith("cancelled") else "cancelled"
    else:
        n = len(outcome.result.boxes) if outcome.result is not None else 0
        what = f"{n} box(es)"
    return f"slice {outcome.slice}: {what} ({done}/{total} slices)"
