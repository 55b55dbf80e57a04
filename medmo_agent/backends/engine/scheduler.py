"""Continuous batching: one thread owns the decode loop; requests join the running batch
between decode steps and leave it as soon as they finish, so nobody waits for a whole batch.

Prefill (:mod:`.prefill`) runs ``model.generate`` for one new token; its keys and values are
copied into a free slot of the static cache, and from then on the request advances one token
per decode step. A request whose prompt plus ``max_new_tokens`` does not fit its slot is
refused when submitted (:class:`.requests.CacheLimitError`), never cut short.

On CUDA, prefills run on a second thread and CUDA stream (``overlap_prefill``), so running
requests keep decoding while a new prompt is read instead of pausing for it: a prompt with
an image is tens of milliseconds of mostly launch-bound work, which the decode steps fill.

The threads talk through queues of typed messages (:mod:`.requests`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .fused import install_fused_kernels
from .kv_cache import StaticKVCache, plan_cache
from .prefill import Prefiller, SwitchInterval
from .requests import (
    Close,
    EngineClosedError,
    EngineRequest,
    EngineResult,
    Exclusive,
    PrefillBatch,
    Prefilled,
    Started,
    Submit,
    check_fits,
    finish_reason,
)
from .step import DEFAULT_SDPA_BACKENDS, DecodeStep, triton_available

__all__ = ["ContinuousBatcher"]

#: Interpreter switch interval while prefills overlap decoding (see ``SwitchInterval``).
_SWITCH_INTERVAL_S = 0.0005


@dataclass
class _Running:
    request: EngineRequest
    future: Future
    tokens: list[int]
    length: int  # cached positions
    rope_delta: int
    started: float
    first_token_at: float


class ContinuousBatcher:
    """Greedy decoding of many requests at once over one model.

    Args:
        model: A loaded ``Qwen3VLForConditionalGeneration`` in eval mode.
        eos_token_ids: Tokens that end a request.
        max_batch: Most requests decoded together (cache slots).
        max_len: Cap on positions per request (prompt + new tokens).
        use_cuda_graphs: Replay decode segments as CUDA graphs (default: on CUDA).
        memory_fraction: Share of the free device memory given to the KV cache.
        generation_config: Passed to the prefill's ``generate`` (greedy, end tokens).
        attention_backends: SDPA kernels in order of preference (see ``attention_policy``).
        pad_token_id: Pads prompts prefilled together (default: the first end token).
        prefill_batch: Most prompts prefilled in one call when several arrive together;
            1 prefills every request alone.
        kernels: Use the Triton kernels (default: on CUDA when Triton is installed). They
            are installed into ``model`` itself (:mod:`.fused`), so that ``generate`` on it
            computes what the engine computes.
        overlap_prefill: Prefill on a second thread (and CUDA stream) while the running
            batch decodes (default: on CUDA with the kernels).
    """

    def __init__(
        self,
        model: Any,
        *,
        eos_token_ids: list[int],
        max_batch: int = 32,
        max_len: int | None = None,
        use_cuda_graphs: bool | None = None,
        memory_fraction: float = 0.85,
        generation_config: Any = None,
        attention_backends: tuple[str, ...] | None = DEFAULT_SDPA_BACKENDS,
        pad_token_id: int | None = None,
        prefill_batch: int = 8,
        kernels: bool | None = None,
        overlap_prefill: bool | None = None,
    ):
        import torch

        self.model = model
        self.eos = set(eos_token_ids)
        device = model.lm_head.weight.device
        dtype = model.lm_head.weight.dtype
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
        text_config = model.config.get_text_config()
        plan = plan_cache(
            text_config,
            slots=max_batch,
            dtype_bytes=torch.finfo(dtype).bits // 8,
            free_bytes=free,
            memory_fraction=memory_fraction,
            max_len=max_len,
        )
        self.cache = StaticKVCache(text_config, plan, device=device, dtype=dtype)
        graphs = device.type == "cuda" if use_cuda_graphs is None else use_cuda_graphs
        kernels = triton_available(device) if kernels is None else kernels
        self.step = DecodeStep(
            model,
            self.cache,
            max_batch=max_batch,
            use_cuda_graphs=graphs,
            attention_backends=attention_backends,
            kernels=kernels,
        )
        if kernels:  # after DecodeStep accepted them: the model is changed only if they run
            install_fused_kernels(model)
        self.max_batch = max_batch
        self.device = device
        self.stats = {
            "steps": 0,
            "steps_ahead": 0,  # launched before the previous step's tokens were read
            "prefills": 0,
            "batched_prefills": 0,
            "max_running": 0,
            "tokens": 0,
        }
        self.prefiller = Prefiller(
            model,
            device=device,
            generation_config=generation_config,
            pad_token_id=pad_token_id if pad_token_id is not None else (eos_token_ids or [0])[0],
            batch=prefill_batch,
            attention_policy=self.step.attention_policy,
            stats=self.stats,
        )
        self._queue: queue.Queue[Submit | Exclusive | Prefilled | Close] = queue.Queue()
        self._running: list[_Running] = []
        self._closed = False
        self._backlog: list[Submit] = []
        self._inflight = 0  # requests handed to the prefill thread, not yet back
        if overlap_prefill is None:
            # Stock modules choose SDPA kernels through global flags that a prefill on
            # another thread would toggle mid-step: overlap with the kernels only.
            overlap_prefill = device.type == "cuda" and bool(kernels)
        self.overlap_prefill = overlap_prefill
        self._jobs: queue.Queue[PrefillBatch | Exclusive | Close] = queue.Queue()
        self._prefill_thread = None
        self._prefill_stream = None
        self._switch_interval = SwitchInterval()
        if self.overlap_prefill:
            if self.step.use_cuda_graphs:
                # Captured up front: no capture may run while the prefill thread launches
                # work (a few seconds, Triton's compiles included).
                self.step.capture_all()
            if device.type == "cuda":
                self._prefill_stream = torch.cuda.Stream(device)
                self._switch_interval.enter(_SWITCH_INTERVAL_S)
            self._prefill_thread = threading.Thread(
                target=self.prefiller.serve,
                args=(self._jobs, self._queue, self._prefill_stream),
                name="medmo-prefill",
                daemon=True,
            )
            self._prefill_thread.start()
        self._thread = threading.Thread(target=self._loop, name="medmo-engine", daemon=True)
        self._thread.start()

    @property
    def max_len(self) -> int:
        """Positions available to one request (prompt plus new tokens)."""
        return self.cache.max_len

    def submit(self, request: EngineRequest) -> Future:
        """Queue a request; the future resolves to an :class:`EngineResult`.

        A request the cache cannot hold (prompt plus ``max_new_tokens``) gets a future
        already failed with :class:`.requests.CacheLimitError`.
        """
        if self._closed:
            raise EngineClosedError("the decode engine is closed")
        future: Future = Future()
        try:
            check_fits(request, self.cache.max_len)
        except ValueError as exc:
            future.set_exception(exc)
            return future
        self._queue.put(Submit(request, future))
        return future

    def run_exclusive(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` where prefills run: on the engine thread between two decode steps, or on
        the prefill thread (``overlap_prefill``), alone there (e.g. a sampled ``generate``,
        which must not interleave with another ``generate`` on the same model)."""
        if self._closed:
            raise EngineClosedError("the decode engine is closed")
        future: Future = Future()
        self._queue.put(Exclusive(fn, future))
        return future

    def close(self) -> None:
        """Stop the engine (and prefill) threads after the running requests are abandoned."""
        self._closed = True
        self._queue.put(Close())
        self._thread.join(timeout=30)
        self._switch_interval.exit()

    # ---- the engine thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            block = not self._running
            try:
                while True:
                    message = self._queue.get(block=block)
                    block = False
                    if not self._handle(message):
                        return
            except queue.Empty:
                pass
            self._dispatch()
            if self._running:
                try:
                    self._decode()
                except Exception as exc:  # keep serving: fail the batch, not the engine
                    for run in self._running:
                        if not run.future.done():
                            run.future.set_exception(exc)
                    self._running = []

    def _handle(self, message: Submit | Exclusive | Prefilled | Close) -> bool:
        """Act on one message; False once the engine is to stop."""
        match message:
            case Submit():
                self._backlog.append(message)
            case Prefilled():
                self._take_prefilled(message)
            case Exclusive() if self.overlap_prefill:
                self._jobs.put(message)
            case Exclusive():
                self._dispatch()
                message.run()
            case Close():
                self._shutdown()
                return False
        return True

    def _dispatch(self) -> None:
        """Start prefilling waiting requests, as many as free slots allow."""
        room = self.max_batch - len(self._running) - self._inflight
        if room <= 0 or not self._backlog:
            return
        taken, self._backlog = self._backlog[:room], self._backlog[room:]
        live = [s for s in taken if s.future.set_running_or_notify_cancel()]
        for item in [s for s in live if s.request.cancel is not None and s.request.cancel.is_set()]:
            live.remove(item)  # cancelled while it waited: no prefill, no tokens
            item.future.set_result(_result(item.request, [], "cancelled", time.perf_counter()))
        if not live:
            return
        if self.overlap_prefill:
            self._inflight += len(live)
            self._jobs.put(PrefillBatch(live))
        else:
            for started in self.prefiller.run(live):
                self._start(started)

    def _take_prefilled(self, message: Prefilled) -> None:
        """Give prefilled requests their slots (on the decode thread's stream)."""
        import torch

        self._inflight -= message.count
        if message.event is not None:
            torch.cuda.current_stream().wait_event(message.event)
        for started in message.started:
            self._start(started)
        if message.event is not None:
            # the prompt's keys were allocated on the prefill stream: copied before freed
            torch.cuda.current_stream().synchronize()

    def _shutdown(self) -> None:
        if self._prefill_thread is not None:
            self._jobs.put(Close())
            self._prefill_thread.join(timeout=30)
        error = EngineClosedError("the decode engine was closed")
        waiting: list[Future] = [s.future for s in self._backlog]
        while True:  # what came in after the close, prefills that came back included
            try:
                message = self._queue.get(block=False)
            except queue.Empty:
                break
            match message:
                case Prefilled():
                    waiting.extend(s.future for s in message.started)
                case Submit() | Exclusive():
                    waiting.append(message.future)
        waiting.extend(run.future for run in self._running)
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        self._backlog = []
        self._running = []

    # ---- decoding ------------------------------------------------------------------------

    def _start(self, started: Started) -> None:
        """Deliver the prefill's token and, unless that finished it, give the request a slot."""
        self.stats["prefills"] += 1
        run = _Running(
            request=started.request,
            future=started.future,
            tokens=[],
            length=int(started.keys[0].shape[2]),
            rope_delta=started.rope_delta,
            started=started.started_at,
            first_token_at=time.perf_counter(),
        )
        if self._deliver(run, started.first_token):
            return
        slot = len(self._running)
        self.cache.load_prompt(slot, started.keys, started.values)
        self._running.append(run)
        self.stats["max_running"] = max(self.stats["max_running"], len(self._running))

    def _deliver(self, run: _Running, token: int) -> bool:
        """Record a new token; finish the request if it is done. Returns True when done."""
        run.tokens.append(token)
        self.stats["tokens"] += 1
        request = run.request
        try:
            stop = request.on_token is not None and bool(request.on_token(token))
        except Exception as exc:  # the caller's callback failed: its request ends, with it
            run.future.set_exception(exc)
            return True
        reason = finish_reason(
            ended=token in self.eos or stop,
            count=len(run.tokens),
            limit=request.max_new_tokens,
            cancel=request.cancel,
        )
        if reason is None:
            return False
        now = time.perf_counter()
        run.future.set_result(
            _result(request, run.tokens, reason, now, run.started, run.first_token_at)
        )
        return True

    def _decode(self) -> None:
        """Decode steps for the running batch until it changes or something is waiting.

        On the whole-step path the next step is launched before this one's tokens are read
        back (its inputs are already on the device), so the GPU never waits for the host
        between steps. A row that finishes at a step was decoded one step further; that
        token is dropped (rows never affect each other's results).
        """
        runs = self._running
        pending = self._launch(runs, ahead=False)
        while True:
            ahead = self._launch(runs, ahead=True) if self._may_run_ahead(runs) else None
            kept = self._collect(runs, pending)
            if ahead is None:
                break
            if len(kept) != len(runs):
                kept = self._collect(runs, ahead, only=kept)
                break
            pending = ahead
        if len(kept) != len(runs):
            self._compact(runs, kept)

    def _may_run_ahead(self, runs: list[_Running]) -> bool:
        """Whether the step after the one in flight is worth launching now: the batch
        cannot change by a row's own limit or a cancel, and nothing waits to join."""
        if not self.step.can_advance or not self._queue.empty():
            return False
        for run in runs:
            if len(run.tokens) + 2 > run.request.max_new_tokens:
                return False
            if run.request.cancel is not None and run.request.cancel.is_set():
                return False
        return True

    def _launch(self, runs: list[_Running], ahead: bool) -> tuple[Any, Any]:
        """Start one decode step (from the host's view of the rows, or ``ahead`` from what
        the last step left on the device) and the copy of its tokens to the host."""
        if ahead:
            tokens = self.step.advance()
            self.stats["steps_ahead"] += 1
        else:
            tokens = self.step(
                [r.tokens[-1] for r in runs],
                [r.length + r.rope_delta for r in runs],
                [r.length for r in runs],
            )
        self.stats["steps"] += 1
        if tokens.device.type != "cuda":
            return tokens.clone(), None
        import torch

        host = tokens.to("cpu", non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def _collect(
        self, runs: list[_Running], launched: tuple[Any, Any], only: list[_Running] | None = None
    ) -> list[_Running]:
        """Wait for a launched step's tokens and deliver them (to ``only`` these rows);
        returns the rows still running. Waiting on a CUDA event releases the interpreter
        while the GPU works, so the prefill thread can run."""
        host, done = launched
        if done is not None:
            done.synchronize()
        tokens = host.tolist()
        wanted = None if only is None else {id(run) for run in only}
        keep: list[_Running] = []
        for run, token in zip(runs, tokens, strict=True):
            if wanted is not None and id(run) not in wanted:
                continue
            run.length += 1
            if not self._deliver(run, int(token)):
                keep.append(run)
        return keep

    def _compact(self, before: list[_Running], after: list[_Running]) -> None:
        """Move surviving requests down so they occupy slots 0..n-1 again."""
        slot_of = {id(run): i for i, run in enumerate(before)}
        for new_slot, run in enumerate(after):
            old = slot_of[id(run)]
            if old != new_slot:
                self.cache.move_slot(old, new_slot, run.length)
        self._running = after


def _result(
    request: EngineRequest,
    tokens: list[int],
    reason: str,
    now: float,
    started: float | None = None,
    first_token_at: float | None = None,
) -> EngineResult:
    started = now if started is None else started
    return EngineResult(
        tokens=tokens,
        finish_reason=reason,
        prompt_tokens=request.prompt_tokens,
        queue_seconds=started - request.submitted,
        first_token_seconds=(now if first_token_at is None else first_token_at) - started,
        total_seconds=now - request.submitted,
    )
