"""An optional audit trail: one JSON line per tool call.

Each line records the time, the tool, its arguments without pixel data (inline images are
replaced by a short digest, so a repeated upload can still be recognised), how long the
call took and its outcome, and who called: in OAuth mode, the access token's client id
and subject, so an entry can be traced to the person or service that made the call (a
static token names no one, so its calls have no caller). Patient identifiers never reach
it: image paths are shown as labels unless ``Settings.include_paths`` is on
(``medmo_agent.privacy``), and error messages name inputs, not DICOM fields.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["AuditLog", "caller_of", "scrub_arguments"]

_MAX_TEXT = 2000


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("data:"):
            digest = hashlib.sha256(value.encode()).hexdigest()[:16]
            head = value.split(",", 1)[0]
            return f"<{head} {len(value)} chars sha256:{digest}>"
        if len(value) > _MAX_TEXT:
            return value[:_MAX_TEXT] + f"...<{len(value) - _MAX_TEXT} more chars>"
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def scrub_arguments(arguments: dict[str, Any], include_paths: bool = False) -> dict[str, Any]:
    """Tool arguments with inline image data replaced by a digest, long text cut, and
    image paths replaced by labels unless ``include_paths``."""
    from medmo_agent.privacy import scrub_data

    return scrub_data({k: _scrub(v) for k, v in arguments.items()}, include_paths)


def caller_of(ctx: Any) -> dict[str, str] | None:
    """Who made the request ``ctx`` serves: the access token's ``client_id`` and
    ``subject`` (those it has), or ``None`` without a token (stdio, no authentication)."""
    request = getattr(getattr(ctx, "request_context", None), "request", None)
    scope = getattr(request, "scope", None) or {}
    token = getattr(scope.get("user"), "access_token", None)
    if token is None:
        return None
    found = {"client_id": token.client_id, "subject": token.subject}
    return {k: str(v) for k, v in found.items() if v}


class AuditLog:
    """Appends JSON lines to a file; safe to call from many threads.

    Args:
        path: The file to append to; its folder is created if missing.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        seconds: float,
        outcome: str,
        error: str | None = None,
        result_uri: str | None = None,
        include_paths: bool = False,
        caller: dict[str, str] | None = None,
    ) -> None:
        """Append one entry.

        Args:
            tool: Tool name.
            arguments: The arguments as the client sent them (scrubbed here).
            seconds: Wall time of the call.
            outcome: ``"ok"``, ``"error"`` or ``"cancelled"``.
            error: The error class name, when the call failed.
            result_uri: Where the result is kept, when it succeeded.
            include_paths: Keep image paths (``Settings.include_paths``).
            caller: Who called (:func:`caller_of`), when a token said so.
        """
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tool": tool,
            "arguments": scrub_arguments(arguments, include_paths),
            "duration_s": round(seconds, 4),
            "outcome": outcome,
        }
        if error:
            entry["error"] = error
        if result_uri:
            entry["result_uri"] = result_uri
        if caller:
            entry["caller"] = caller
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
