"""Streamable HTTP: the ASGI app with bearer-token auth, Host checks and a body cap.

Binding loopback needs no token; binding anything else requires one (checked in
:meth:`ServerConfig.validate`), and every request must then carry
``Authorization: Bearer <token>`` (compared in constant time) or gets 401. The
``Host`` header is checked against the bound name (and ``--allowed-host``) to stop DNS
rebinding. Stateless mode keeps no per-client session, so replicas can sit behind a
load balancer. A request whose JSON-RPC ``id`` is invalid is answered with 400 and an
"Invalid Request" error (see :mod:`mcp_server.jsonrpc_guard`). With an OAuth issuer
configured, access tokens from it replace the static token (see :mod:`mcp_server.oauth`).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server.transport_security import TransportSecuritySettings

from medmo_agent.errors import ConfigError

from .asgi_io import send_json
from .config import LOOPBACK_HOSTS, TOKEN_ENV, ServerConfig
from .jsonrpc_guard import InvalidRequestGuard

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BearerTokenMiddleware", "build_http_app", "serve_http", "transport_security"]


def _wildcard_hosts(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        host = f"[{name}]" if ":" in name and not name.startswith("[") else name
        out.extend([host, f"{host}:*"])
    return out


def transport_security(config: ServerConfig) -> TransportSecuritySettings:
    """Allowed ``Host``/``Origin`` headers for the bind address (DNS-rebinding guard)."""
    names = ["127.0.0.1", "localhost", "::1"]
    if not config.is_loopback:
        if config.host in ("0.0.0.0", "::"):
            names += [socket.gethostname(), socket.getfqdn()]
        else:
            names.append(config.host)
    hosts = _wildcard_hosts(list(dict.fromkeys(names)))
    hosts += list(config.allowed_hosts)
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class BearerTokenMiddleware:
    """Reject HTTP requests without the bearer token (401) or over the body cap (413).

    Args:
        app: The MCP ASGI app.
        token: The token every request must present; ``None`` disables the check.
        max_body_bytes: Largest declared request body accepted.
    """

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int):
        self.app = app
        self._token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self._token is not None:
            auth = headers.get("authorization", b"")
            scheme, _, presented = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(
                presented.strip(), self._token
            ):
                await _reply(
                    send,
                    401,
                    "Missing or invalid bearer token. Send 'Authorization: Bearer <token>' "
                    f"with the token the server was started with (--auth-token or {TOKEN_ENV}).",
                    extra=[(b"www-authenticate", b'Bearer realm="medmo"')],
                )
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _reply(
                send,
                413,
                f"Request body of {int(declared)} bytes is over this server's limit of "
                f"{self.max_body_bytes} bytes. Pass images by file path inside an allowed "
                "folder or by medmo:// URI instead of inline data, or downscale them.",
            )
            return
        await self.app(scope, receive, send)


async def _reply(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_json(send, status, json.dumps({"error": message}).encode(), extra or ())


def build_http_app(server: MCPServer, config: ServerConfig) -> ASGIApp:
    """The ASGI app serving ``server`` at ``config.path`` with the checks above."""
    app = server.streamable_http_app(
        streamable_http_path=config.path,
        stateless_http=config.stateless,
        json_response=config.json_response,
        max_request_body_size=config.max_request_bytes,
        transport_security=transport_security(config),
        host=config.host,
    )
    guarded = InvalidRequestGuard(app, config.max_request_bytes)
    checked = BearerTokenMiddleware(guarded, config.auth_token, config.max_request_bytes)
    if config.oauth is None:
        return checked
    from .oauth.middleware import OAuthResourceServer

    oauth = config.oauth.for_endpoint(config.host, config.port, config.path)
    return OAuthResourceServer(checked, oauth, config.max_request_bytes)


async def serve_http(
    server: MCPServer, config: ServerConfig, on_ready: Callable[[str], Any] | None = None
) -> None:
    """Serve over streamable HTTP until interrupted.

    Args:
        server: The MCP server.
        config: Bind address, port (0 picks a free one), token, limits.
        on_ready: Called with the endpoint URL once the model is loaded and the socket
            accepts connections; by default a line on stderr.
    """
    import uvicorn

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the listener says it is TCP; with proto 0 Nagle's algorithm and delayed ACKs add
    # about 40 ms to every response (measured by benchmarks/server.py).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {config.host}:{config.port}: {exc.strerror or exc}.",
            input="--port",
            fix="Choose another --port (0 picks a free one) or stop the process using it.",
        ) from exc
    port = sock.getsockname()[1]
    shown = f"[{config.host}]" if family == socket.AF_INET6 else config.host
    url = f"http://{shown}:{port}{config.path}"

    def default_ready(endpoint: str) -> None:
        if config.oauth is not None:
            note = f" (OAuth access tokens from {config.oauth.issuer})"
        elif config.auth_token or config.host not in LOOPBACK_HOSTS:
            note = " (bearer token required)"
        else:
            note = ""
        print(f"MedMO MCP server listening on {endpoint}{note}", file=sys.stderr, flush=True)

    ready = on_ready or default_ready

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                ready(url)

    uv_config = uvicorn.Config(
        # The bound port (not 0): an OAuth resource URL derived from the address needs it.
        build_http_app(server, dataclasses.replace(config, port=port)),
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    await _Server(uv_config).serve(sockets=[sock])
