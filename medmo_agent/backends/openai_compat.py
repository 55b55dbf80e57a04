"""MedMO behind any OpenAI-compatible server: vLLM, SGLang or ``transformers serve``.

This is the scale-out path: the server owns the GPUs (tensor/pipeline parallel,
continuous batching) and this backend speaks the chat-completions API to it through the
official ``openai`` client, which owns HTTP, retries, timeouts and streaming. It imports
neither torch nor transformers.

Starting a server::

    vllm serve MBZUAI/MedMO-8B-Next --limit-mm-per-prompt '{"image":4,"video":0}'
    python -m sglang.launch_server --model-path MBZUAI/MedMO-8B-Next --port 8000
    transformers serve /path/to/checkpoint --host 127.0.0.1 --port 8000

then ``MEDMO_BACKEND=openai MEDMO_BASE_URL=http://localhost:8000/v1``.

Base URL: ``http://host:8000/v1`` and ``http://host:8000`` are the same; a URL with no
path gets ``/v1`` appended, a URL with a path (``https://gateway/medmo/v1``) is used as
given. The API key (``MEDMO_API_KEY`` or ``OPENAI_API_KEY``) goes in a bearer header and
nowhere else; without one, no ``Authorization`` header is sent. The model name is
``served_model`` if set, else ``model``; it must be the name the server knows
(``vllm serve ... --served-model-name`` changes it).

Boxes: each image is resized here to its model-input size (multiples of 32 within
``min_pixels``/``max_pixels``) before it is sent, so the server's own ``smart_resize`` is
the identity and ``Completion.image_input_sizes`` is exactly what the model saw. This
holds as long as the server's pixel budget is at least as large as ours.

``transformers serve`` quirks (transformers 5.x), all handled here:

- Given a model on the command line, the server is pinned to it: requests must name it
  exactly as given there (a local path is named by that path) or get
  ``400 Server is pinned to '...'``.
- It never sends ``data: [DONE]``; the stream just ends after the chunk with usage.
- It always sends usage in the last chunk and ignores ``stream_options`` (with a warning).
- ``stop`` breaks it for vision-language models (the processor is passed where a
  tokenizer is expected): a 500, or an ``{"error": ...}`` event when streaming. When a
  request carrying optional fields (``stop``, ``stream_options``) the server has never
  accepted fails with 400/422/500 (or an error event before any text), it is retried
  once without them; if that works, they are not sent again. Stop strings are always
  also applied here, so they work on any server.
- Without streaming, the reply is whitespace-stripped by its response parser; streamed
  pieces keep the leading space. Compare the two with ``.strip()``.
- It answers one request at a time per model unless started with
  ``--continuous-batching``; concurrent requests queue, they do not fail.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai

from ..config import Settings
from ..errors import BackendError, BackendUnavailableError, LimitExceededError
from ..imaging.geometry import model_input_size
from ..types import ImagePart, MedImage, Message
from ._openai_client import (
    ServerErrors,
    make_client,
    message_of,
    normalize_base_url,
    request_headers,
)
from ._stops import StopFilter, truncate_at_stop
from .base import Backend, Completion, GenerationRequest, TextCallback

__all__ = ["OpenAICompatBackend", "message_of", "normalize_base_url"]

log = logging.getLogger(__name__)

_OPTIONAL_FIELDS = ("stop", "stream_options")


@dataclass
class _Result:
    """What one chat-completions call produced."""

    text: str = ""
    finish: str = "stop"
    usage: Any = None  # the server's usage object, if it sent one
    model: str | None = None
    first_token_at: float | None = None


class OpenAICompatBackend(Backend):
    """Chat completions against an OpenAI-compatible server; thread-safe.

    Args:
        base_url: Server URL, with or without ``/v1``.
        model: Model name the server knows.
        api_key: Bearer token, if the server wants one.
        timeout_s: Seconds to wait for the server (per read while streaming).
        retries: Extra attempts after connection errors and 429/502/503/504.
        backoff_s: First retry delay; it doubles each time (a ``Retry-After`` wins).
        min_pixels: Smallest image budget (Qwen3-VL ``smart_resize``).
        max_pixels: Largest image budget.
        max_new_tokens: Default completion length.
        max_new_tokens_limit: Largest length a request may ask for.
        temperature: Default temperature (0 is greedy).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        min_pixels: int = 65_536,
        max_pixels: int = 1_048_576,
        max_new_tokens: int = 512,
        max_new_tokens_limit: int = 4096,
        temperature: float = 0.0,
    ):
        self.base_url = normalize_base_url(base_url)
        self.model_id = model
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self.max_new_tokens_limit = max_new_tokens_limit
        self.temperature = temperature
        self._headers = request_headers(api_key)
        self._client = make_client(
            self.base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            retries=self.retries,
            backoff_s=backoff_s,
        )
        self._errors = ServerErrors(
            self.base_url, timeout_s=timeout_s, retries=self.retries, has_key=bool(api_key)
        )
        self._lock = threading.Lock()
        self._optional_ok: set[str] = set()  # fields the server has accepted
        self._optional_dropped: set[str] = set()  # fields the server choked on

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatBackend:
        """Build from :class:`Settings` (``base_url``, ``api_key``, ``served_model``, ...)."""
        if not settings.base_url:
            raise BackendUnavailableError(
                "The OpenAI-compatible backend needs the server's URL.",
                input="base_url",
                fix="Set MEDMO_BASE_URL (or --base-url), e.g. http://localhost:8000/v1.",
            )
        return cls(
            settings.base_url,
            settings.served_model or settings.model,
            api_key=settings.api_key,
            timeout_s=settings.request_timeout_s,
            retries=settings.retries,
            min_pixels=settings.min_pixels,
            max_pixels=settings.max_pixels,
            max_new_tokens=settings.max_new_tokens,
            max_new_tokens_limit=settings.max_new_tokens_limit,
            temperature=settings.temperature,
        )

    # ----- public API -----

    def generate(
        self,
        request: GenerationRequest,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Send one chat completion; stream it when ``on_text`` or ``cancel`` is given."""
        start = time.perf_counter()
        max_tokens = request.max_new_tokens or self.max_new_tokens
        if max_tokens > self.max_new_tokens_limit:
            raise LimitExceededError(
                f"max_new_tokens={max_tokens} is over the limit of {self.max_new_tokens_limit}.",
                input="max_new_tokens",
                fix="Ask for fewer tokens, or raise MEDMO_MAX_NEW_TOKENS_LIMIT.",
            )
        messages, sizes = self._encode_messages(request.messages)
        temperature = self.temperature if request.temperature is None else request.temperature
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        stops = list(request.stop or [])
        if stops:
            body["stop"] = stops
        if on_text is not None or cancel is not None:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            result = self._call_with_fallback(
                body, lambda b: self._stream(b, stops, on_text, cancel)
            )
        else:
            result = self._call_with_fallback(body, self._complete)
        if result.finish != "cancelled":
            # the safety net for servers that ignore or reject `stop`
            result.text, cut = truncate_at_stop(result.text, stops)
            result.finish = "stop" if cut else result.finish
        usage = result.usage
        return Completion(
            text=result.text,
            model=result.model or self.model_id,
            backend=self.name,
            prompt_tokens=int(getattr(usage, "prompt_tokens", None) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", None) or 0),
            finish_reason=result.finish,
            image_input_sizes=sizes,
            first_token_seconds=None
            if result.first_token_at is None
            else result.first_token_at - start,
            total_seconds=time.perf_counter() - start,
        )

    def list_models(self) -> list[str]:
        """Names of the models the server offers (``GET /models``)."""
        try:
            page = self._client.models.list(extra_headers=self._headers)
            return [str(m.id) for m in page.data]
        except openai.APIError as exc:
            raise self._errors.translate(exc) from exc
        except (AttributeError, TypeError) as exc:  # not a list of models
            raise self._errors.malformed(str(page)) from exc

    def info(self) -> dict[str, object]:
        """Backend, model, server URL and limits; never the API key."""
        return {
            "backend": self.name,
            "model": self.model_id,
            "base_url": self.base_url,
            "api_key_set": self._errors.has_key,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
        }

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # ----- request building -----

    def _encode_messages(
        self, messages: list[Message]
    ) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
        out: list[dict[str, Any]] = []
        sizes: list[tuple[int, int]] = []
        for message in messages:
            if message.role != "user" and not message.images:
                out.append({"role": message.role, "content": message.text})
                continue
            parts: list[dict[str, Any]] = []
            for part in message.parts:
                if isinstance(part, ImagePart):
                    url, size = self._encode_image(part.image)
                    sizes.append(size)
                    parts.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    parts.append({"type": "text", "text": part.text})
            out.append({"role": message.role, "content": parts})
        return out, sizes

    def _encode_image(self, image: MedImage) -> tuple[str, tuple[int, int]]:
        size = model_input_size(image.size, self.min_pixels, self.max_pixels)
        pil = image.model_input(size)  # bicubic, as the Qwen3-VL image processor resizes
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), size

    # ----- sending -----

    def _call_with_fallback(
        self, body: dict[str, Any], call: Callable[[dict[str, Any]], _Result]
    ) -> _Result:
        """Run ``call(body)``. If it fails with 400/422/500 while carrying optional fields the
        server has never accepted, retry once without them; if that works, stop sending them."""
        with self._lock:
            for name in self._optional_dropped:
                body.pop(name, None)
            unproven = [f for f in _OPTIONAL_FIELDS if f in body and f not in self._optional_ok]
        try:
            result = call(body)
        except openai.APIError as exc:
            if not unproven or _status_of(exc) not in (400, 422, 500):
                raise self._request_error(exc) from exc
            try:
                result = call({k: v for k, v in body.items() if k not in unproven})
            except openai.APIError:
                raise self._request_error(exc) from exc
            log.warning(
                "The server at %s failed on %s; sending requests without them from now on.",
                self.base_url,
                ", ".join(unproven),
            )
            with self._lock:
                self._optional_dropped.update(unproven)
            return result
        with self._lock:
            self._optional_ok.update(unproven)
        return result

    def _request_error(self, exc: openai.APIError) -> BackendError:
        return self._errors.translate(exc, model=self.model_id, served_models=self.list_models)

    def _complete(self, body: dict[str, Any]) -> _Result:
        reply = self._client.chat.completions.create(**body, extra_headers=self._headers)
        try:  # a non-JSON answer comes back as its text
            choice = reply.choices[0]
            return _Result(
                text=choice.message.content or "",
                finish=choice.finish_reason or "stop",
                usage=reply.usage,
                model=reply.model,
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise self._errors.malformed(str(reply)) from exc

    def _stream(
        self,
        body: dict[str, Any],
        stops: list[str],
        on_text: TextCallback | None,
        cancel: threading.Event | None,
    ) -> _Result:
        result = _Result()
        if cancel is not None and cancel.is_set():
            result.finish = "cancelled"
            return result
        pieces: list[str] = []
        stop_filter = StopFilter(stops)

        def emit(text: str) -> None:
            if text:
                pieces.append(text)
                if on_text is not None:
                    on_text(text)

        stream = self._client.chat.completions.create(**body, extra_headers=self._headers)
        try:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    # closing the stream makes the server abandon the generation
                    result.finish = "cancelled"
                    break
                result.model = getattr(chunk, "model", None) or result.model
                result.usage = getattr(chunk, "usage", None) or result.usage
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(choice.delta, "content", None) or ""
                    if delta and result.first_token_at is None:
                        result.first_token_at = time.perf_counter()
                    emit(stop_filter.feed(delta))
                    result.finish = choice.finish_reason or result.finish
                if stop_filter.stopped:
                    result.finish = "stop"
                    break
            else:
                emit(stop_filter.flush())
        except openai.APIConnectionError as exc:  # timeouts included
            raise self._errors.translate(exc, mid_stream=True) from exc
        except openai.APIError as exc:  # an {"error": ...} event
            if pieces:
                raise self._errors.translate(exc, mid_stream=True) from exc
            raise  # nothing shown yet: a failed request, which the fallback may retry
        except json.JSONDecodeError as exc:
            raise self._errors.malformed(exc.doc) from exc
        finally:
            stream.close()
        result.text = "".join(pieces)
        return result


def _status_of(exc: openai.APIError) -> int | None:
    """The HTTP status a failed call amounts to; an error event before any text is a 500."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    return None if isinstance(exc, openai.APIConnectionError) else 500
