"""Earlier results kept in memory, so an agent can refer to one by URI.

A result is stored under ``medmo://results/<id>``; the store is bounded and forgets the
least recently used result first. Results hold no pixels, only their image's handle, so
the memory cost of each entry is a few kilobytes.
"""

from __future__ import annotations

import secrets

from medmo_agent.errors import NotFoundError
from medmo_agent.lru import LRUStore
from medmo_agent.tasks.results import TaskResult

__all__ = ["RESULT_URI_PREFIX", "ResultStore"]

RESULT_URI_PREFIX = "medmo://results/"


class ResultStore:
    """A bounded, thread-safe map from result URI to result.

    Args:
        capacity: How many results to keep; older ones are forgotten first.
    """

    def __init__(self, capacity: int = 256):
        self.capacity = capacity
        self._items: LRUStore[str, TaskResult] = LRUStore(capacity)

    def add(self, result: TaskResult) -> str:
        """Store ``result``, set its ``result_uri``, and return that URI."""
        # Unguessable ids: over HTTP, one caller should not enumerate another's results.
        uri = RESULT_URI_PREFIX + secrets.token_hex(8)
        result.result_uri = uri
        self._items.put(uri, result)
        return uri

    def get(self, uri: str) -> TaskResult:
        """The result stored under ``uri`` (or its bare id).

        Raises:
            NotFoundError: Nothing is stored under that URI (never stored, or forgotten).
        """
        key = uri if uri.startswith(RESULT_URI_PREFIX) else RESULT_URI_PREFIX + uri
        result = self._items.get(key)
        if result is None:
            raise NotFoundError(
                f"No result is held under {key}.",
                input=key,
                fix=(
                    f"The server keeps the last {self.capacity} results only; run the tool "
                    "again, or pass the image itself."
                ),
            )
        return result

    def uris(self) -> list[str]:
        """Stored URIs, most recent last."""
        return self._items.keys()

    def __len__(self) -> int:
        return len(self._items)
