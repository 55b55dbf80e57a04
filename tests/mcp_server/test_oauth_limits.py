"""Answers from the identity provider are read only up to ``auth_max_response_bytes`` and
within ``auth_http_timeout_s`` in all: an oversized or endless key set or introspection
answer makes the issuer unavailable (503); it neither fills the server's memory nor holds
requests open."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from oauth_issuer import CLIENT_ID, CLIENT_SECRET, LocalIssuer

from mcp_server.oauth.config import OAuthConfig
from mcp_server.oauth.errors import IssuerUnavailable
from mcp_server.oauth.issuer import IssuerMetadata, SigningKeys, fetch_json
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


class _Drip(BaseHTTPRequestHandler):
    """Answers 200 and then one byte of its body every 50 ms: each read is quick, the
    whole answer never ends (for the test's purposes)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            for _ in range(400):  # 20 s at most, long past the limit under test
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)  # the slow issuer being simulated, not a synchronisation
        except OSError:
            pass  # the client hung up, as it should


async def test_an_issuer_answering_a_byte_at_a_time_is_given_up_on_after_the_timeout():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = _config(url, auth_http_timeout_s=0.5)
        async with httpx.AsyncClient(timeout=5) as client:
            start = time.monotonic()
            with pytest.raises(IssuerUnavailable, match=r"within 0.5 s \(auth_http_timeout_s\)"):
                await fetch_json(client, "GET", url + "/jwks", config)
            assert time.monotonic() - start < 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
