"""Reading prompts: ``model.generate`` for one new token (the exact prompt computation,
deepstack vision features included), its keys and values kept for the static cache.

One prompt is prefilled alone, exactly as ``generate`` does; prompts that arrive together
are left-padded into one call and each row's keys and values are cut from the padded cache
(M-RoPE positions count real tokens only, so the rows equal their single prefills).
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from .collate import collate_left_padded
from .requests import Close, EngineRequest, Exclusive, PrefillBatch, Prefilled, Started, Submit

__all__ = ["Prefiller", "SwitchInterval"]


class Prefiller:
    """Prefills requests for the decode engine.

    Args:
        model: The model the engine decodes with.
        device: Where prompts are read.
        generation_config: Passed to ``generate`` (greedy, end tokens).
        pad_token_id: Pads prompts prefilled together.
        batch: Most prompts prefilled in one call; 1 prefills every request alone.
        attention_policy: Context manager factory choosing the SDPA kernels.
        stats: The engine's counters (``batched_prefills`` is counted here).
    """

    def __init__(
        self,
        model: Any,
        *,
        device: Any,
        generation_config: Any,
        pad_token_id: int,
        batch: int,
        attention_policy: Callable[[], Any],
        stats: dict[str, int],
    ):
        self.model = model
        self.device = device
        self.generation_config = generation_config
        self.pad_token_id = pad_token_id
        self.batch = batch
        self.attention_policy = attention_policy
        self.stats = stats

    def run(self, live: list[Submit]) -> list[Started]:
        """Prefill requests: alone when one came, in left-padded groups when several did.
        A request that fails has its future failed and nothing returned for it."""
        started: list[Started] = []
        if len(live) == 1 or self.batch <= 1:
            for item in live:
                started.extend(self._one(item))
            return started
        for first in range(0, len(live), self.batch):
            group = live[first : first + self.batch]
            try:
                started.extend(self._many(group))
            except Exception:  # e.g. out of memory for the group: one at a time instead
                for item in group:
                    started.extend(self._one(item))
        return started

    def serve(self, jobs: queue.Queue, replies: queue.Queue, stream: Any = None) -> None:
        """The prefill thread: everything waiting in ``jobs`` is prefilled together (in
        groups of ``batch``), on ``stream``; results go to ``replies`` as :class:`Prefilled`.
        Exclusive work runs here too, alone; :class:`Close` ends the loop."""
        import torch

        while True:
            messages = [jobs.get()]
            while True:
                try:
                    messages.append(jobs.get(block=False))
                except queue.Empty:
                    break
            live: list[Submit] = []
            stop = False
            for message in messages:
                match message:
                    case Close():
                        stop = True
                    case PrefillBatch():
                        live.extend(message.requests)
                    case Exclusive():
                        message.run()
            if live:
                started: list[Started] = []
                event = None
                try:
                    with torch.cuda.stream(stream) if stream is not None else nullcontext():
                        started = self.run(live)
                        if stream is not None:
                            event = torch.cuda.Event()
                            event.record(stream)
                except Exception as exc:  # never leave the decode thread waiting for these
                    for item in live:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    started = []
                replies.put(Prefilled(started=started, count=len(live), event=event))
            if stop:
                return

    def _one(self, item: Submit) -> list[Started]:
        started_at = time.perf_counter()
        try:
            first, keys, values, delta = self._prefill(item.request)
        except Exception as exc:
            item.future.set_exception(exc)
            return []
        return [Started(item.request, item.future, first, keys, values, delta, started_at)]

    def _generate_one_token(self, inputs: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode(), self.attention_policy():
            return self.model.generate(
                **inputs,
                max_new_tokens=1,
                do_sample=False,
                return_dict_in_generate=True,
                generation_config=self.generation_config,
            )

    def _many(self, group: list[Submit]) -> list[Started]:
        """One left-padded ``generate`` call for several prompts."""
        started_at = time.perf_counter()
        requests = [item.request for item in group]
        batch = collate_left_padded([r.inputs for r in requests], self.pad_token_id, self.device)
        out = self._generate_one_token(batch)
        cache = getattr(out, "cache", None) or out.past_key_values
        padded = int(batch["input_ids"].shape[1])
        deltas = self.model.model.rope_deltas.view(-1).tolist()
        firsts = out.sequences[:, -1].tolist()
        started = []
        for i, item in enumerate(group):
            pad = padded - item.request.prompt_tokens
            keys = [layer.keys[i : i + 1, :, pad:] for layer in cache.layers]
            values = [layer.values[i : i + 1, :, pad:] for layer in cache.layers]
            started.append(
                Started(
                    item.request,
                    item.future,
                    int(firsts[i]),
                    keys,
                    values,
                    int(deltas[i]),
                    started_at,
                )
            )
        self.stats["batched_prefills"] += 1
        return started

    def _prefill(self, request: EngineRequest) -> tuple[int, list[Any], list[Any], int]:
        inputs = {k: _to(v, self.device) for k, v in request.inputs.items()}
        out = self._generate_one_token(inputs)
        cache = getattr(out, "cache", None) or out.past_key_values
        keys = [layer.keys for layer in cache.layers]
        values = [layer.values for layer in cache.layers]
        deltas = getattr(self.model.model, "rope_deltas", None)
        delta = int(deltas.view(-1)[0]) if deltas is not None else 0
        return int(out.sequences[0, -1]), keys, values, delta


def _to(value: Any, device: Any) -> Any:
    return value.to(device) if hasattr(value, "to") else value


class SwitchInterval:
    """The interpreter's switch interval, shortened while prefills overlap decoding and put
    back when the engine closes.

    Why: with ``overlap_prefill`` the decode thread needs the interpreter for a moment each
    step (tens of microseconds) while the prefill thread, and callers preparing images, run
    Python for milliseconds. At the default 5 ms interval any of them can keep the decode
    thread (and so the GPU) idle for 5 ms at a time. The setting is process-wide by nature,
    so it is held only from the engine's start to its ``close``.
    """

    def __init__(self) -> None:
        self._previous: float | None = None

    def enter(self, interval: float) -> None:
        """Shorten the interval to at most ``interval`` seconds."""
        self._previous = sys.getswitchinterval()
        sys.setswitchinterval(min(self._previous, interval))

    def exit(self) -> None:
        """Put the interval back as it was before :meth:`enter`."""
        if self._previous is not None:
            sys.setswitchinterval(self._previous)
            self._previous = None
