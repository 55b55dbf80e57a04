"""The scripted backend as ``create_backend`` makes it when the test suite selects it.

It answers from the environment (see :mod:`medmo_agent.testing`): with
``MEDMO_TEST_SCRIPTED_RESPONDER`` naming a responder, by looking at each image (so a
served volume sweep gets boxes where its synthetic lesion is); with
``MEDMO_TEST_SCRIPTED_REPLIES`` naming a JSON file, by the rules in it, so a notebook's
boxes and steps are known in advance; otherwise with ``MEDMO_TEST_SCRIPTED_REPLY`` (or
nothing). The file maps a piece of prompt text to the reply to give when the last user
message contains it (case-insensitive, first match wins); ``"*"`` is the fallback::

    {"bounding box": "nodule: [10, 20, 60, 80]", "*": "No Finding"}
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..backends.base import GenerationRequest
from ..backends.scripted import Responder, ScriptedBackend
from ..config import Settings
from ..errors import ConfigError
from . import SCRIPTED_REPLIES_ENV, SCRIPTED_RESPONDER_ENV, scripted_replies

__all__ = ["RESPONDERS", "load_rules", "scripted_backend"]

#: The responders ``MEDMO_TEST_SCRIPTED_RESPONDER`` may name: module and function.
RESPONDERS = {"lesion": ("medmo_agent.testing.volumes", "lesion_reply")}


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
            input=SCRIPTED_REPLIES_ENV,
            fix='Point it at a JSON object such as {"bounding box": "nodule: [1, 2, 3, 4]"}.',
        ) from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(
            f"Scripted replies in {path} must be a JSON object of strings.",
            input=SCRIPTED_REPLIES_ENV,
            fix='Use {"prompt text": "reply", "*": "fallback reply"}.',
        )
    return list(data.items())


def scripted_backend(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> ScriptedBackend:
    """A :class:`ScriptedBackend` answering as the environment says.

    By the rules in ``$MEDMO_TEST_SCRIPTED_REPLIES`` when it is set, else with
    ``$MEDMO_TEST_SCRIPTED_REPLY`` (every reply empty without either).
    """
    env = os.environ if environ is None else environ
    named = env.get(SCRIPTED_RESPONDER_ENV)
    if named:
        return ScriptedBackend(
            responder=_responder(named, settings),
            model_id=settings.model,
            min_pixels=settings.min_pixels,
            max_pixels=settings.max_pixels,
        )
    path = env.get(SCRIPTED_REPLIES_ENV)
    if not path:
        return ScriptedBackend(
            scripted_replies(env),
            model_id=settings.model,
            min_pixels=settings.min_pixels,
            max_pixels=settings.max_pixels,
        )
    rules = load_rules(path)
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


def _responder(name: str, settings: Settings) -> Responder:
    if name not in RESPONDERS:
        raise ConfigError(
            f"There is no scripted responder called {name!r}.",
            input=SCRIPTED_RESPONDER_ENV,
            fix=f"Use one of {sorted(RESPONDERS)}.",
        )
    from importlib import import_module

    module, function = RESPONDERS[name]
    respond = getattr(import_module(module), function)
    # the boxes are in the model-input pixels of this backend's image budget
    return functools.partial(
        respond, min_pixels=settings.min_pixels, max_pixels=settings.max_pixels
    )
