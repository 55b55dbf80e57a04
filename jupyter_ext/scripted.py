"""A scripted backend configured from a file, for tests without a model.

With ``MEDMO_TEST_DOUBLES=1`` (the test suite's switch, see :mod:`medmo_agent.testing`),
``MEDMO_BACKEND=scripted`` and ``MEDMO_SCRIPTED_REPLIES`` naming a JSON file, the
notebook session answers from that file, so a notebook's boxes and steps are known in
advance. The file maps a piece of prompt text to the reply to give when the last user
message contains it (case-insensitive, first match wins); ``"*"`` is the fallback::

    {"bounding box": "nodule: [10, 20, 60, 80]", "*": "No Finding"}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from medmo_agent.backends.base import GenerationRequest
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError

__all__ = ["REPLIES_ENV", "load_rules", "scripted_backend"]

REPLIES_ENV = "MEDMO_SCRIPTED_REPLIES"


def load_rules(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read ``{prompt text: reply}`` rules from a JSON file, keeping their order.

    Raises:
        ConfigError: The file is missing or is not a JSON object of strings.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot read scripted replies from {path}: {exc}.",
            input=REPLIES_ENV,
            fix='Point it at a JSON object such as {"bounding box": "nodule: [1, 2, 3, 4]"}.',
        ) from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(
            f"Scripted replies in {path} must be a JSON object of strings.",
            input=REPLIES_ENV,
            fix='Use {"prompt text": "reply", "*": "fallback reply"}.',
        )
    return list(data.items())


def scripted_backend(settings: Settings, environ: dict[str, str] | None = None) -> ScriptedBackend:
    """A :class:`ScriptedBackend` answering by the rules in ``$MEDMO_SCRIPTED_REPLIES``.

    Without the variable every reply is empty, as with ``create_backend``.
    """
    env = os.environ if environ is None else environ
    path = env.get(REPLIES_ENV)
    rules = load_rules(path) if path else []
    fallback = next((reply for key, reply in rules if key == "*"), "")

    def respond(request: GenerationRequest) -> str:
        users = [m for m in request.messages if m.role == "user"]
        text = (users[-1].text if users else "").lower()
        for key, reply in rules:
            if key != "*" and key.lower() in text:
                return reply
        return fallback

    return ScriptedBackend(
        responder=respond,
        model_id=settings.model,
        min_pixels=settings.min_pixels,
        max_pixels=settings.max_pixels,
    )
