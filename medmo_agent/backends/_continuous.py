"""The continuous runner: greedy requests decoded by the continuous-batching engine
(:mod:`.engine`), their tokens turned into streamed text as they arrive.

Imports torch; only :mod:`medmo_agent.backends.transformers` imports this module, lazily.
"""

from __future__ import annotations

from concurrent.futures import Future

from transformers import GenerationConfig

from ._hf_engine import HFEngine, Prepared
from ._rows import TextAssembler
from ._runner import Job, Runner, closed_error, settle
from .base import Completion
from .engine import ContinuousBatcher, EngineRequest, EngineResult

__all__ = ["ContinuousRunner"]


class ContinuousRunner(Runner):
    """Greedy requests through a :class:`ContinuousBatcher`; anything else (sampling) runs
    through ``HFEngine`` on the engine's own thread, so one thread alone drives the GPU.

    Args:
        hf: The batched-generate engine (decoding, end-of-sequence ids, sampled requests).
        max_batch: Requests decoded together.
        use_cuda_graphs: Replay decode steps as CUDA graphs (default: on CUDA).
        kernels: Use the engine's Triton kernels where they can run (CUDA); False keeps
            the model's stock modules.
        prefill_batch: Most prompts prefilled in one call when several arrive together.
    """

    def __init__(
        self,
        hf: HFEngine,
        *,
        max_batch: int,
        use_cuda_graphs: bool | None = None,
        kernels: bool = True,
        prefill_batch: int = 8,
    ):
        self.hf = hf
        greedy = GenerationConfig(
            do_sample=False,
            eos_token_id=sorted(hf.eos_ids) or None,
            pad_token_id=hf.pad_id,
        )
        self.batcher = ContinuousBatcher(
            hf.model,
            eos_token_ids=sorted(hf.eos_ids),
            max_batch=max_batch,
            use_cuda_graphs=use_cuda_graphs,
            generation_config=greedy,
            pad_token_id=hf.pad_id,
            kernels=None if kernels else False,
            prefill_batch=prefill_batch,
        )
        self._closed = False

    @property
    def stats(self) -> dict[str, int]:
        """Engine counters: decode steps, prefills, most requests decoded together."""
        return dict(self.batcher.stats)

    def submit(self, job: Job) -> Future:
        """Queue a prepared request; ``job.future`` resolves to its Completion."""
        if self._closed:
            raise closed_error()
        prepared: Prepared = job.payload
        if prepared.temperature > 0:
            inner = self.batcher.run_exclusive(lambda: self.hf.run_batch([job])[0])
            inner.add_done_callback(lambda done: settle(job, _outcome(done)))
            return job.future
        assembler = TextAssembler(self.hf.decode, prepared.stop, job.on_text)
        request = EngineRequest(
            inputs=prepared.inputs,
            max_new_tokens=prepared.max_new_tokens,
            on_token=assembler.add,
            cancel=job.cancel,
            submitted=job.submitted_at,
        )
        inner = self.batcher.submit(request)
        inner.add_done_callback(lambda done: self._finish(job, assembler, done))
        return job.future

    def _finish(self, job: Job, assembler: TextAssembler, done: Future) -> None:
        """The engine's result -> the caller's Completion (on the engine thread)."""
        outcome = _outcome(done)
        if isinstance(outcome, EngineResult):
            try:
                outcome = self._completion(job.payload, assembler, outcome)
            except Exception as exc:  # the caller's on_text failed on the last piece
                outcome = exc
        settle(job, outcome)

    def _completion(
        self, prepared: Prepared, assembler: TextAssembler, result: EngineResult
    ) -> Completion:
        return Completion(
            text=assembler.finish(),
            model=self.hf.model_id,
            backend=self.hf.backend_name,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=len(result.tokens),
            finish_reason=result.finish_reason,
            image_input_sizes=list(prepared.image_input_sizes),
            queue_seconds=result.queue_seconds,
            first_token_seconds=result.first_token_seconds,
            total_seconds=result.total_seconds,
        )

    def close(self) -> None:
        """Stop the engine thread; requests still running fail."""
        self._closed = True
        self.batcher.close()


def _outcome(done: Future) -> object:
    """A finished future's result, or its exception."""
    exc = done.exception()
    return exc if exc is not None else done.result()
