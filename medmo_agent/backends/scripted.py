"""A backend that answers from a script: for deterministic tests and offline demos.

It does real work around the answer (counts tokens roughly, reports image sizes with
Qwen3-VL's resize rule) so that code above it sees realistic completions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from ..imaging.geometry import model_input_size
from .base import Backend, Completion, GenerationRequest, TextCallback

__all__ = ["ScriptedBackend"]

Responder = Callable[[GenerationRequest], str]


class ScriptedBackend(Backend):
    """Replies with the given texts in turn, or with ``responder(request)``.

    Args:
        replies: Texts returned in order; the last one repeats once the list runs out.
        responder: Alternatively, a function from request to reply text.
        min_pixels: Smallest image budget used to compute model-input sizes.
        max_pixels: Largest image budget used to compute model-input sizes.
    """

    name = "scripted"

    def __init__(
        self,
        replies: Iterable[str] | None = None,
        *,
        responder: Responder | None = None,
        model_id: str = "scripted",
        min_pixels: int = 65_536,
        max_pixels: int = 1_048_576,
        delay_s: float = 0.0,
    ):
        self._replies = list(replies or [])
        self._responder = responder
        self._lock = threading.Lock()
        self._count = 0
        self.model_id = model_id
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.delay_s = delay_s
        self.requests: list[GenerationRequest] = []

    def generate(
        self,
        request: GenerationRequest,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Return the next scripted reply, streaming it word by word to ``on_text``."""
        start = time.perf_counter()
        with self._lock:
            self.requests.append(request)
            if self._responder is not None:
                text = self._responder(request)
            elif self._replies:
                text = self._replies[min(self._count, len(self._replies) - 1)]
            else:
                text = ""
            self._count += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        finish = "stop"
        if on_text is not None:
            for piece in _pieces(text):
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                on_text(piece)
        sizes = [
            model_input_size(img.size, self.min_pixels, self.max_pixels) for img in request.images
        ]
        prompt_words = sum(len(m.text.split()) for m in request.messages)
        return Completion(
            text=text,
            model=self.model_id,
            backend=self.name,
            prompt_tokens=prompt_words + sum((w // 32) * (h // 32) for w, h in sizes),
            completion_tokens=len(text.split()),
            finish_reason=finish,
            image_input_sizes=sizes,
            first_token_seconds=0.0,
            total_seconds=time.perf_counter() - start,
        )


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
