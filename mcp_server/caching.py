"""How long a client may cache what the server lists and serves (``ttlMs``/``cacheScope``).

Protocol revision 2026-07-28 lets a server say, on every list and read result, how long
the answer stays fresh and whether a shared cache may hand it to another user. The
hints here say what is true of each answer:

- a held result (``medmo://results/<id>``) or held image (``medmo://images/<id>``) never
  changes: its id names one value, fixed when it was made. It may be forgotten (the
  stores are bounded), but never altered, so a copy stays right for as long as it is kept;
- the tools, prompts, resource templates and the viewer's HTML (``ui://``) change only
  with the server's version, so a client may keep them for a while; they are the same
  for every caller (``public``);
- the list of files in the allowed folders, and the files themselves, change whenever
  the disk does: never cached (``ttlMs`` 0);
- anything that names a path or carries a patient's image or result is ``private``: a
  shared cache must not serve it across authorization contexts.

Connections on the 2025-11-25 revision carry no such fields; the SDK leaves them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.server.caching import CacheableMethod, CacheHint

from medmo_agent.errors import MedmoError
from medmo_agent.imaging.resolve import HANDLE_PREFIX

from .store import RESULT_URI_PREFIX

if TYPE_CHECKING:
    from .state import ServerState

__all__ = [
    "IMMUTABLE",
    "METHOD_HINTS",
    "OVERLAY_SUFFIX",
    "SERVER_INFO",
    "SERVER_LISTS",
    "SLICES_SUFFIX",
    "UNCACHED",
    "read_hint",
]

_HOUR_MS = 3600 * 1000

#: A held result or image: one value per id, for good.
IMMUTABLE = CacheHint(ttl_ms=24 * _HOUR_MS, scope="private")
#: Tools, prompts, resource templates, the discovery answer, the viewer's HTML: fixed for
#: one server version; an hour bounds how long a client keeps them after an upgrade.
SERVER_LISTS = CacheHint(ttl_ms=_HOUR_MS, scope="public")
#: ``medmo://server``: fixed while the server runs, but it names the allowed folders.
SERVER_INFO = CacheHint(ttl_ms=_HOUR_MS, scope="private")
#: What reflects the disk now: the file listing and the files.
UNCACHED = CacheHint(ttl_ms=0, scope="private")

#: Appended to a result's URI: that result's image with its boxes drawn.
OVERLAY_SUFFIX = "/overlay"
#: Appended to a volume sweep's URI: every slice's own result (as fixed as the sweep).
SLICES_SUFFIX = "/slices"

#: Server-wide hints, per method; ``resources/read`` is refined per URI by :func:`read_hint`.
METHOD_HINTS: dict[CacheableMethod, CacheHint] = {
    "server/discover": SERVER_LISTS,
    "tools/list": SERVER_LISTS,
    "prompts/list": SERVER_LISTS,
    "resources/templates/list": SERVER_LISTS,
    "resources/list": UNCACHED,
    "resources/read": UNCACHED,
}


def read_hint(uri: str, state: ServerState) -> CacheHint:
    """The cache hint of a successful ``resources/read`` of ``uri``.

    Args:
        uri: The resource read.
        state: The server's state; an overlay's hint depends on its result's image.
    """
    if uri == "medmo://server":
        return SERVER_INFO
    if uri.startswith("ui://"):  # an MCP App's document, shipped with the server
        return SERVER_LISTS
    if uri.startswith(HANDLE_PREFIX):
        return IMMUTABLE
    if uri.startswith(RESULT_URI_PREFIX):
        if not uri.endswith(OVERLAY_SUFFIX):
            return IMMUTABLE
        # An overlay is drawn on the result's image as it is now: fixed for a held image,
        # but a file on disk may have been replaced since.
        try:
            image = state.store.get(uri.removesuffix(OVERLAY_SUFFIX)).image
        except MedmoError:
            return UNCACHED
        held = image is not None and (image.handle or "").startswith(HANDLE_PREFIX)
        return IMMUTABLE if held else UNCACHED
    return UNCACHED
