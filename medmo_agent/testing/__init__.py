"""Test support: a tiny random Qwen3-VL checkpoint built offline (:mod:`.tiny`), and the
switch that lets test doubles be chosen.

The scripted backend (:mod:`medmo_agent.backends.scripted`) answers from a script, not a
model: it exists for tests and is hidden from every user-facing choice. The test suite sets
``MEDMO_TEST_DOUBLES=1`` (read here, and nowhere else) to make ``scripted`` selectable as a
backend, on the command line and in settings alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["SCRIPTED_REPLY_ENV", "TEST_DOUBLES_ENV", "scripted_replies", "test_doubles_enabled"]

TEST_DOUBLES_ENV = "MEDMO_TEST_DOUBLES"
#: The text the scripted backend answers every request with (default: nothing).
SCRIPTED_REPLY_ENV = "MEDMO_TEST_SCRIPTED_REPLY"


def test_doubles_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether test doubles (the scripted backend) may be selected in this process."""
    env = os.environ if environ is None else environ
    return env.get(TEST_DOUBLES_ENV, "") == "1"


def scripted_replies(environ: Mapping[str, str] | None = None) -> list[str]:
    """The replies a scripted backend made from settings answers with."""
    env = os.environ if environ is None else environ
    reply = env.get(SCRIPTED_REPLY_ENV)
    return [reply] if reply is not None else []


# not a test function, though its name starts with "test_"
test_doubles_enabled.__test__ = False  # type: ignore[attr-defined]
