"""Errors raised by MedMO Agent, written for a human and for an LLM caller.

Every error says what was wrong, with which input, and what to do about it::

    MedmoError                     base class; ``.message``, ``.input``, ``.fix``
    ├── ConfigError                a setting is invalid or contradicts another
    ├── InputError                 a task argument is unusable (empty question, bad option list)
    ├── ImageLoadError             an image cannot be read (corrupt, unsupported, out of range)
    │   └── ImageTooLargeError     over the byte or pixel cap (decompression-bomb guard)
    ├── AccessDeniedError          a path lies outside the allowed folders
    ├── NotFoundError              an image or result handle that nobody holds
    ├── LimitExceededError         a request over a configured limit (tokens, bytes)
    └── BackendError               the model could not answer
        ├── ModelLoadError         weights or processor failed to load
        ├── BackendUnavailableError  a remote server is down, refuses, or times out
        └── GPUOutOfMemoryError    the GPU ran out of memory on this request

Surfaces (CLI, MCP, widgets, reviews) translate ``MedmoError`` in exactly one place
each; anything else escaping is a bug.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "GPUOutOfMemoryError",
    "ImageLoadError",
    "ImageTooLargeError",
    "InputError",
    "LimitExceededError",
    "MedmoError",
    "ModelLoadError",
    "NotFoundError",
]


class MedmoError(Exception):
    """Base class: a message, the input it concerns, and the fix.

    Args:
        message: What went wrong, in one sentence.
        input: The offending input (a path, an argument name, a URL), if any.
        fix: What the caller should do next.
    """

    default_fix: str = ""

    def __init__(self, message: str, *, input: str | None = None, fix: str | None = None):
        self.message = message
        self.input = input
        self.fix = fix if fix is not None else self.default_fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message
        if self.input and self.input not in text:
            text = f"{text} [input: {self.input}]"
        if self.fix:
            text = f"{text} Fix: {self.fix}"
        return text

    def to_dict(self) -> dict[str, str | None]:
        """A JSON-ready form for tool results, traces and review records."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "input": self.input,
            "fix": self.fix or None,
        }


class ConfigError(MedmoError):
    """A setting is invalid or contradicts another."""


class InputError(MedmoError):
    """A task argument is unusable."""


class ImageLoadError(MedmoError):
    """An image cannot be read."""


class ImageTooLargeError(ImageLoadError):
    """An image exceeds the byte or pixel cap."""

    default_fix = (
        "Downscale or crop the image, or raise the cap with MEDMO_MAX_IMAGE_PIXELS / "
        "MEDMO_MAX_IMAGE_BYTES if the file is trusted."
    )


class AccessDeniedError(MedmoError):
    """A path lies outside the allowed folders."""

    default_fix = (
        "Use a file inside an allowed folder, or start the server with --allow-dir "
        "pointing at the folder that holds it."
    )


class NotFoundError(MedmoError):
    """A handle (image id, result URI) that nobody holds."""


class LimitExceededError(MedmoError):
    """A request over a configured limit."""


class BackendError(MedmoError):
    """The model could not answer."""


class ModelLoadError(BackendError):
    """Weights or processor failed to load."""


class BackendUnavailableError(BackendError):
    """A remote model server is down, refuses, or times out."""


class GPUOutOfMemoryError(BackendError):
    """The GPU ran out of memory on one request."""

    default_fix = (
        "Retry with a smaller image (MEDMO_MAX_PIXELS), fewer new tokens, fewer concurrent "
        "requests (MEDMO_MAX_BATCH_SIZE), or the 4B model (MBZUAI/MedMO-4B-Next)."
    )
