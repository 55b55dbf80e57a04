"""Server options: transport, safety limits, authentication and auditing.

Model options (which model, which backend, image budgets) live in
:class:`medmo_agent.config.Settings`; this module holds only what is particular to
serving MedMO over MCP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medmo_agent.errors import ConfigError

from .oauth.config import OAuthConfig

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOOPBACK_HOSTS",
    "TOKEN_ENV",
    "ServerConfig",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Environment variable holding the bearer token, so it need not appear in `ps` output.
TOKEN_ENV = "MEDMO_AUTH_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ServerConfig:
    """How the MCP server runs and what it lets callers do.

    Attributes:
        transport: ``"stdio"`` (what desktop clients launch) or ``"http"`` (streamable HTTP).
        host: Address to bind over HTTP; anything but loopback requires ``auth_token``
            or ``oauth``.
        port: Port to bind over HTTP (0 picks a free one).
        path: URL path of the MCP endpoint.
        stateless: Streamable HTTP without sessions, for replicas behind a load balancer.
        json_response: Answer HTTP requests with plain JSON instead of an SSE stream.
        allowed_dirs: Folders whose images tools may read. ``None`` means the default:
            the working directory over stdio, nothing over HTTP.
        auth_token: Bearer token every HTTP request must carry.
        allowed_hosts: Extra ``Host`` header values accepted over HTTP (``name:port`` or
            ``name:*``), for servers reached through a DNS name.
        max_request_bytes: Largest HTTP request body accepted.
        max_result_store: How many earlier results are kept for ``medmo://results/<id>``.
        overlay_max_side: Longest side, in pixels, of the box overlay image (and of the
            viewer app's rendering, :mod:`.viewer_app`) returned by
            ``ground`` and ``detect``.
        overlay_max_bytes: Byte budget of that PNG; it is downscaled further to fit.
        audit_log: JSON-lines file recording every tool call (no pixel data).
        oauth: Accept OAuth access tokens from an identity provider instead of a static
            token (HTTP only; see :mod:`mcp_server.oauth`).
        progress_every_tokens: Send a progress notification each time this many more
            pieces of text (about one token each) have been generated.
    """

    transport: str = "stdio"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    path: str = "/mcp"
    stateless: bool = False
    json_response: bool = False
    allowed_dirs: tuple[Path, ...] | None = None
    auth_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_request_bytes: int = 4 * 1024 * 1024
    max_result_store: int = 256
    overlay_max_side: int = 768
    overlay_max_bytes: int = 512 * 1024
    audit_log: Path | None = None
    progress_every_tokens: int = 8
    oauth: OAuthConfig | None = None

    def effective_allowed_dirs(self, cwd: Path | None = None) -> tuple[Path, ...]:
        """The folders tools may read: the given ones, else the transport's default.

        Over stdio the server runs on the user's own machine, launched by their client,
        so the working directory is a sensible default. Over HTTP any caller on the
        network could ask, so nothing is readable unless folders are named explicitly.
        """
        # Absolute, but as given: a folder named through a symbolic link stays reachable by
        # that name (the loader trusts the folders themselves, and resolves their links).
        if self.allowed_dirs is not None:
            return tuple(Path(os.path.abspath(Path(p).expanduser())) for p in self.allowed_dirs)
        if self.transport == "stdio":
            return (Path(os.path.abspath(cwd or Path.cwd())),)
        return ()

    def validate(self) -> ServerConfig:
        """Check the combination of options; returns ``self`` for chaining.

        Raises:
            ConfigError: An unknown transport, a non-loopback bind without a token, or a
                limit that is not positive.
        """
        if self.transport not in ("stdio", "http"):
            raise ConfigError(
                f"Unknown transport {self.transport!r}.",
                input="transport",
                fix="Use stdio (the default) or --http.",
            )
        oauth = self.oauth if self.transport == "http" else None
        if self.transport == "http" and not self.is_loopback and not self.auth_token and not oauth:
            raise ConfigError(
                f"Binding {self.host} exposes the model beyond this machine, so a bearer "
                "token is required.",
                input="--host",
                fix=f"Pass --auth-token TOKEN or set {TOKEN_ENV}, or accept tokens from an "
                "identity provider with --auth-issuer URL, or bind 127.0.0.1.",
            )
        if oauth is not None:
            if self.auth_token:
                raise ConfigError(
                    "A static bearer token and an OAuth issuer were both given; a static "
                    "token would bypass the issuer's audience and scope checks.",
                    input="--auth-token",
                    fix=f"Use one: unset {TOKEN_ENV} (and --auth-token) or --auth-issuer.",
                )
            oauth.check(self.host)
        if self.auth_token is not None and len(self.auth_token) < 16:
            raise ConfigError(
                "The bearer token is too short to resist guessing.",
                input="--auth-token",
                fix="Use at least 16 random characters, e.g. `openssl rand -hex 32`.",
            )
        for name in ("max_request_bytes", "max_result_store", "overlay_max_side"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"{name} must be positive.", input=name, fix="Pass a positive number."
                )
        return self

    @property
    def is_loopback(self) -> bool:
        """Whether the HTTP bind address is reachable only from this machine."""
        return self.host in LOOPBACK_HOSTS

    @staticmethod
    def token_from_env(environ: dict[str, str] | None = None) -> str | None:
        """The bearer token from ``MEDMO_AUTH_TOKEN``, if set."""
        env = os.environ if environ is None else environ
        return env.get(TOKEN_ENV) or None
