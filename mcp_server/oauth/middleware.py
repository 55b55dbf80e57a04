"""The OAuth 2.1 resource server in front of the MCP endpoint (ASGI middleware).

It publishes the RFC 9728 protected-resource metadata, and lets a request through only
with a valid access token (see :mod:`.verify`) holding the scopes the request needs (see
:mod:`.scopes`). Otherwise it answers as RFC 6750 and the MCP authorization spec say:
401 with ``WWW-Authenticate: Bearer ... resource_metadata="..."`` for a missing or invalid
token, 403 ``insufficient_scope`` naming the scopes to ask for, 503 when the issuer cannot
be asked. The tool a ``tools/call`` names is read from the body with the same JSON parser
the SDK uses, so both see the same call.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pydantic_core
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import AuthCredentials

from ..asgi_io import replay, send_json
from .errors import IssuerUnavailable, TokenRejected
from .scopes import required_scopes
from .verify import Verifier, make_verifier

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .config import OAuthConfig

__all__ = ["OAuthResourceServer", "metadata_document"]

logger = logging.getLogger(__name__)


def metadata_document(config: OAuthConfig) -> dict[str, Any]:
    """The protected-resource metadata (RFC 9728, section 2) this server publishes."""
    return {
        "resource": config.resource_url,
        "authorization_servers": [config.issuer],
        "scopes_supported": config.scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": "MedMO medical imaging (MCP)",
    }


def _quoted(text: str) -> str:
    # RFC 6750, section 3: error_description may hold only printable ASCII other than
    # '"' and '\'.
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


class OAuthResourceServer:
    """ASGI middleware: metadata at its well-known path, tokens and scopes everywhere else.

    Args:
        app: The MCP ASGI app (with its own size and Host checks).
        config: The OAuth options, bound to the endpoint (``resource_url`` set).
        max_body_bytes: Largest request body read to find which tool is called.
        verifier: How tokens are checked; default: the one ``config`` names.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: OAuthConfig,
        max_body_bytes: int,
        verifier: Verifier | None = None,
    ):
        import httpx

        self.app = AuthContextMiddleware(app)
        self.config = config
        self.max_body_bytes = max_body_bytes
        self._client = httpx.AsyncClient(timeout=config.http_timeout_s, follow_redirects=False)
        self.verifier = verifier or make_verifier(config, self._client)
        self._metadata = json.dumps(metadata_document(config)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.config.metadata_path:
            await self._serve_metadata(scope, send)
            return
        token = _bearer(scope)
        if token is None:
            await self._deny(send, 401, None, self._missing_text())
            return
        try:
            grant = await self.verifier.verify(token)
        except TokenRejected as exc:
            await self._deny(send, 401, "invalid_token", f"Invalid access token: {exc}.")
            return
        except IssuerUnavailable as exc:
            logger.warning("Cannot check an access token with the issuer: %s", exc)
            await self._reply(
                send,
                503,
                {
                    "error": "temporarily_unavailable",
                    "error_description": "Access tokens cannot be checked right now: the "
                    "identity provider could not be asked. Try again shortly.",
                },
            )
            return
        received: list[Message] = []
        if scope.get("method") == "POST":
            too_large = _declared_length(scope) > self.max_body_bytes
            read = None if too_large else await self._read_body(receive)
            if read is None:
                await self._reply(send, 413, {"error": self._too_large_text()})
                return
            received, message = read
            needed = required_scopes(message, self.config)
        else:
            needed = [self.config.read_scope]
        missing = [s for s in needed if s not in grant.scopes]
        if missing:
            await self._deny(
                send,
                403,
                "insufficient_scope",
                f"This request needs the scope(s) {' '.join(needed)}; the access token "
                f"lacks {' '.join(missing)}. Ask the identity provider for a token with them.",
                scope=" ".join(needed),
            )
            return
        _authenticate(scope, grant)
        await self.app(scope, replay(received, receive), send)

    def _closing(self, send: Send) -> Send:
        async def closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self._client.aclose()
            await send(message)

        return closing

    async def _read_body(self, receive: Receive) -> tuple[list[Message], Any] | None:
        """The messages read and the decoded body (``None`` for JSON that does not parse);
        ``None`` altogether when the body is over the cap."""
        received: list[Message] = []
        size, complete = 0, False
        while not complete:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return received, None  # the client went away: let the app see it
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            complete = not message.get("more_body", False)
        try:
            decoded = pydantic_core.from_json(b"".join(m.get("body", b"") for m in received))
        except ValueError:
            decoded = None  # the SDK answers with a parse error; nothing runs
        return received, decoded

    async def _serve_metadata(self, scope: Scope, send: Send) -> None:
        cors = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", b"GET, OPTIONS"),
        ]
        if scope.get("method") == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
        elif scope.get("method") == "GET":
            await send_json(send, 200, self._metadata, [*cors, (b"cache-control", b"max-age=3600")])
        else:
            await self._reply(send, 405, {"error": "Use GET for the metadata."})

    async def _deny(
        self, send: Send, status: int, error: str | None, text: str, scope: str | None = None
    ) -> None:
        params = []
        if error is not None:
            params += [f'error="{error}"', f'error_description="{_quoted(text)}"']
        params.append(f'scope="{scope or " ".join(self.config.scopes)}"')
        params.append(f'resource_metadata="{self.config.metadata_url}"')
        challenge = ("Bearer " + ", ".join(params)).encode()
        body = {"error": error or "unauthorized", "error_description": text}
        await self._reply(send, status, body, [(b"www-authenticate", challenge)])

    async def _reply(
        self,
        send: Send,
        status: int,
        body: dict[str, Any],
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        await send_json(send, status, json.dumps(body).encode(), extra or [])

    def _missing_text(self) -> str:
        return (
            f"This server needs an OAuth access token from {self.config.issuer} issued for "
            f"{self.config.audience or self.config.resource_url}: send 'Authorization: "
            "Bearer <token>'. The metadata at "
            f"{self.config.metadata_url} says where to get one and which scopes to ask for."
        )

    def _too_large_text(self) -> str:
        return (
            f"Request body is over this server's limit of {self.max_body_bytes} bytes. "
            "Pass images by file path inside an allowed folder or by medmo:// URI instead "
            "of inline data, or downscale them."
        )


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return 0


def _authenticate(scope: Scope, grant: AccessToken) -> None:
    """Record the grant where the SDK looks: it binds sessions to this principal, and
    ``get_access_token()`` returns it inside handlers."""
    scope["user"] = AuthenticatedUser(grant)
    scope["auth"] = AuthCredentials(grant.scopes)
