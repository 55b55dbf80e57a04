"""MedMO behind any OpenAI-compatible server: vLLM, SGLang or ``transformers serve``.

This is the scale-out path: the server owns the GPUs (tensor/pipeline parallel,
continuous batching) and this backend speaks the chat-completions API to it over HTTP
with ``httpx``. It imports neither torch nor transformers.

Starting a server::

    vllm serve MBZUAI/MedMO-8B-Next --limit-mm-per-prompt '{"image":4,"video":0}'
    python -m sglang.launch_server --model-path MBZUAI/MedMO-8B-Next --port 8000
    transformers serve /path/to/checkpoint --host 127.0.0.1 --port 8000

then ``MEDMO_BACKEND=openai MEDMO_BASE_URL=http://localhost:8000/v1``.

Base URL: ``http://host:8000/v1`` and ``http://host:8000`` are the same; a URL with no
path gets ``/v1`` appended, a URL with a path (``https://gateway/medmo/v1``) is used as
given. The API key (``MEDMO_API_KEY`` or ``OPENAI_API_KEY``) goes in a bearer header and
nowhere else. The model name is ``served_model`` if set, else ``model``; it must be the
name the server knows (``vllm serve ... --served-model-name`` changes it).

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
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..config import Settings
from ..errors import BackendUnavailableError, LimitExceededError
from ..imaging.geometry import model_input_size
from ..types import ImagePart, MedImage, Message
from ._http import ServerClient, StatusError, normalize_base_url
from ._sse import StopFilter, iter_sse_data, truncate_at_stop
from .base import Backend, Completion, GenerationRequest, TextCallback

__all__ = ["OpenAICompatBackend", "normalize_base_url"]

log = logging.getLogger(__name__)

#: (text, finish_reason, usage, model name, time of first token)
_Result = tuple[str, str, dict[str, Any], "str | None", "float | None"]

_OPTIONAL_FIELDS = ("stop", "stream_options")


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
        self.server = ServerClient(
            base_url, api_key=api_key, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s
        )
        self.base_url = self.server.base_url
        self.model_id = model
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self.max_new_tokens_limit = max_new_tokens_limit
        self.temperature = temperature
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
        if request.stop:
            body["stop"] = list(request.stop)
        streaming = on_text is not None or cancel is not None
        stops = list(request.stop or [])
        if streaming:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            text, finish, usage, model, first = self._call_with_fallback(
                body, lambda b: self._stream(b, stops, on_text, cancel)
            )
        else:
            text, finish, usage, model, first = self._call_with_fallback(body, self._complete)
        if finish != "cancelled":
            # the safety net for servers that ignore or reject `stop`
            text, cut = truncate_at_stop(text, stops)
            finish = "stop" if cut else finish
        return Completion(
            text=text,
            model=model or self.model_id,
            backend=self.name,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=finish,
            image_input_sizes=sizes,
            first_token_seconds=None if first is None else first - start,
            total_seconds=time.perf_counter() - start,
        )

    def list_models(self) -> list[str]:
        """Names of the models the server offers (``GET /models``)."""
        return self.server.list_models()

    def info(self) -> dict[str, object]:
        """Backend, model, server URL and limits; never the API key."""
        return {
            "backend": self.name,
            "model": self.model_id,
            "base_url": self.base_url,
            "api_key_set": self.server.has_key,
            "timeout_s": self.server.timeout_s,
            "retries": self.server.retries,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
        }

    def close(self) -> None:
        """Close the connection pool."""
        self.server.close()

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

    def _call_with_fallback(self, body: dict[str, Any], call: Callable[[dict[str, Any]], _Result]):
        """Run ``call(body)``. If it fails with 400/422/500 while carrying optional fields the
        server has never accepted, retry once without them; if that works, stop sending them."""
        with self._lock:
            for name in self._optional_dropped:
                body.pop(name, None)
            unproven = [f for f in _OPTIONAL_FIELDS if f in body and f not in self._optional_ok]
        try:
            result = call(body)
        except StatusError as exc:
            if not unproven or exc.response.status_code not in (400, 422, 500):
                raise self.server.status_error(exc.response, self.model_id) from None
            try:
                result = call({k: v for k, v in body.items() if k not in unproven})
            except StatusError:
                raise self.server.status_error(exc.response, self.model_id) from None
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

    def _complete(self, body: dict[str, Any]) -> _Result:
        response = self.server.send("POST", "/chat/completions", body)
        if response.status_code >= 400:
            raise StatusError(response)
        data = self.server.json(response)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self.server.malformed(str(data)) from exc
        finish = choice.get("finish_reason") or "stop"
        return text, finish, data.get("usage") or {}, data.get("model"), None

    def _stream(
        self,
        body: dict[str, Any],
        stops: list[str],
        on_text: TextCallback | None,
        cancel: threading.Event | None,
    ) -> _Result:
        pieces: list[str] = []
        usage: dict[str, Any] = {}
        finish, model, first = "stop", None, None
        stop_filter = StopFilter(stops)
        if cancel is not None and cancel.is_set():
            return "", "cancelled", usage, model, first

        def emit(text: str) -> None:
            if text:
                pieces.append(text)
                if on_text is not None:
                    on_text(text)

        response = self.server.send("POST", "/chat/completions", body, stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise StatusError(response)
            for payload in iter_sse_data(response.iter_lines()):
                if cancel is not None and cancel.is_set():
                    # closing the stream makes the server abandon the generation
                    finish = "cancelled"
                    break
                chunk = self.server.parse_chunk(payload)
                if "error" in chunk:
                    if pieces:
                        raise self.server.stream_error(chunk)
                    # nothing shown yet: treat it as a failed request (see _call_with_fallback)
                    raise StatusError(httpx.Response(500, json=chunk, request=response.request))
                model = chunk.get("model") or model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content") or ""
                    if delta and first is None:
                        first = time.perf_counter()
                    emit(stop_filter.feed(delta))
                    finish = choice.get("finish_reason") or finish
                if stop_filter.stopped:
                    finish = "stop"
                    break
            else:
                emit(stop_filter.flush())
        except httpx.TimeoutException as exc:
            raise self.server.timeout_error(exc) from exc
        except httpx.TransportError as exc:
            raise self.server.broken_stream_error(exc) from exc
        finally:
            response.close()
        return "".join(pieces), finish, usage, model, first
