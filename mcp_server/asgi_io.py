"""Small ASGI pieces the HTTP middlewares share: answering with JSON, replaying a body.

A middleware that reads a request's body before the app does (to check it) hands the app
a ``receive`` that gives back what it read; one that refuses a request answers with a
JSON body of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Send

__all__ = ["replay", "send_json"]


def replay(received: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out the already-read messages first, then reads on."""
    pending = list(received)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def send_json(
    send: Send, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with ``status`` and the JSON ``body`` (already encoded), plus ``extra`` headers."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
