"""The one interface every backend implements.

A backend turns chat messages (text and images) into a :class:`Completion`. It is
created once per process and is safe to call from many threads at once.
Subclasses implement :meth:`Backend.generate`; ``on_text`` streams its text as it comes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..types import Message

__all__ = ["Backend", "Completion", "GenerationRequest", "TextCallback"]

#: Called with each new piece of generated text, in order, as it is produced.
TextCallback = Callable[[str], None]


@dataclass
class GenerationRequest:
    """What to generate: messages plus decoding parameters.

    ``max_new_tokens``/``temperature`` of ``None`` mean the backend's configured default.
    Greedy decoding (temperature 0) is the default, as in MedMO's evaluations.
    """

    messages: list[Message]
    max_new_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] | None = None
    #: Optional OpenAI-style tool schemas, rendered into the prompt by the chat template.
    tools: list[dict] | None = None

    @property
    def images(self):
        """All images across the messages, in order."""
        return [img for m in self.messages for img in m.images]


@dataclass
class Completion:
    """What a backend produced for one request.

    ``image_input_sizes`` holds, for each image in order, the (width, height) in pixels
    that the model actually saw after the processor's resize; box parsers map from
    that space back to the original image.
    """

    text: str
    model: str
    backend: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "cancelled"
    image_input_sizes: list[tuple[int, int]] = field(default_factory=list)
    queue_seconds: float = 0.0  # waiting for the GPU
    first_token_seconds: float | None = None  # from start of generation to first token
    total_seconds: float = 0.0  # from submission to the last token


class Backend:
    """Base class: implement :meth:`generate`; set ``name`` and ``model_id``.

    Implementations must be thread-safe: many callers may call ``generate`` at once.
    """

    name: str = "base"
    model_id: str = ""

    def generate(
        self,
        request: GenerationRequest,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Generate a completion; call ``on_text`` with each new piece of text.

        Setting ``cancel`` stops generation early (``finish_reason="cancelled"``).
        """
        raise NotImplementedError

    def info(self) -> dict[str, object]:
        """A JSON-ready description (backend, model, device, ...)."""
        return {"backend": self.name, "model": self.model_id}

    def close(self) -> None:
        """Release the model and any worker threads."""
