"""The OAuth resource server's options, read from Settings and checked once at start-up.

The values come from :class:`medmo_agent.config.Settings` (``MEDMO_AUTH_*`` variables and
the matching ``medmo serve`` options), the only home of their defaults; this module turns
them into one checked, immutable object and derives the URLs the server publishes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from medmo_agent.errors import ConfigError

if TYPE_CHECKING:
    from medmo_agent.config import Settings

__all__ = ["METADATA_PREFIX", "SIGNING_ALGORITHMS", "OAuthConfig", "is_loopback_host"]

#: Where RFC 9728 puts protected-resource metadata: this, then the resource's path.
METADATA_PREFIX = "/.well-known/oauth-protected-resource"

#: Asymmetric JWS algorithms (RFC 7518, RFC 8037) a signing key from a JWKS can verify.
#: ``none`` and the HMAC family are never accepted: a JWKS publishes no shared secrets,
#: and a public key misused as an HMAC secret is the classic key-confusion forgery.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

_TOKEN_CHECKS = ("jwt", "introspection")


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a name or address, IPv6 with or without brackets) is this machine."""
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_url(url: str, option: str, what: str) -> None:
    """Refuse a URL that is not absolute HTTPS (plain HTTP only to this machine)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"The {what} {url!r} is not an absolute http(s) URL.",
            input=option,
            fix="Give the full URL, e.g. https://login.example.org/realms/medmo.",
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"The {what} {url!r} uses plain HTTP, so tokens and keys could be read or "
            "replaced on the way.",
            input=option,
            fix="Use its https:// URL (plain http is accepted for loopback addresses only).",
        )
    if parts.fragment or parts.query:
        raise ConfigError(
            f"The {what} {url!r} has a query or fragment.",
            input=option,
            fix="Remove the part after '?' or '#'.",
        )


@dataclass(frozen=True)
class OAuthConfig:
    """How the HTTP server checks OAuth access tokens (see the Settings ``auth_*`` fields).

    Attributes:
        issuer: The authorization server's issuer identifier, compared exactly with a
            token's ``iss`` and with the ``issuer`` of its metadata.
        resource_url: This server's public URL; ``None`` until the bind address is known
            (then ``http://HOST:PORT/PATH``, see :meth:`for_endpoint`).
        audience: The ``aud`` a token must name; ``None``: the resource URL.
        read_scope: Scope every request needs.
        model_scope: Scope a call of a tool that runs the model also needs.
        token_check: ``"jwt"`` (signature and claims, keys from the issuer's JWKS) or
            ``"introspection"`` (RFC 7662, the issuer decides).
        algorithms: Accepted JWS algorithms.
        clock_skew_s: Leeway for ``exp``, ``nbf`` and ``iat``.
        jwks_cache_s: How long metadata and keys are reused.
        jwks_refetch_min_s: Fewest seconds between refetches an unknown key id triggers.
        introspection_url: Introspection endpoint; ``None``: from the issuer's metadata.
        client_id: This server's client id at the introspection endpoint.
        client_secret: Its secret (kept out of ``repr``).
        http_timeout_s: Timeout of each request to the issuer.
        max_response_bytes: Largest answer read from the issuer; a longer one makes the
            issuer count as unavailable rather than fill the server's memory.
    """

    issuer: str
    resource_url: str | None
    audience: str | None
    read_scope: str
    model_scope: str
    token_check: str
    algorithms: tuple[str, ...]
    clock_skew_s: float
    jwks_cache_s: float
    jwks_refetch_min_s: float
    introspection_url: str | None
    client_id: str | None
    client_secret: str | None = dataclasses.field(repr=False)
    http_timeout_s: float
    max_response_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthConfig | None:
        """The OAuth options of ``settings``, or ``None`` when no issuer is set."""
        if not settings.auth_issuer:
            return None
        algorithms = tuple(a.strip() for a in settings.auth_algorithms.split(",") if a.strip())
        return cls(
            issuer=settings.auth_issuer,
            resource_url=settings.auth_resource_url,
            audience=settings.auth_audience,
            read_scope=settings.auth_read_scope,
            model_scope=settings.auth_model_scope,
            token_check=settings.auth_token_check,
            algorithms=algorithms,
            clock_skew_s=settings.auth_clock_skew_s,
            jwks_cache_s=settings.auth_jwks_cache_s,
            jwks_refetch_min_s=settings.auth_jwks_refetch_min_s,
            introspection_url=settings.auth_introspection_url,
            client_id=settings.auth_client_id,
            client_secret=settings.auth_client_secret,
            http_timeout_s=settings.auth_http_timeout_s,
            max_response_bytes=settings.auth_max_response_bytes,
        )

    def check(self, bind_host: str) -> OAuthConfig:
        """Refuse contradictory or unsafe options; returns ``self``.

        Args:
            bind_host: The address the HTTP server binds (a public one needs an explicit
                resource URL: the bind address is not what clients reach).

        Raises:
            ConfigError: Naming the option and how to fix it.
        """
        _check_url(self.issuer, "--auth-issuer", "issuer")
        if self.resource_url is not None:
            _check_url(self.resource_url, "--auth-resource-url", "resource URL")
        elif not is_loopback_host(bind_host):
            raise ConfigError(
                f"Binding {bind_host} with OAuth needs the URL clients reach this server at: "
                "it is the audience of their tokens and is published in the metadata.",
                input="--auth-resource-url",
                fix="Pass --auth-resource-url https://NAME/mcp (or set MEDMO_AUTH_RESOURCE_URL).",
            )
        if self.token_check not in _TOKEN_CHECKS:
            raise ConfigError(
                f"Unknown token check {self.token_check!r}.",
                input="--auth-token-check",
                fix="Use jwt (signed access tokens) or introspection (RFC 7662).",
            )
        self._check_algorithms()
        for option, scope in (
            ("--auth-read-scope", self.read_scope),
            ("--auth-model-scope", self.model_scope),
        ):
            if not scope or any(c.isspace() or c in '"\\' for c in scope):
                raise ConfigError(
                    f"The scope {scope!r} is empty or contains spaces or quotes.",
                    input=option,
                    fix="Use one scope name, e.g. medmo:read.",
                )
        self._check_numbers()
        if self.token_check == "introspection":
            if self.introspection_url is not None:
                _check_url(self.introspection_url, "--auth-introspection-url", "endpoint")
            if not self.client_id or not self.client_secret:
                raise ConfigError(
                    "Token introspection needs this server's client credentials at the issuer.",
                    input="--auth-client-id",
                    fix="Pass --auth-client-id ID and set MEDMO_AUTH_CLIENT_SECRET.",
                )
        return self

    def _check_algorithms(self) -> None:
        if not self.algorithms:
            raise ConfigError(
                "No JWT signature algorithm is accepted.",
                input="--auth-algorithms",
                fix="Name at least one, e.g. RS256,ES256.",
            )
        for alg in self.algorithms:
            if alg not in SIGNING_ALGORITHMS:
                why = (
                    "unsigned or shared-secret tokens are never accepted"
                    if alg.lower() == "none" or alg.upper().startswith("HS")
                    else "it is not an asymmetric JWS algorithm"
                )
                raise ConfigError(
                    f"The JWT algorithm {alg!r} cannot be allowed: {why}.",
                    input="--auth-algorithms",
                    fix=f"Choose from {', '.join(sorted(SIGNING_ALGORITHMS))}.",
                )

    def _check_numbers(self) -> None:
        if self.max_response_bytes <= 0:
            raise ConfigError(
                "auth_max_response_bytes must be positive.",
                input="MEDMO_AUTH_MAX_RESPONSE_BYTES",
                fix="Pass a positive number of bytes (the default is 1048576).",
            )
        for name, value, least in (
            ("auth_clock_skew_s", self.clock_skew_s, 0.0),
            ("auth_jwks_refetch_min_s", self.jwks_refetch_min_s, 0.0),
        ):
            if value < least:
                raise ConfigError(
                    f"{name} must not be negative.",
                    input="MEDMO_" + name.upper(),
                    fix="Pass zero or more seconds.",
                )
        for name, value in (
            ("auth_jwks_cache_s", self.jwks_cache_s),
            ("auth_http_timeout_s", self.http_timeout_s),
        ):
            if value <= 0:
                raise ConfigError(
                    f"{name} must be positive.",
                    input="MEDMO_" + name.upper(),
                    fix="Pass a positive number of seconds.",
                )

    def for_endpoint(self, host: str, port: int, path: str) -> OAuthConfig:
        """The options with the resource URL (and audience) filled in for a bound socket."""
        resource = self.resource_url
        if resource is None:
            shown = f"[{host}]" if ":" in host else host
            resource = f"http://{shown}:{port}{path}"
        return dataclasses.replace(self, resource_url=resource, audience=self.audience or resource)

    @property
    def scopes(self) -> list[str]:
        """The scopes this server knows, read scope first (duplicates dropped)."""
        return list(dict.fromkeys([self.read_scope, self.model_scope]))

    @property
    def metadata_path(self) -> str:
        """The request path of the protected-resource metadata (RFC 9728, section 3.1)."""
        return METADATA_PREFIX + urlsplit(self._resource()).path.rstrip("/")

    @property
    def metadata_url(self) -> str:
        """The absolute URL of the protected-resource metadata."""
        parts = urlsplit(self._resource())
        return f"{parts.scheme}://{parts.netloc}{self.metadata_path}"

    def _resource(self) -> str:
        if self.resource_url is None:
            raise ValueError("resource_url is known only once bound (see for_endpoint)")
        return self.resource_url
