"""Where text comes from: the local transformers model, any OpenAI-compatible server, or a
script. ``create_backend(settings)`` picks one; heavy libraries load only when used."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import Backend, Completion, GenerationRequest, TextCallback

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "Completion",
    "GenerationRequest",
    "TextCallback",
    "create_backend",
]

BACKEND_NAMES = ("transformers", "openai", "scripted")


def create_backend(settings: Settings | None = None, **overrides: object) -> Backend:
    """Create the backend ``settings.backend`` names, configured from ``settings``.

    Args:
        settings: Configuration; defaults to ``Settings.from_env()``.
        **overrides: Field overrides applied to ``settings`` (e.g. ``model="..."``).
    """
    settings = (settings or Settings.from_env()).replace(**overrides)
    if settings.backend == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend.from_settings(settings)
    if settings.backend in ("openai", "openai_compat"):
        from .openai_compat import OpenAICompatBackend

        return OpenAICompatBackend.from_settings(settings)
    if settings.backend == "scripted":
        from .scripted import ScriptedBackend

        return ScriptedBackend(model_id=settings.model)
    raise ConfigError(
        f"Unknown backend {settings.backend!r}.",
        input="backend",
        fix=f"Choose one of: {', '.join(BACKEND_NAMES)}.",
    )
