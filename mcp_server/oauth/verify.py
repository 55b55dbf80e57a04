"""Check an access token: a signed JWT against the issuer's keys, or RFC 7662 introspection.

Either way the token must come from the configured issuer, be issued for this server's
audience (a token meant for another service is refused: the MCP spec forbids passing
tokens through), and be within its validity period give or take ``auth_clock_skew_s``.
The result is the SDK's :class:`AccessToken`, so the SDK binds sessions to its principal
and handlers can read it with ``get_access_token()``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from mcp.server.auth.provider import AccessToken

from .errors import IssuerUnavailable, TokenRejected
from .issuer import IssuerMetadata, SigningKeys, fetch_json

if TYPE_CHECKING:
    import httpx

    from .config import OAuthConfig

__all__ = ["IntrospectionVerifier", "JWTVerifier", "Verifier", "make_verifier", "scopes_of"]


class Verifier(Protocol):
    """Turns a bearer token into an :class:`AccessToken` or raises :class:`TokenRejected`."""

    async def verify(self, token: str) -> AccessToken:
        """The token's grant; raises TokenRejected or IssuerUnavailable."""
        ...


class _SDKTokenVerifier:
    """The SDK's ``TokenVerifier`` protocol on top of :meth:`verify`, so a verifier can also
    be handed to ``MCPServer(token_verifier=..., auth=AuthSettings(...))``.

    ``medmo serve`` does not take that route: the SDK's middleware requires one fixed set
    of scopes for the whole endpoint (not per tool), gives no reason with a 401, and would
    turn an identity-provider outage into a 401 rather than a 503.
    """

    async def verify(self, token: str) -> AccessToken:
        raise NotImplementedError

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's grant, or ``None`` if it is not accepted."""
        try:
            return await self.verify(token)
        except TokenRejected:
            return None


def scopes_of(claims: dict[str, Any]) -> list[str]:
    """Granted scopes: ``scope`` (RFC 9068/7662, space-separated) or ``scp`` (a string or a
    list, as Microsoft Entra ID and Okta write it)."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def _access_token(token: str, claims: dict[str, Any], audience: str) -> AccessToken:
    client = claims.get("client_id") or claims.get("azp") or claims.get("appid")
    subject = claims.get("sub")
    exp = claims.get("exp")
    return AccessToken(
        token=token,
        client_id=str(client or subject or "unknown"),
        scopes=scopes_of(claims),
        expires_at=int(exp) if isinstance(exp, (int, float)) else None,
        resource=audience,
        subject=str(subject) if subject is not None else None,
        claims={"iss": claims.get("iss")},
    )


def _audience(config: OAuthConfig) -> str:
    audience = config.audience or config.resource_url
    if audience is None:
        raise ValueError("the OAuth options are not bound to an endpoint (see for_endpoint)")
    return audience


class JWTVerifier(_SDKTokenVerifier):
    """Verify JWT access tokens (RFC 9068) with PyJWT and the issuer's published keys.

    Args:
        config: The OAuth options, bound to the endpoint.
        keys: The issuer's signing keys.
    """

    def __init__(self, config: OAuthConfig, keys: SigningKeys):
        self.config = config
        self.keys = keys

    async def verify(self, token: str) -> AccessToken:
        """Check signature, algorithm, issuer, audience and validity period."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenRejected("the access token is not a well-formed JWT") from exc
        alg = header.get("alg")
        # The allow-list is checked before any key is looked up: alg=none and HS* (a
        # public key used as an HMAC secret) never reach a verification routine.
        if alg not in self.config.algorithms:
            raise TokenRejected(f"access tokens signed with alg {alg!r} are not accepted")
        kid = header.get("kid")
        key = await self.keys.key_for(kid if isinstance(kid, str) else None, alg)
        audience = _audience(self.config)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audience,
                issuer=self.config.issuer,
                leeway=self.config.clock_skew_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the access token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected("the access token is not valid yet (nbf or iat)") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected(
                f"the access token was issued for another audience; this server accepts "
                f"only tokens for {audience}"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected("the access token comes from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"the access token has no {exc.claim} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("the access token's signature does not verify") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"the access token is invalid ({type(exc).__name__})") from exc
        return _access_token(token, claims, audience)


class IntrospectionVerifier(_SDKTokenVerifier):
    """Ask the issuer about each token (RFC 7662), authenticating with client credentials.

    Nothing is cached: a revoked token is refused from the next request on.

    Args:
        config: The OAuth options, bound to the endpoint.
        metadata: The issuer's metadata (it names the introspection endpoint unless
            ``auth_introspection_url`` does).
    """

    def __init__(self, config: OAuthConfig, metadata: IssuerMetadata):
        self.config = config
        self.metadata = metadata

    async def verify(self, token: str) -> AccessToken:
        """The token's grant if the issuer says it is active and meant for this server."""
        url = self.config.introspection_url or await self.metadata.endpoint(
            "introspection_endpoint"
        )
        status, claims = await fetch_json(
            self.metadata.client,
            "POST",
            url,
            self.config,
            data={"token": token, "token_type_hint": "access_token"},
            auth=(self.config.client_id or "", self.config.client_secret or ""),
            headers={"Accept": "application/json"},
        )
        if status != 200:
            raise IssuerUnavailable(
                f"{url} answered {status} (check --auth-client-id and MEDMO_AUTH_CLIENT_SECRET)"
            )
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise TokenRejected("the access token is not active (revoked, expired or unknown)")
        return _access_token(token, self._check_claims(claims), _audience(self.config))

    def _check_claims(self, claims: dict[str, Any]) -> dict[str, Any]:
        now, skew = time.time(), self.config.clock_skew_s
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if isinstance(exp, (int, float)) and exp + skew <= now:
            raise TokenRejected("the access token has expired")
        for moment in (nbf, iat):
            if isinstance(moment, (int, float)) and moment - skew > now:
                raise TokenRejected("the access token is not valid yet (nbf or iat)")
        if claims.get("iss", self.config.issuer) != self.config.issuer:
            raise TokenRejected("the access token comes from another issuer")
        audience = _audience(self.config)
        aud = claims.get("aud")
        names = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        # An answer without an audience cannot show the token was meant for this server.
        if audience not in names:
            raise TokenRejected(
                f"the access token was issued for another audience; this server accepts "
                f"only tokens for {audience}"
            )
        return claims


def make_verifier(config: OAuthConfig, client: httpx.AsyncClient) -> Verifier:
    """The verifier ``config.token_check`` names, sharing one HTTP client."""
    metadata = IssuerMetadata(config, client)
    if config.token_check == "introspection":
        return IntrospectionVerifier(config, metadata)
    return JWTVerifier(config, SigningKeys(metadata))
