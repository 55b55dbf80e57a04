"""Answers from the identity provider are read only up to ``auth_max_response_bytes``: an
oversized key set or introspection answer makes the issuer unavailable (503), it does
not fill the server's memory."""

from __future__ import annotations

import httpx
import pytest
from oauth_issuer import CLIENT_ID, CLIENT_SECRET, LocalIssuer

from mcp_server.oauth.config import OAuthConfig
from mcp_server.oauth.errors import IssuerUnavailable
from mcp_server.oauth.issuer import IssuerMetadata, SigningKeys
from mcp_server.oauth.verify import IntrospectionVerifier, JWTVerifier
from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError

RESOURCE = "http://127.0.0.1:8000/mcp"


def _config(issuer: str, **settings) -> OAuthConfig:
    config = OAuthConfig.from_settings(Settings(auth_issuer=issuer, **settings))
    assert config is not None
    return config.check("127.0.0.1").for_endpoint("127.0.0.1", 8000, "/mcp")


@pytest.fixture
def issuer():
    with LocalIssuer() as running:
        yield running


async def test_a_key_set_over_the_response_limit_makes_the_issuer_unavailable(issuer):
    # many published keys: a JWKS of about 20 kB, well past a 4 kB limit
    issuer.keys = issuer.keys * 20
    config = _config(issuer.url, auth_max_response_bytes=4096)
    async with httpx.AsyncClient() as client:
        verifier = JWTVerifier(config, SigningKeys(IssuerMetadata(config, client)))
        with pytest.raises(IssuerUnavailable, match="more than 4096 bytes") as info:
            await verifier.verify(issuer.token(RESOURCE))
    assert "MEDMO_AUTH_MAX_RESPONSE_BYTES" in str(info.value)


async def test_keys_within_the_response_limit_verify_tokens(issuer):
    config = _config(issuer.url, auth_max_response_bytes=65536)
    async with httpx.AsyncClient() as client:
        verifier = JWTVerifier(config, SigningKeys(IssuerMetadata(config, client)))
        grant = await verifier.verify(issuer.token(RESOURCE))
    assert grant.subject == "user-42"


async def test_an_introspection_answer_over_the_response_limit_is_not_read(issuer):
    token = "opaque-token"
    issuer.introspection[token] = {"active": True, "aud": RESOURCE, "pad": "x" * 10_000}
    config = _config(
        issuer.url,
        auth_token_check="introspection",
        auth_client_id=CLIENT_ID,
        auth_client_secret=CLIENT_SECRET,
        auth_max_response_bytes=4096,
    )
    async with httpx.AsyncClient() as client:
        verifier = IntrospectionVerifier(config, IssuerMetadata(config, client))
        with pytest.raises(IssuerUnavailable, match="more than 4096 bytes"):
            await verifier.verify(token)


def test_a_response_limit_of_zero_is_refused_naming_the_setting():
    with pytest.raises(ConfigError) as info:
        _config("https://id.example.org", auth_max_response_bytes=0)
    assert info.value.input == "MEDMO_AUTH_MAX_RESPONSE_BYTES"
