"""The batched runner: grouping, out-of-memory split-and-retry, errors, shutdown.

A test-double engine stands in for the model here (deterministic logic only); the same
paths run on the real model in test_transformers_backend.py.
"""

from __future__ import annotations

import threading

import pytest

from medmo_agent.backends._batched import BatchedRunner
from medmo_agent.backends._runner import Job
from medmo_agent.errors import BackendError, GPUOutOfMemoryError, InputError

torch = pytest.importorskip("torch")


class FakeEngine:
    """Echoes payloads; can block inside a batch, and runs out of memory on demand."""

    def __init__(self, oom_when=lambda payloads: False, fail_with=None):
        self.batches: list[list[object]] = []
        self.oom_when = oom_when
        self.fail_with = fail_with
        self.recoveries = 0
        self.generate_calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def run_batch(self, jobs):
        payloads = [j.payload for j in jobs]
        self.batches.append(payloads)
        self.entered.set()
        self.release.wait(timeout=30)
        if self.oom_when(payloads):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.fail_with is not None:
            raise self.fail_with
        return [f"answer to {p}" for p in payloads]

    def recover_from_out_of_memory(self):
        self.recoveries += 1


def _hold_worker(engine, scheduler):
    """Occupy the worker with one job so that the next ones queue up together."""
    engine.release.clear()
    engine.entered.clear()
    first = scheduler.submit(Job("first"))
    assert engine.entered.wait(timeout=30)
    return first


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def scheduler(engine):
    s = BatchedRunner(engine, max_batch_size=8, batch_wait_s=0.0)
    yield s
    engine.release.set()
    s.close()


def test_jobs_queued_while_the_model_is_busy_run_as_one_batch(engine, scheduler):
    first = _hold_worker(engine, scheduler)
    futures = [scheduler.submit(Job(f"q{i}")) for i in range(5)]
    engine.release.set()
    assert first.result(timeout=30) == "answer to first"
    assert [f.result(timeout=30) for f in futures] == [f"answer to q{i}" for i in range(5)]
    assert engine.batches == [["first"], ["q0", "q1", "q2", "q3", "q4"]]
    assert scheduler.stats["largest_batch"] == 5


def test_batches_never_exceed_the_maximum_size(engine):
    scheduler = BatchedRunner(engine, max_batch_size=2, batch_wait_s=0.0)
    try:
        _hold_worker(engine, scheduler)
        futures = [scheduler.submit(Job(i)) for i in range(5)]
        engine.release.set()
        for f in futures:
            f.result(timeout=30)
        assert [len(b) for b in engine.batches] == [1, 2, 2, 1]
    finally:
        scheduler.close()


def test_jobs_with_different_decoding_modes_go_to_different_batches(engine, scheduler):
    _hold_worker(engine, scheduler)
    keys = ["greedy", "sampled", "greedy", "sampled", "greedy"]
    futures = [scheduler.submit(Job(f"{k}{i}", key=k)) for i, k in enumerate(keys)]
    engine.release.set()
    for f in futures:
        f.result(timeout=30)
    assert engine.batches[1:] == [["greedy0", "greedy2", "greedy4"], ["sampled1", "sampled3"]]


def test_out_of_memory_in_a_batch_retries_each_job_alone_and_fails_only_the_culprit():
    engine = FakeEngine(oom_when=lambda p: len(p) > 1 or "huge" in p)
    scheduler = BatchedRunner(engine, max_batch_size=8, batch_wait_s=0.0)
    try:
        _hold_worker(engine, scheduler)
        futures = [scheduler.submit(Job(p)) for p in ("a", "huge", "b")]
        engine.release.set()
        assert futures[0].result(timeout=30) == "answer to a"
        with pytest.raises(GPUOutOfMemoryError) as info:
            futures[1].result(timeout=30)
        assert "MedMO-4B-Next" in str(info.value)
        assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)
        assert futures[2].result(timeout=30) == "answer to b"
        assert engine.batches[1:] == [["a", "huge", "b"], ["a"], ["huge"], ["b"]]
        assert engine.recoveries == 2  # after the batch, and after the culprit alone
        assert scheduler.stats["oom_retries"] == 1
        # the worker keeps serving
        assert scheduler.submit(Job("later")).result(timeout=30) == "answer to later"
    finally:
        scheduler.close()


def test_an_unexpected_engine_error_fails_its_batch_as_backend_error_and_serving_goes_on():
    engine = FakeEngine(fail_with=ValueError("shape mismatch"))
    scheduler = BatchedRunner(engine, max_batch_size=8, batch_wait_s=0.0)
    try:
        with pytest.raises(BackendError, match="shape mismatch") as info:
            scheduler.submit(Job("x")).result(timeout=30)
        assert isinstance(info.value.__cause__, ValueError)
        engine.fail_with = InputError("bad input", input="x")
        with pytest.raises(InputError):  # project errors pass through unchanged
            scheduler.submit(Job("y")).result(timeout=30)
        engine.fail_with = None
        assert scheduler.submit(Job("z")).result(timeout=30) == "answer to z"
    finally:
        scheduler.close()


def test_closing_fails_queued_jobs_and_refuses_new_ones(engine):
    scheduler = BatchedRunner(engine, max_batch_size=1, batch_wait_s=0.0)
    first = _hold_worker(engine, scheduler)
    queued = scheduler.submit(Job("queued"))
    scheduler.close(timeout=0)  # marks closed; the batch in progress still finishes
    engine.release.set()
    scheduler.close()  # waits for the worker
    assert first.result(timeout=30) == "answer to first"
    with pytest.raises(BackendError, match="closed"):
        queued.result(timeout=30)
    with pytest.raises(BackendError, match="closed"):
        scheduler.submit(Job("late"))
