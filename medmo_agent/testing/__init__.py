"""Test support: a tiny random Qwen3-VL checkpoint built offline (:mod:`.tiny`), the
scripted test double (:mod:`.scripted`), and the switches that select them.

The scripted backend (:mod:`medmo_agent.backends.scripted`) answers from a script, not a
model: it exists for tests and is hidden from every user-facing choice. The test suite sets
``MEDMO_TEST_DOUBLES=1`` (read here, and nowhere else) to make ``scripted`` selectable as a
backend, on the command line and in settings alike. What it answers is set by environment
variables too, so that no command offers a test-only option:

* ``MEDMO_TEST_SCRIPTED_REPLY``: the text every request is answered with;
* ``MEDMO_TEST_SCRIPTED_REPLIES``: a JSON file of ``{prompt text: reply}`` rules;
* ``MEDMO_TEST_SCRIPTED_RESPONDER``: a named answer worked out from the image itself
  (``lesion``: a box around the bright lesion of a synthetic volume's slice).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = [
    "SCRIPTED_REPLIES_ENV",
    "SCRIPTED_REPLY_ENV",
    "SCRIPTED_RESPONDER_ENV",
    "TEST_DOUBLES_ENV",
    "scripted_env",
    "scripted_replies",
    "test_doubles_enabled",
]

TEST_DOUBLES_ENV = "MEDMO_TEST_DOUBLES"
#: The text the scripted backend answers every request with (default: nothing).
SCRIPTED_REPLY_ENV = "MEDMO_TEST_SCRIPTED_REPLY"
#: A JSON file of ``{prompt text: reply}`` rules the scripted backend answers by.
SCRIPTED_REPLIES_ENV = "MEDMO_TEST_SCRIPTED_REPLIES"
#: A named responder the scripted backend answers with (see :mod:`.scripted`).
SCRIPTED_RESPONDER_ENV = "MEDMO_TEST_SCRIPTED_RESPONDER"


def test_doubles_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether test doubles (the scripted backend) may be selected in this process."""
    env = os.environ if environ is None else environ
    return env.get(TEST_DOUBLES_ENV, "") == "1"


def scripted_replies(environ: Mapping[str, str] | None = None) -> list[str]:
    """The replies a scripted backend made from settings answers with."""
    env = os.environ if environ is None else environ
    reply = env.get(SCRIPTED_REPLY_ENV)
    return [reply] if reply is not None else []


def scripted_env(
    reply: str | None = None,
    *,
    rules: str | os.PathLike[str] | None = None,
    responder: str | None = None,
) -> dict[str, str]:
    """The environment a process needs to serve from the scripted backend.

    Args:
        reply: The text every request is answered with.
        rules: Alternatively, a JSON file of ``{prompt text: reply}`` rules.
        responder: Alternatively, a named responder (``"lesion"``).

    Returns:
        Variables to add to a child process's environment (``--backend scripted`` or
        ``MEDMO_BACKEND=scripted`` still selects the backend).
    """
    env = {TEST_DOUBLES_ENV: "1"}
    if reply is not None:
        env[SCRIPTED_REPLY_ENV] = reply
    if rules is not None:
        env[SCRIPTED_REPLIES_ENV] = os.fspath(rules)
    if responder is not None:
        env[SCRIPTED_RESPONDER_ENV] = responder
    return env


# not a test function, though its name starts with "test_"
test_doubles_enabled.__test__ = False  # type: ignore[attr-defined]
