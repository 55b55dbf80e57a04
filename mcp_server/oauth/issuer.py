"""What the server learns from the issuer: its metadata and its signing keys.

The metadata is discovered as RFC 8414 and OpenID Connect Discovery describe (the MCP
authorization spec's order), must name the configured issuer exactly, and is reused for
``auth_jwks_cache_s`` along with the key set it points to. A token signed with a key id
the cached set lacks (the issuer rotated its keys) makes the set be fetched again, but
not more often than every ``auth_jwks_refetch_min_s``, so a stream of forged key ids
cannot turn the server into a load generator against the issuer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from .config import is_loopback_host
from .errors import IssuerUnavailable, TokenRejected

if TYPE_CHECKING:
    import httpx
    from jwt import PyJWK

    from .config import OAuthConfig

__all__ = ["IssuerMetadata", "SigningKeys", "fetch_json", "metadata_urls"]

logger = logging.getLogger(__name__)


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be, in the order the MCP spec says to try them."""
    parts = urlsplit(issuer)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [
            f"{base}/.well-known/oauth-authorization-server",
            f"{base}/.well-known/openid-configuration",
        ]
    return [
        f"{base}/.well-known/oauth-authorization-server{path}",
        f"{base}/.well-known/openid-configuration{path}",
        f"{base}{path}/.well-known/openid-configuration",
    ]


def _secure(url: Any) -> bool:
    parts = urlsplit(url) if isinstance(url, str) else None
    return bool(
        parts
        and parts.hostname
        and (
            parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))
        )
    )


async def fetch_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    config: OAuthConfig,
    **kwargs: Any,
) -> tuple[int, Any]:
    """The status and JSON body of a request to the issuer (``None`` unless 200), reading
    at most ``auth_max_response_bytes`` of the body within ``auth_http_timeout_s`` in all.

    Raises:
        IssuerUnavailable: The issuer cannot be reached, answers with more than
            ``auth_max_response_bytes``, too slowly, or with something other than JSON.
    """
    import httpx

    max_bytes = config.max_response_bytes
    kwargs.setdefault("headers", {"Accept": "application/json"})
    try:
        # httpx's timeout bounds each read; an answer dripping a byte at a time would
        # still hold the request (and the token check waiting on it) open for good
        with anyio.fail_after(config.http_timeout_s):
            status, body = await _read(client, method, url, max_bytes, kwargs)
    except TimeoutError as exc:
        raise IssuerUnavailable(
            f"{url} did not answer within {config.http_timeout_s:g} s (auth_http_timeout_s)"
        ) from exc
    except httpx.HTTPError as exc:
        raise IssuerUnavailable(f"cannot reach {url}: {exc!r}") from exc
    if status != 200:
        return status, None
    try:
        return 200, json.loads(bytes(body))
    except ValueError as exc:
        raise IssuerUnavailable(f"{url} answered with something other than JSON") from exc


async def _read(
    client: httpx.AsyncClient, method: str, url: str, max_bytes: int, kwargs: dict[str, Any]
) -> tuple[int, bytearray]:
    body = bytearray()
    async with client.stream(method, url, **kwargs) as response:
        if response.status_code != 200:
            return response.status_code, body
        # read in pieces: neither a declared nor an endless body is taken on trust
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > max_bytes:
                raise IssuerUnavailable(
                    f"{url} answered with more than {max_bytes} bytes "
                    "(auth_max_response_bytes, MEDMO_AUTH_MAX_RESPONSE_BYTES)"
                )
    return 200, body


async def _get_json(client: httpx.AsyncClient, url: str, config: OAuthConfig) -> tuple[int, Any]:
    return await fetch_json(client, "GET", url, config)


class IssuerMetadata:
    """The issuer's authorization-server metadata, discovered and cached.

    Args:
        config: The OAuth options (issuer, cache time).
        client: The HTTP client used for every request to the issuer.
        clock: Seconds from a monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        config: OAuthConfig,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.client = client
        self.clock = clock
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = anyio.Lock()

    async def get(self, *, fresh: bool = False) -> dict[str, Any]:
        """The metadata document; fetched again when older than the cache time or ``fresh``.

        Raises:
            IssuerUnavailable: No candidate URL answered with metadata for this issuer.
        """
        async with self._lock:
            stale = self.clock() - self._fetched_at >= self.config.jwks_cache_s
            if self._document is None or stale or fresh:
                self._document = await self._discover()
                self._fetched_at = self.clock()
            return self._document

    async def _discover(self) -> dict[str, Any]:
        tried = []
        for url in metadata_urls(self.config.issuer):
            status, document = await _get_json(self.client, url, self.config)
            tried.append(f"{url} ({status})")
            if status != 200:
                continue
            if not isinstance(document, dict) or document.get("issuer") != self.config.issuer:
                # RFC 8414, section 3.3: metadata for another issuer must not be used.
                found = document.get("issuer") if isinstance(document, dict) else None
                raise IssuerUnavailable(
                    f"{url} describes issuer {found!r}, not the configured "
                    f"{self.config.issuer!r} (check --auth-issuer, character for character)"
                )
            return document
        raise IssuerUnavailable("no issuer metadata found at " + ", ".join(tried))

    async def endpoint(self, name: str) -> str:
        """A URL the metadata names (``jwks_uri``, ``introspection_endpoint``), checked to
        be HTTPS (or loopback HTTP)."""
        url = (await self.get()).get(name)
        if not _secure(url):
            raise IssuerUnavailable(
                f"the issuer's metadata gives no usable {name} (got {url!r}; it must be an "
                "https URL)"
            )
        return str(url)


class SigningKeys:
    """The issuer's JWKS, cached, refetched on expiry or (rate-limited) on an unknown key id.

    Args:
        metadata: The issuer's metadata (it names ``jwks_uri``).
        clock: Seconds from a monotonic clock (tests pass their own).
    """

    def __init__(self, metadata: IssuerMetadata, clock: Callable[[], float] | None = None):
        self.metadata = metadata
        self.config = metadata.config
        self.clock = clock or metadata.clock
        self._keys: list[dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._failed_at: float | None = None
        self._lock = anyio.Lock()
        #: How many times the key set was fetched (for operators and tests).
        self.fetches = 0

    async def key_for(self, kid: str | None, alg: str) -> PyJWK:
        """The issuer's key with id ``kid`` usable for ``alg``.

        Raises:
            TokenRejected: No such key, even after a permitted refetch.
            IssuerUnavailable: The keys cannot be fetched and none are cached.
        """
        if self._keys is None or self.clock() - self._fetched_at >= self.config.jwks_cache_s:
            await self._refresh(self._fetched_at)
        key = self._find(kid, alg)
        if key is None and self.clock() - self._fetched_at >= self.config.jwks_refetch_min_s:
            await self._refresh(self._fetched_at)
            key = self._find(kid, alg)
        if key is None:
            raise TokenRejected(
                f"the access token is signed with a key the issuer does not publish "
                f"(kid {kid!r}, alg {alg})"
            )
        return key

    async def _refresh(self, seen: float) -> None:
        async with self._lock:
            if self._keys is not None and self._fetched_at != seen:
                return  # another request refreshed the set while this one waited
            now = self.clock()
            retry_in = self.config.jwks_refetch_min_s
            if self._failed_at is not None and now - self._failed_at < retry_in:
                if self._keys is None:
                    raise IssuerUnavailable(
                        f"the signing keys could not be fetched {now - self._failed_at:.0f} s "
                        f"ago; the next attempt is {retry_in:g} s after that "
                        "(auth_jwks_refetch_min_s)"
                    )
                return
            try:
                self._keys = await self._fetch()
            except IssuerUnavailable:
                self._failed_at = now
                if self._keys is None:
                    raise
                # Keep serving with the keys already known, and try again once the
                # refetch interval has passed rather than on every request.
                logger.warning("Could not refresh the issuer's signing keys", exc_info=True)
                self._fetched_at = now - self.config.jwks_cache_s + retry_in
                return
            self._failed_at = None
            self._fetched_at = self.clock()

    async def _fetch(self) -> list[dict[str, Any]]:
        url = await self.metadata.endpoint("jwks_uri")
        status, document = await _get_json(self.metadata.client, url, self.config)
        keys = document.get("keys") if isinstance(document, dict) else None
        if status != 200 or not isinstance(keys, list):
            raise IssuerUnavailable(f"{url} answered {status} without a JWK set")
        self.fetches += 1
        return [k for k in keys if isinstance(k, dict)]

    def _find(self, kid: str | None, alg: str) -> PyJWK | None:
        from jwt import PyJWK
        from jwt.exceptions import PyJWKError

        usable = []
        for jwk in self._keys or []:
            if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
                continue
            if kid is not None and jwk.get("kid") != kid:
                continue
            try:
                usable.append(PyJWK(jwk, algorithm=alg))
            except (PyJWKError, ValueError, TypeError):
                continue  # a key of another type than the algorithm needs
        # Without a kid, only an unambiguous key will do.
        return usable[0] if len(usable) == 1 or (usable and kid is not None) else None
