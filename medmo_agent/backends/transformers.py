"""The local backend: MedMO loaded with transformers, one model per process.

``TransformersBackend`` loads a checkpoint (hub id or local folder) with
``Qwen3VLForConditionalGeneration`` and ``AutoProcessor``, exactly as MedMO's model card
does, and serves it from a single worker thread: callers on any thread tokenise their
request, queue it and wait. On a CUDA GPU the worker is the continuous-batching engine
(:mod:`.engine`: static KV cache, CUDA-graph decode steps, requests joining the running
batch between steps; greedy tokens equal ``generate``'s); elsewhere, requests that arrive
together are batched into one ``generate`` call (:mod:`._batched`, :mod:`._hf_engine`).
``Settings.engine`` chooses explicitly; either way the backend holds one runner
(:mod:`._runner`) and hands it each prepared request.

Token limits: a request asking for more than ``settings.max_new_tokens_limit`` new
tokens, or (continuous engine) for more than its KV cache holds after its prompt, is
refused with :class:`LimitExceededError` rather than silently shortened.

Cancellation: setting a request's ``cancel`` event stops that request at its next token
(``finish_reason="cancelled"``, text so far kept); other requests in the same batch go on.

torch and transformers are imported only when a backend is created.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from ..config import DEFAULT_MODEL, Settings
from ..errors import ConfigError, InputError, LimitExceededError
from ..extras import require_local
from ..types import ImagePart, Message
from ._loading import load_checkpoint
from .base import Backend, Completion, GenerationRequest, TextCallback

__all__ = ["TransformersBackend", "to_hf_messages"]


class TransformersBackend(Backend):
    """MedMO on a local GPU (or CPU), batched behind one worker thread.

    Args:
        model: Hub id (``MBZUAI/MedMO-8B-Next``) or local checkpoint folder.
        settings: Everything else (device, dtype, attention, limits, batching, image budget).
    """

    name = "transformers"

    def __init__(self, model: str | None = None, *, settings: Settings | None = None):
        require_local()
        settings = settings or Settings()
        model_id = model or settings.model or DEFAULT_MODEL
        device, dtype_name, attn_implementation = _resolve_runtime(settings)
        if device.startswith("cuda"):
            import torch

            _check_cuda(device, torch)
        loaded, processor = load_checkpoint(
            model_id,
            revision=settings.revision,
            device=device,
            dtype_name=dtype_name,
            attn_implementation=attn_implementation,
            hub_timeout_s=settings.hub_connect_timeout_s,
        )
        self._start(loaded, processor, model_id, settings, device, dtype_name, attn_implementation)

    @classmethod
    def from_loaded(
        cls,
        model: Any,
        processor: Any,
        *,
        settings: Settings | None = None,
        model_id: str = "loaded",
    ) -> TransformersBackend:
        """Serve a model and processor that are already loaded (e.g. built in a script)."""
        self = cls.__new__(cls)
        settings = settings or Settings()
        dtype_name = str(model.dtype).removeprefix("torch.")
        attn = model.config._attn_implementation
        self._start(model, processor, model_id, settings, str(model.device), dtype_name, attn)
        return self

    def _start(
        self,
        model: Any,
        processor: Any,
        model_id: str,
        settings: Settings,
        device: str,
        dtype_name: str,
        attn_implementation: str,
    ) -> None:
        self.settings = settings
        self.model_id = model_id
        self.model, self.processor = model, processor
        self.device, self.dtype_name = device, dtype_name
        self.attn_implementation = attn_implementation
        self._prep_lock = threading.Lock()  # the tokenizer is not safe for concurrent use
        self.engine_mode = _resolve_engine(settings, device, model)
        self.runner = _create_runner(self.engine_mode, model, processor, model_id, settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersBackend:
        """Create the backend ``settings`` describe (model, revision, device, dtype, ...)."""
        return cls(settings.model, settings=settings)

    # -- prompts --------------------------------------------------------------------

    def render_prompt(self, messages: list[Message], tools: list[dict] | None = None) -> str:
        """The exact prompt text the model sees: the checkpoint's chat template applied.

        Args:
            messages: The conversation; images become the vision placeholder tokens.
            tools: Optional OpenAI-style tool schemas, rendered the way the template does.
        """
        hf_messages, _ = to_hf_messages(messages)
        with self._prep_lock:
            return self.processor.apply_chat_template(
                hf_messages, tools=tools or None, add_generation_prompt=True, tokenize=False
            )

    def _prepare(self, request: GenerationRequest):
        from ._hf_engine import Prepared

        if not request.messages:
            raise InputError("The request has no messages.", input="messages")
        max_new = (
            request.max_new_tokens
            if request.max_new_tokens is not None
            else self.settings.max_new_tokens
        )
        limit = self.settings.max_new_tokens_limit
        if max_new < 1:
            raise InputError(
                f"max_new_tokens must be at least 1, got {max_new}.", input="max_new_tokens"
            )
        if max_new > limit:
            raise LimitExceededError(
                f"max_new_tokens={max_new} is over the limit of {limit}.",
                input="max_new_tokens",
                fix=f"Ask for at most {limit} new tokens, or raise MEDMO_MAX_NEW_TOKENS_LIMIT.",
            )
        temperature = (
            request.temperature if request.temperature is not None else self.settings.temperature
        )
        if temperature < 0:
            raise InputError(
                f"temperature must be 0 or more, got {temperature}.", input="temperature"
            )
        hf_messages, images = to_hf_messages(
            request.messages, (self.settings.min_pixels, self.settings.max_pixels)
        )
        tools = getattr(request, "tools", None)
        pixel_budget = {
            "shortest_edge": self.settings.min_pixels,
            "longest_edge": self.settings.max_pixels,
        }
        with self._prep_lock:
            text = self.processor.apply_chat_template(
                hf_messages, tools=tools or None, add_generation_prompt=True, tokenize=False
            )
            kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
            if images:
                kwargs.update(images=images, size=pixel_budget)
            inputs = dict(self.processor(**kwargs))
        patch = int(getattr(self.processor.image_processor, "patch_size", 16))
        sizes = (
            [
                (int(w) * patch, int(h) * patch)
                for _, h, w in inputs.get("image_grid_thw", []).tolist()
            ]
            if images
            else []
        )
        return Prepared(
            inputs=inputs,
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            image_input_sizes=sizes,
            max_new_tokens=int(max_new),
            temperature=float(temperature),
            stop=list(request.stop or []),
        )

    # -- Backend interface ----------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Generate a completion; ``on_text`` receives the text as it is produced.

        Greedy unless the request (or settings) gives a temperature above 0. Blocks until
        the answer is complete; safe to call from many threads at once.
        """
        import time

        from ._runner import Job

        submitted_at = time.perf_counter()
        prepared = self._prepare(request)
        job = Job(
            payload=prepared,
            key=prepared.batch_key,
            on_text=on_text,
            cancel=cancel,
            submitted_at=submitted_at,
        )
        return self.runner.submit(job).result()

    @property
    def stats(self) -> dict[str, int]:
        """The runner's counters. Batched engine: ``generate_calls`` (model.generate),
        ``batches``, ``requests``, ``largest_batch``, ``oom_retries``. Continuous engine:
        ``steps`` (decode steps), ``prefills``, ``max_running``, ``tokens``."""
        return self.runner.stats

    def info(self) -> dict[str, object]:
        """Backend, model, device, dtype, attention implementation and batching limits."""
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.settings.revision,
            "device": str(self.model.device),
            "dtype": self.dtype_name,
            "attn_implementation": self.attn_implementation,
            "engine": self.engine_mode,
            "max_batch_size": self.settings.max_batch_size,
            "batch_wait_ms": self.settings.batch_wait_ms,
            "max_new_tokens_limit": self.settings.max_new_tokens_limit,
        }

    def close(self) -> None:
        """Stop the worker thread (requests still queued fail with BackendError)."""
        self.runner.close()


def to_hf_messages(
    messages: list[Message], pixel_budget: tuple[int, int] | None = None
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Project messages -> Hugging Face chat messages, plus their images as PIL, in order.

    Args:
        messages: The conversation.
        pixel_budget: ``(min_pixels, max_pixels)``: hand each image over already resized
            to the size the processor would choose (bicubic, as it resizes, and the same
            pixels the OpenAI-compatible backend sends). Without it, images go over at
            full size; a 30 Mpx upload would then cost the processor several full-size
            RGB and tensor copies.
    """
    from ..imaging.geometry import model_input_size

    hf: list[dict[str, Any]] = []
    images: list[Any] = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, ImagePart):
                image = part.image
                if pixel_budget is None:
                    images.append(image.to_pil())
                else:
                    images.append(image.model_input(model_input_size(image.size, *pixel_budget)))
                content.append({"type": "image"})
            else:
                content.append({"type": "text", "text": part.text})
        hf.append({"role": message.role, "content": content})
    return hf, images


# -- loading ------------------------------------------------------------------------


def _resolve_runtime(settings: Settings) -> tuple[str, str, str]:
    import torch

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_gpu = device.startswith("cuda")
    dtype = settings.dtype
    if dtype == "auto":
        dtype = "bfloat16" if on_gpu else "float32"
    attn = settings.attn_implementation
    if attn == "auto":
        # The continuous engine (the GPU default) runs its own decode attention and reads
        # prompts through SDPA's flash kernel; flash-attn 2 only serves batched generate.
        has_fa2 = importlib.util.find_spec("flash_attn") is not None
        batched = settings.engine == "batched"
        use_fa2 = on_gpu and has_fa2 and dtype != "float32" and batched
        attn = "flash_attention_2" if use_fa2 else "sdpa"
    return device, dtype, attn


def _check_cuda(device: str, torch: Any) -> None:
    """A CUDA device that is not there is an error, not a silent fall back to the CPU."""
    if not torch.cuda.is_available():
        why = (
            "this PyTorch build has no CUDA support"
            if torch.version.cuda is None
            else "no CUDA GPU is visible (driver, CUDA_VISIBLE_DEVICES)"
        )
        raise ConfigError(
            f"Device {device!r} was asked for, but {why}.",
            input="device",
            fix="Use --device cpu (MEDMO_DEVICE=cpu; far too slow for the real model), run on "
            "a machine with a GPU, or reach a GPU server with --backend openai --base-url URL.",
        )
    index = device.partition(":")[2]
    count = torch.cuda.device_count()
    if index and (not index.isdigit() or int(index) >= count):
        raise ConfigError(
            f"Device {device!r} does not exist: {count} CUDA GPU(s) visible (cuda:0 to "
            f"cuda:{count - 1}).",
            input="device",
            fix="Pass --device cuda, or cuda:N with N below the number of GPUs.",
        )


def _create_runner(mode: str, model: Any, processor: Any, model_id: str, settings: Settings):
    """The runner that serves this backend: the continuous engine or batched ``generate``."""
    from ._hf_engine import HFEngine

    hf = HFEngine(model, processor, model_id)
    if mode == "continuous":
        from ._continuous import ContinuousRunner

        return ContinuousRunner(
            hf,
            max_batch=settings.max_batch_size,
            kernels=settings.kernels,
            prefill_batch=settings.prefill_batch_size,
        )
    from ._batched import BatchedRunner

    return BatchedRunner(
        hf, max_batch_size=settings.max_batch_size, batch_wait_s=settings.batch_wait_ms / 1000.0
    )


def _resolve_engine(settings: Settings, device: str, model: Any) -> str:
    """Which decode engine serves: continuous batching on CUDA (when the model's attention
    allows it), batched ``generate`` elsewhere, unless settings name one."""
    from .engine import DecodeStep

    mode = settings.engine
    if mode not in ("auto", "continuous", "batched"):
        raise ConfigError(
            f"Unknown engine {mode!r}.",
            input="engine",
            fix="Set MEDMO_ENGINE to auto, continuous or batched.",
        )
    if mode == "auto":
        mode = "continuous" if device.startswith("cuda") else "batched"
    if mode == "continuous" and not DecodeStep.supports(model):
        return "batched"
    return mode
