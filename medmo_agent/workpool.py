"""Run many jobs on a thread pool, stoppable: the loop the evaluation and review runners share.

Results are handed back in the calling thread as the jobs finish (so bookkeeping needs
no lock). Setting ``cancel`` stops the wait: jobs not started are dropped and running
ones are let finish; Ctrl-C sets ``cancel`` so the workers see it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["run_each"]

J = TypeVar("J")
R = TypeVar("R")


def run_each(
    fn: Callable[[J], R | None],
    jobs: Iterable[J],
    *,
    workers: int,
    cancel: threading.Event,
    on_result: Callable[[J, R], None],
    thread_name_prefix: str,
) -> bool:
    """Call ``fn`` on every job on ``workers`` threads, until done or cancelled.

    Args:
        fn: does one job; ``None`` means it was cancelled and has nothing to report.
        jobs: the jobs.
        workers: how many threads.
        cancel: set (by another thread, or by Ctrl-C here) to stop.
        on_result: called in this thread with each job and its result as it finishes.
        thread_name_prefix: names the worker threads.

    Returns:
        Whether Ctrl-C stopped it (then ``cancel`` is set too), so that the caller can
        save the finished work and raise ``KeyboardInterrupt`` again.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
    try:
        futures: dict[Future[R | None], J] = {pool.submit(fn, job): job for job in jobs}
        pending: set[Future[R | None]] = set(futures)
        while pending and not cancel.is_set():
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                result = fut.result()
                if result is not None:
                    on_result(futures[fut], result)
    except KeyboardInterrupt:
        cancel.set()
        return True
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return False
