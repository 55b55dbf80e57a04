"""Continuous batching: one thread owns the decode loop; requests join the running batch
between decode steps and leave it as soon as they finish, so nobody waits for a whole batch.

Prefill runs through ``model.generate`` for one new token (the exact prompt computation,
deepstack vision features included); its keys and values are copied into a free slot of
the static cache, and from then on the request advances one token per decode step.

On CUDA, prefills run on a second thread and CUDA stream (``overlap_prefill``), so running
requests keep decoding while a new prompt is read instead of pausing for it: a prompt with
an image is tens of milliseconds of mostly launch-bound work, which the decode steps fill.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .collate import collate_left_padded
from .fused import install_fused_kernels
from .kv_cache import StaticKVCache, plan_cache
from .step import DEFAULT_SDPA_BACKENDS, DecodeStep, triton_available

__all__ = ["ContinuousBatcher", "EngineRequest", "EngineResult"]


@dataclass
class EngineRequest:
    """One prompt to decode greedily.

    ``inputs`` is the processor's output for this prompt alone (batch of one, on any
    device). ``on_token`` is called with each new token id from the engine thread and may
    return True to stop the request (a stop string was reached).
    """

    inputs: dict[str, Any]
    max_new_tokens: int
    on_token: Callable[[int], bool | None] | None = None
    cancel: threading.Event | None = None
    submitted: float = field(default_factory=time.perf_counter)


@dataclass
class EngineResult:
    """Generated token ids (end-of-sequence token included when it came) and timings."""

    tokens: list[int]
    finish_reason: str
    prompt_tokens: int
    queue_seconds: float
    first_token_seconds: float
    total_seconds: float


@dataclass
class _Prefilled:
    """Prefill results handed from the prefill thread to the decode thread."""

    entries: list[tuple]  # (request, future, first, keys, values, delta, started)
    count: int  # requests this batch of work covered (failed ones included)
    event: Any = None  # CUDA event recorded after the prefill's kernels


@dataclass
class _Running:
    request: EngineRequest
    future: Future
    tokens: list[int]
    length: int  # cached positions
    rope_delta: int
    started: float
    first_token_at: float
    limit: int


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
        self.generation_config = generation_config
        self.device = device
        self._queue: queue.Queue[tuple[Any, Future] | None] = queue.Queue()
        self._running: list[_Running] = []
        self._closed = False
        self.pad_token_id = pad_token_id if pad_token_id is not None else (eos_token_ids or [0])[0]
        # Prompts that arrive together are prefilled together, up to this many at once.
        self.prefill_batch = prefill_batch
        self.stats = {
            "steps": 0,
            "steps_ahead": 0,  # launched before the previous step's tokens were read
            "prefills": 0,
            "batched_prefills": 0,
            "max_running": 0,
            "tokens": 0,
        }
        self._backlog: list[tuple[EngineRequest, Future]] = []
        self._inflight = 0  # requests handed to the prefill thread, not yet back
        if overlap_prefill is None:
            # Stock modules choose SDPA kernels through global flags that a prefill on
            # another thread would toggle mid-step: overlap with the kernels only.
            overlap_prefill = device.type == "cuda" and bool(kernels)
        self.overlap_prefill = overlap_prefill
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._prefill_thread = None
        self._prefill_stream = None
        if self.overlap_prefill:
            if self.step.use_cuda_graphs:
                # Captured up front: no capture may run while the prefill thread launches
                # work (a few seconds, Triton's compiles included).
                self.step.capture_all()
            if device.type == "cuda":
                self._prefill_stream = torch.cuda.Stream(device)
                # The decode thread needs the interpreter for a moment each step; a shorter
                # switch interval keeps a prefill's Python from holding it for 5 ms at a time.
                sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
            self._prefill_thread = threading.Thread(
                target=self._prefill_loop, name="medmo-prefill", daemon=True
            )
            self._prefill_thread.start()
        self._thread = threading.Thread(target=self._loop, name="medmo-engine", daemon=True)
        self._thread.start()

    @property
    def max_len(self) -> int:
        """Positions available to one request (prompt plus new tokens)."""
        return self.cache.max_len

    def submit(self, request: EngineRequest) -> Future:
        """Queue a request; the future resolves to an :class:`EngineResult`."""
        if self._closed:
            raise RuntimeError("the decode engine is closed")
        future: Future = Future()
        self._queue.put((request, future))
        return future

    def run_exclusive(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` where prefills run: on the engine thread between two decode steps, or on
        the prefill thread (``overlap_prefill``), alone there (e.g. a sampled ``generate``,
        which must not interleave with another ``generate`` on the same model)."""
        if self._closed:
            raise RuntimeError("the decode engine is closed")
        future: Future = Future()
        self._queue.put((fn, future))
        return future

    def close(self) -> None:
        """Stop the engine (and prefill) threads after the running requests are abandoned."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    # ---- the engine thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            block = not self._running
            try:
                while True:
                    item = self._queue.get(block=block)
                    block = False
                    if item is None:
                        self._shutdown()
                        return
                    if isinstance(item, _Prefilled):
                        self._take_prefilled(item)
                    elif isinstance(item[0], EngineRequest):
                        self._backlog.append(item)
                    elif self.overlap_prefill:
                        self._jobs.put(item)
                    else:
                        self._dispatch()
                        self._call(*item)
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

    def _dispatch(self) -> None:
        """Start prefilling waiting requests, as many as free slots allow."""
        room = self.max_batch - len(self._running) - self._inflight
        if room <= 0 or not self._backlog:
            return
        taken, self._backlog = self._backlog[:room], self._backlog[room:]
        live = [(r, f) for r, f in taken if f.set_running_or_notify_cancel()]
        if not live:
            return
        if self.overlap_prefill:
            self._inflight += len(live)
            self._jobs.put(live)
        else:
            for entry in self._prefill_entries(live):
                self._start(*entry)

    def _take_prefilled(self, item: _Prefilled) -> None:
        """Give prefilled requests their slots (on the decode thread's stream)."""
        import torch

        self._inflight -= item.count
        if item.event is not None:
            torch.cuda.current_stream().wait_event(item.event)
        for entry in item.entries:
            self._start(*entry)
        if item.event is not None:
            # the prompt's keys were allocated on the prefill stream: copied before freed
            torch.cuda.current_stream().synchronize()

    def _shutdown(self) -> None:
        if self._prefill_thread is not None:
            self._jobs.put(None)
            self._prefill_thread.join(timeout=30)
        error = RuntimeError("the decode engine was closed")
        while True:  # prefills that came back after the close
            try:
                item = self._queue.get(block=False)
            except queue.Empty:
                break
            if isinstance(item, _Prefilled):
                for entry in item.entries:
                    if not entry[1].done():
                        entry[1].set_exception(error)
            elif item is not None and not item[1].done():
                item[1].set_exception(error)
        for _, future in self._backlog:
            if not future.done():
                future.set_exception(error)
        self._backlog = []
        self._abandon()

    # ---- prefill -------------------------------------------------------------------------

    def _prefill_loop(self) -> None:
        """The prefill thread: everything waiting is prefilled together (in groups of
        ``prefill_batch``), on its own CUDA stream; results go back to the decode thread."""
        import torch

        while True:
            jobs = [self._jobs.get()]
            while True:
                try:
                    jobs.append(self._jobs.get(block=False))
                except queue.Empty:
                    break
            live: list[tuple[EngineRequest, Future]] = []
            stop = False
            for job in jobs:
                if job is None:
                    stop = True
                elif isinstance(job, list):
                    live.extend(job)
                else:
                    self._call(*job)
            if live:
                stream = self._prefill_stream
                entries: list[tuple] = []
                event = None
                try:
                    with (
                        torch.cuda.stream(stream)
                        if stream is not None
                        else contextlib.nullcontext()
                    ):
                        entries = self._prefill_entries(live)
                        if stream is not None:
                            event = torch.cuda.Event()
                            event.record(stream)
                except Exception as exc:  # never leave the decode thread waiting for these
                    for _, future in live:
                        if not future.done():
                            future.set_exception(exc)
                    entries = []
                self._queue.put(_Prefilled(entries=entries, count=len(live), event=event))
            if stop:
                return

    def _prefill_entries(self, live: list[tuple[EngineRequest, Future]]) -> list[tuple]:
        """Prefill requests: alone (exactly ``generate``'s prefill) when one came, in
        left-padded groups when several did. A request that fails has its future failed and
        no entry; the others' entries are ``_start``'s arguments."""
        entries: list[tuple] = []
        if len(live) == 1 or self.prefill_batch <= 1:
            for request, future in live:
                entries.extend(self._prefill_one(request, future))
            return entries
        for start in range(0, len(live), self.prefill_batch):
            group = live[start : start + self.prefill_batch]
            try:
                prefilled = self._prefill_many([r for r, _ in group])
            except Exception:  # e.g. out of memory for the group: one at a time instead
                for request, future in group:
                    entries.extend(self._prefill_one(request, future))
                continue
            for (request, future), (first, keys, values, delta, started) in zip(
                group, prefilled, strict=True
            ):
                entries.append((request, future, first, keys, values, delta, started))
        return entries

    def _prefill_one(self, request: EngineRequest, future: Future) -> list[tuple]:
        started = time.perf_counter()
        try:
            first, keys, values, delta = self._prefill(request)
        except Exception as exc:
            future.set_exception(exc)
            return []
        return [(request, future, first, keys, values, delta, started)]

    @staticmethod
    def _call(fn: Callable[[], Any], future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # delivered to the caller, the engine goes on
            future.set_exception(exc)

    def _abandon(self) -> None:
        for run in self._running:
            if not run.future.done():
                run.future.set_exception(RuntimeError("the decode engine was closed"))
        self._running = []

    def _start(
        self,
        request: EngineRequest,
        future: Future,
        first: int,
        keys: list[Any],
        values: list[Any],
        delta: int,
        started: float,
    ) -> None:
        """Deliver the prefill's token and, unless that finished it, give the request a slot."""
        self.stats["prefills"] += 1
        prompt_len = int(keys[0].shape[2])
        limit = min(request.max_new_tokens, self.cache.max_len - prompt_len)
        run = _Running(
            request=request,
            future=future,
            tokens=[],
            length=prompt_len,
            rope_delta=delta,
            started=started,
            first_token_at=time.perf_counter(),
            limit=max(1, limit),
        )
        if self._deliver(run, first):
            return
        slot = len(self._running)
        self.cache.load_prompt(slot, keys, values)
        self._running.append(run)
        self.stats["max_running"] = max(self.stats["max_running"], len(self._running))

    def _prefill_many(self, requests: list[EngineRequest]) -> list[tuple]:
        """One left-padded ``generate`` call for several prompts; each row's keys and values
        are cut from the padded cache (M-RoPE positions count real tokens only)."""
        import torch

        started = time.perf_counter()
        lengths = [int(r.inputs["input_ids"].shape[1]) for r in requests]
        too_long = [n for n in lengths if n >= self.cache.max_len]
        if too_long:
            raise ValueError("a prompt does not fit the KV cache")
        batch = collate_left_padded([r.inputs for r in requests], self.pad_token_id, self.device)
        with torch.inference_mode(), self.step.attention_policy():
            out = self.model.generate(
                **batch,
                max_new_tokens=1,
                do_sample=False,
                return_dict_in_generate=True,
                generation_config=self.generation_config,
            )
        cache = getattr(out, "cache", None) or out.past_key_values
        padded = int(batch["input_ids"].shape[1])
        deltas = self.model.model.rope_deltas.view(-1).tolist()
        firsts = out.sequences[:, -1].tolist()
        results = []
        for i, length in enumerate(lengths):
            pad = padded - length
            keys = [layer.keys[i : i + 1, :, pad:] for layer in cache.layers]
            values = [layer.values[i : i + 1, :, pad:] for layer in cache.layers]
            results.append((int(firsts[i]), keys, values, int(deltas[i]), started))
        self.stats["batched_prefills"] += 1
        return results

    def _prefill(self, request: EngineRequest) -> tuple[int, list[Any], list[Any], int]:
        import torch

        inputs = {k: _to(v, self.device) for k, v in request.inputs.items()}
        prompt_len = int(inputs["input_ids"].shape[1])
        if prompt_len >= self.cache.max_len:
            raise ValueError(
                f"prompt of {prompt_len} tokens does not fit the KV cache "
                f"({self.cache.max_len} positions per request)"
            )
        with torch.inference_mode(), self.step.attention_policy():
            out = self.model.generate(
                **inputs,
                max_new_tokens=1,
                do_sample=False,
                return_dict_in_generate=True,
                generation_config=self.generation_config,
            )
        cache = getattr(out, "cache", None) or out.past_key_values
        keys = [layer.keys for layer in cache.layers]
        values = [layer.values for layer in cache.layers]
        deltas = getattr(self.model.model, "rope_deltas", None)
        delta = int(deltas.view(-1)[0]) if deltas is not None else 0
        return int(out.sequences[0, -1]), keys, values, delta

    def _deliver(self, run: _Running, token: int) -> bool:
        """Record a new token; finish the request if it is done. Returns True when done."""
        run.tokens.append(token)
        self.stats["tokens"] += 1
        stop = False
        if run.request.on_token is not None:
            try:
                stop = bool(run.request.on_token(token))
            except Exception:  # a broken callback must not take the engine down
                stop = True
        reason = None
        if token in self.eos or stop:
            reason = "stop"
        elif run.request.cancel is not None and run.request.cancel.is_set():
            reason = "cancelled"
        elif len(run.tokens) >= run.limit:
            reason = "length"
        if reason is None:
            return False
        now = time.perf_counter()
        run.future.set_result(
            EngineResult(
                tokens=run.tokens,
                finish_reason=reason,
                prompt_tokens=int(run.request.inputs["input_ids"].shape[1]),
                queue_seconds=run.started - run.request.submitted,
                first_token_seconds=run.first_token_at - run.started,
                total_seconds=now - run.request.submitted,
            )
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
            if len(run.tokens) + 2 > run.limit or run.length + 2 > self.cache.max_len:
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


def _to(value: Any, device: Any) -> Any:
    return value.to(device) if hasattr(value, "to") else value
