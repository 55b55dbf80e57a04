"""Where text comes from: the local transformers model or any OpenAI-compatible server (and,
in the test suite only, a script). ``create_backend(settings)`` picks one; heavy libraries
load only when used."""

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
    "backend_choices",
    "create_backend",
]

#: The backends a user can choose.
BACKEND_NAMES = ("transformers", "openai")
#: A test double: selectable only when the test suite enables doubles (see ``testing``).
_TEST_BACKEND = "scripted"


def backend_choices() -> tuple[str, ...]:
    """The backend names a command line offers: the user's ones, plus the scripted test
    double when the test suite has enabled it (so it never shows in a user's ``--help``)."""
    from ..testing import test_doubles_enabled

    return BACKEND_NAMES + ((_TEST_BACKEND,) if test_doubles_enabled() else ())


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
    if settings.backend == _TEST_BACKEND and _TEST_BACKEND in backend_choices():
        from ..testing.scripted import scripted_backend

        return scripted_backend(settings)
    raise ConfigError(
        f"Unknown backend {settings.backend!r}.",
        input="backend",
        fix=f"Choose one of: {', '.join(BACKEND_NAMES)}.",
    )
