"""The transformers backend's fast path: greedy requests decoded by the continuous-batching
engine (:mod:`.engine`), their tokens turned into streamed text as they arrive.

Imports torch; only :mod:`medmo_agent.backends.transformers` imports this module, lazily.
"""

from __future__ import annotations

import threading

import torch
from transformers import GenerationConfig

from ..errors import BackendError, GPUOutOfMemoryError, LimitExceededError, MedmoError
from ._hf_engine import HFEngine, Prepared
from ._rows import TextAssembler
from .base import Completion, TextCallback
from .engine import ContinuousBatcher, EngineRequest

__all__ = ["ContinuousRunner"]


class ContinuousRunner:
    """Greedy requests through a :class:`ContinuousBatcher`; anything else (sampling) runs
    through ``HFEngine`` on the engine's own thread, so one thread alone drives the GPU.

    Args:
        hf: The batched-generate engine (decoding, end-of-sequence ids, sampled requests).
        max_batch: Requests decoded together.
        use_cuda_graphs: Replay decode steps as CUDA graphs (default: on CUDA).
        kernels: Use the engine's Triton kernels where they can run (CUDA); False keeps
            the model's stock modules.
    """

    def __init__(
        self,
        hf: HFEngine,
        *,
        max_batch: int,
        use_cuda_graphs: bool | None = None,
        kernels: bool = True,
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
        )

    @property
    def stats(self) -> dict[str, int]:
        """Engine counters: decode steps, prefills, most requests decoded together."""
        return dict(self.batcher.stats)

    def run(
        self,
        prepared: Prepared,
        on_text: TextCallback | None,
        cancel: threading.Event | None,
        submitted_at: float,
    ) -> Completion:
        """Decode one prepared request; blocks until it is finished."""
        if prepared.temperature > 0:
            return self._run_sampled(prepared, on_text, cancel, submitted_at)
        assembler = TextAssembler(self.hf.decode, prepared.stop, on_text)
        request = EngineRequest(
            inputs=prepared.inputs,
            max_new_tokens=prepared.max_new_tokens,
            on_token=assembler.add,
            cancel=cancel,
            submitted=submitted_at,
        )
        try:
            result = self.batcher.submit(request).result()
        except BaseException as exc:
            raise _translate(exc, prepared) from exc
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

    def _run_sampled(
        self,
        prepared: Prepared,
        on_text: TextCallback | None,
        cancel: threading.Event | None,
        submitted_at: float,
    ) -> Completion:
        from ._scheduler import Job

        job = Job(payload=prepared, on_text=on_text, cancel=cancel, submitted_at=submitted_at)
        try:
            (result,) = self.batcher.run_exclusive(lambda: self.hf.run_batch([job])).result()
        except BaseException as exc:
            raise _translate(exc, prepared) from exc
        if isinstance(result, BaseException):
            raise _translate(result, prepared) from result
        return result

    def close(self) -> None:
        """Stop the engine thread."""
        self.batcher.close()


def _translate(exc: BaseException, prepared: Prepared) -> MedmoError:
    if isinstance(exc, MedmoError):
        return exc
    if isinstance(exc, torch.OutOfMemoryError):
        torch.cuda.empty_cache()
        return GPUOutOfMemoryError("The GPU ran out of memory while generating this answer.")
    if isinstance(exc, ValueError) and "does not fit the KV cache" in str(exc):
        return LimitExceededError(
            f"The prompt ({prepared.prompt_tokens} tokens) is longer than the KV cache holds.",
            input="messages",
            fix="Use a smaller image (MEDMO_MAX_PIXELS) or a shorter prompt, or lower "
            "MEDMO_MAX_BATCH_SIZE so each request gets a longer cache.",
        )
    return BackendError(
        f"Generation failed: {type(exc).__name__}: {exc}",
        fix="Retry the request; if it keeps failing, report the error.",
    )
