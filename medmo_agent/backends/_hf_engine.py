"""Runs a batch of prepared requests through one ``model.generate`` call.

Each request is tokenised (and its images processed) on its caller's thread; here the
rows are left-padded into one batch, generated together, and split back. A stopping
criterion sees every new token of every row: it streams each row's text, applies its
stop strings, its own token limit and its cancel event, and stops that row alone.

Imports torch; only :mod:`medmo_agent.backends.transformers` imports this module, lazily.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ._rows import TextAssembler
from ._runner import Job, free_accelerator_memory
from .base import Completion
from .engine.collate import collate_left_padded
from .engine.requests import finish_reason
from .engine.step import DEFAULT_SDPA_BACKENDS, attention_policy

__all__ = ["HFEngine", "Prepared"]


@dataclass
class Prepared:
    """One request, tokenised and with its images processed (batch of one)."""

    inputs: dict[str, Any]
    prompt_tokens: int
    image_input_sizes: list[tuple[int, int]]
    max_new_tokens: int
    temperature: float
    stop: list[str] = field(default_factory=list)

    @property
    def batch_key(self) -> tuple[bool, float]:
        """Requests batch together only with the same decoding mode."""
        return (self.temperature > 0, round(self.temperature, 6))


class _Row:
    def __init__(self, job: Job, prepared: Prepared, decode):
        self.job = job
        self.prepared = prepared
        self.assembler = TextAssembler(decode, prepared.stop, job.on_text)
        self.generated = 0
        self.finish: str | None = None
        self.error: BaseException | None = None
        self.first_token_at: float | None = None
        self.done_at: float | None = None


class _RowTracker(StoppingCriteria):
    """Per-row streaming, stop strings, limits and cancellation, inside ``generate``."""

    def __init__(self, rows: list[_Row], eos_ids: set[int]):
        self.rows = rows
        self.eos_ids = eos_ids
        self.done = [False] * len(rows)

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        now = time.perf_counter()
        last = input_ids[:, -1].tolist()
        for i, row in enumerate(self.rows):
            if self.done[i]:
                continue
            token = last[i]
            row.generated += 1
            if row.first_token_at is None:
                row.first_token_at = now
            try:
                row.finish = finish_reason(
                    ended=token in self.eos_ids or row.assembler.add(token),
                    count=row.generated,
                    limit=row.prepared.max_new_tokens,
                    cancel=row.job.cancel,
                )
            except Exception as exc:  # a failing on_text callback ends its own row only
                row.error = exc
                row.finish = "cancelled"
            if row.finish is not None:
                self.done[i] = True
                row.done_at = time.perf_counter()
        done = torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)
        return typing.cast("torch.BoolTensor", done)


class HFEngine:
    """Batched generation with a transformers model and its processor.

    Args:
        model: A loaded ``Qwen3VLForConditionalGeneration`` (or any generate-capable model).
        processor: Its processor; its tokenizer decodes the output.
        model_id: Reported in each completion.
    """

    backend_name = "transformers"

    def __init__(self, model: Any, processor: Any, model_id: str):
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.generate_calls = 0
        tokenizer = getattr(processor, "tokenizer", processor)
        self._tokenizer = tokenizer
        gen_config = model.generation_config
        eos = gen_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = eos_ids
        pad = gen_config.pad_token_id
        if pad is None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
        self.pad_id = int(pad)

    def decode(self, tokens: list[int]) -> str:
        """Token ids -> text, special tokens skipped."""
        return self._tokenizer.decode(
            tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    # -- the batched runner's Engine protocol --------------------------------------

    def recover_from_out_of_memory(self) -> None:
        """Release cached blocks so a smaller retry can fit."""
        free_accelerator_memory()

    def run_batch(self, jobs: Sequence[Job]) -> list[Any]:
        """Generate for all ``jobs`` in one ``generate`` call; one Completion per job."""
        start = time.perf_counter()
        rows = [_Row(job, job.payload, self.decode) for job in jobs]
        live = [r for r in rows if not (r.job.cancel is not None and r.job.cancel.is_set())]
        for row in rows:
            if row not in live:
                row.finish = "cancelled"
                row.done_at = start
        if live:
            self._generate(live)
        end = time.perf_counter()
        return [self._completion(row, start, end) for row in rows]

    # -- internals ------------------------------------------------------------------

    def _generate(self, rows: list[_Row]) -> None:
        inputs = self._collate([r.prepared.inputs for r in rows])
        tracker = _RowTracker(rows, self.eos_ids)
        temperature = rows[0].prepared.temperature
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(r.prepared.max_new_tokens for r in rows),
            "stopping_criteria": StoppingCriteriaList([tracker]),
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids),
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            # greedy, whatever sampling defaults the checkpoint's generation_config has
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        self.generate_calls += 1
        with (
            torch.inference_mode(),
            attention_policy(
                DEFAULT_SDPA_BACKENDS, self.model.device, self.model.config._attn_implementation
            ),
        ):
            self.model.generate(**inputs, **kwargs)
        for row in rows:
            if row.finish is None:  # generate stopped on its own (overall length)
                row.finish = "length"

    def _collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_left_padded(items, self.pad_id, self.model.device)

    def _completion(self, row: _Row, start: float, end: float) -> Any:
        if row.error is not None:
            return row.error
        text = row.assembler.finish()
        done_at = row.done_at or end
        return Completion(
            text=text,
            model=self.model_id,
            backend=self.backend_name,
            prompt_tokens=row.prepared.prompt_tokens,
            completion_tokens=row.generated,
            finish_reason=row.finish or "length",
            image_input_sizes=list(row.prepared.image_input_sizes),
            queue_seconds=max(0.0, start - row.job.submitted_at),
            first_token_seconds=(
                None if row.first_token_at is None else row.first_token_at - start
            ),
            total_seconds=done_at - row.job.submitted_at,
        )
