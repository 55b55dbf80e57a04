"""The OAuth resource server's pieces on their own: options and their refusals, the
scopes each request needs, and token checks against a real local issuer over HTTP
(metadata discovery, key caching and the rate-limited refetch on an unknown key id)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import httpx
import jwt
import pytest
from oauth_issuer import LocalIssuer, SigningKey

from mcp_server.cli import build_config
from mcp_server.oauth.config import OAuthConfig
from mcp_server.oauth.errors import IssuerUnavailable, TokenRejected
from mcp_server.oauth.issuer import IssuerMetadata, SigningKeys, metadata_urls
from mcp_server.oauth.scopes import required_scopes
from mcp_server.oauth.verify import JWTVerifier
from medmo_agent.cli import build_parser
from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError

RESOURCE = "http://127.0.0.1:8000/mcp"


def _serve(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def _config(issuer: str, **settings) -> OAuthConfig:
    config = OAuthConfig.from_settings(Settings(auth_issuer=issuer, **settings))
    assert config is not None
    return config.check("127.0.0.1").for_endpoint("127.0.0.1", 8000, "/mcp")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def issuer():
    with LocalIssuer() as running:
        yield running


# ---- options ---------------------------------------------------------------------------


def test_issuer_options_reach_the_config_and_defaults_come_from_settings(monkeypatch):
    monkeypatch.delenv("MEDMO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("MEDMO_AUTH_CLOCK_SKEW_S", "5")
    args = _serve(
        "--http",
        *("--auth-issuer", "https://login.example.org/realms/medmo"),
        *("--auth-audience", "medmo-api", "--auth-model-scope", "medmo:infer"),
    )
    oauth = build_config(args).oauth
    assert oauth is not None
    assert (oauth.issuer, oauth.audience, oauth.model_scope) == (
        "https://login.example.org/realms/medmo",
        "medmo-api",
        "medmo:infer",
    )
    assert oauth.read_scope == Settings().auth_read_scope == "medmo:read"
    assert oauth.clock_skew_s == 5.0
    assert oauth.algorithms == ("RS256", "PS256", "ES256", "EdDSA")
    assert build_config(_serve("--http")).oauth is None


def test_a_public_bind_with_an_issuer_needs_no_static_token_but_a_resource_url(monkeypatch):
    monkeypatch.delenv("MEDMO_AUTH_TOKEN", raising=False)
    public = ("--http", "--host", "0.0.0.0", "--auth-issuer", "https://idp.example.org")
    with pytest.raises(ConfigError) as err:
        build_config(_serve(*public))
    assert "--auth-resource-url" in str(err.value)
    config = build_config(_serve(*public, "--auth-resource-url", "https://medmo.example.org/mcp"))
    assert config.auth_token is None
    assert config.oauth is not None and config.oauth.metadata_url == (
        "https://medmo.example.org/.well-known/oauth-protected-resource/mcp"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("--auth-issuer", "http://idp.example.org"), "plain HTTP"),
        (("--auth-issuer", "idp.example.org"), "not an absolute"),
        (("--auth-issuer", "https://idp.example.org", "--auth-algorithms", "RS256,none"), "none"),
        (("--auth-issuer", "https://idp.example.org", "--auth-algorithms", "HS256"), "HS256"),
        (("--auth-issuer", "https://idp.example.org", "--auth-token-check", "x"), "jwt"),
        (("--auth-issuer", "https://idp.example.org", "--auth-read-scope", "a b"), "spaces"),
        (("--auth-issuer", "https://idp.example.org", "--auth-clock-skew-s", "-1"), "negative"),
        (
            ("--auth-issuer", "https://idp.example.org", "--auth-token-check", "introspection"),
            "MEDMO_AUTH_CLIENT_SECRET",
        ),
        (
            ("--auth-issuer", "https://idp.example.org", "--auth-token", "t" * 32),
            "bypass",
        ),
    ],
)
def test_unsafe_or_contradictory_oauth_options_are_refused(argv, says, monkeypatch):
    monkeypatch.delenv("MEDMO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("MEDMO_AUTH_CLIENT_SECRET", raising=False)
    with pytest.raises(ConfigError) as err:
        build_config(_serve("--http", *argv))
    assert says in str(err.value) and "Fix:" in str(err.value)


def test_the_client_secret_is_not_an_option_and_stays_out_of_repr(monkeypatch):
    monkeypatch.setenv("MEDMO_AUTH_CLIENT_SECRET", "s3cret-value")
    with pytest.raises(SystemExit):
        _serve("--auth-client-secret", "x")
    args = _serve(
        "--http",
        *("--auth-issuer", "https://idp.example.org", "--auth-token-check", "introspection"),
        *("--auth-client-id", "medmo"),
    )
    oauth = build_config(args).oauth
    assert oauth is not None and oauth.client_secret == "s3cret-value"
    assert "s3cret" not in repr(oauth)


def test_metadata_urls_follow_the_mcp_discovery_order():
    assert metadata_urls("https://idp.example.org") == [
        "https://idp.example.org/.well-known/oauth-authorization-server",
        "https://idp.example.org/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://kc.example.org/realms/medmo") == [
        "https://kc.example.org/.well-known/oauth-authorization-server/realms/medmo",
        "https://kc.example.org/.well-known/openid-configuration/realms/medmo",
        "https://kc.example.org/realms/medmo/.well-known/openid-configuration",
    ]


# ---- scopes ----------------------------------------------------------------------------


def test_model_tools_need_the_model_scope_and_everything_needs_the_read_scope():
    config = _config("https://idp.example.org")
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "vqa"}}
    assert required_scopes(call, config) == ["medmo:read", "medmo:model"]
    read = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "x"}}
    assert required_scopes(read, config) == ["medmo:read"]
    assert required_scopes({"method": "tools/list"}, config) == ["medmo:read"]
    # a call whose tool cannot be read, or hidden in a batch, is treated as a model call
    assert required_scopes({"method": "tools/call", "params": []}, config)[-1] == "medmo:model"
    assert required_scopes([read, call], config) == ["medmo:read", "medmo:model"]
    assert required_scopes(None, config) == ["medmo:read"]
    # the viewer's app-only tool re-renders a held image: reading, not a model call
    render = {"method": "tools/call", "params": {"name": "viewer_render", "arguments": {}}}
    assert required_scopes(render, config) == ["medmo:read"]


# ---- tokens against the local issuer ---------------------------------------------------


async def _verify(issuer: LocalIssuer, token: str, clock: Clock | None = None, **settings):
    config = _config(issuer.url, **settings)
    async with httpx.AsyncClient() as client:
        keys = SigningKeys(IssuerMetadata(config, client, clock or Clock()))
        return await JWTVerifier(config, keys).verify(token)


async def test_a_valid_token_gives_its_scopes_client_and_subject(issuer):
    grant = await _verify(issuer, issuer.token(RESOURCE, "medmo:read medmo:model openid"))
    assert grant.scopes == ["medmo:read", "medmo:model", "openid"]
    assert (grant.client_id, grant.subject, grant.resource) == (
        "desktop-client",
        "user-42",
        RESOURCE,
    )
    assert grant.claims == {"iss": issuer.url}
    ec_key = issuer.keys[1]
    assert (await _verify(issuer, issuer.sign(issuer.claims(RESOURCE), ec_key))).scopes
    # Entra ID and Okta write scopes as `scp`; an audience list naming this server is fine
    entra = issuer.claims([RESOURCE, "other"], scp="medmo:read")
    del entra["scope"]
    assert (await _verify(issuer, issuer.sign(entra))).scopes == ["medmo:read"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(issuer: LocalIssuer, alg: str, key: bytes) -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "rsa-1"}).encode())
    body = _b64(json.dumps(issuer.claims(RESOURCE)).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest() if key else b""
    return f"{head}.{body}.{_b64(signature)}"


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("expired", "expired"),
        ("expired_within_skew", None),
        ("not_yet_valid", "not valid yet"),
        ("wrong_audience", "another audience"),
        ("no_audience", "no aud claim"),
        ("wrong_issuer", "another issuer"),
        ("tampered", "signature does not verify"),
        ("alg_none", "alg 'none'"),
        ("hmac_with_public_key", "alg 'HS256'"),
        ("unlisted_algorithm", "alg 'ES256'"),
        ("garbage", "well-formed"),
    ],
)
async def test_the_attack_list_is_refused_with_the_reason(issuer, case, says):
    now = int(time.time())
    claims = issuer.claims(RESOURCE)
    settings = {}
    if case == "expired":
        claims.update(iat=now - 4000, nbf=now - 4000, exp=now - 3600)
    elif case == "expired_within_skew":
        claims.update(exp=now - 5)  # inside the default 30 s of clock skew
    elif case == "not_yet_valid":
        claims.update(nbf=now + 3600, iat=now)
    elif case == "wrong_audience":
        claims.update(aud="https://other-service.example.org/mcp")
    elif case == "no_audience":
        del claims["aud"]
    elif case == "wrong_issuer":
        claims.update(iss="https://evil.example.org")
    elif case == "unlisted_algorithm":
        settings["auth_algorithms"] = "RS256"
    token = issuer.sign(claims, issuer.keys[1] if case == "unlisted_algorithm" else None)
    if case == "tampered":
        head, body, sig = token.split(".")
        payload = json.loads(base64.urlsafe_b64decode(body + "=="))
        payload["scope"] += " admin"
        token = f"{head}.{_b64(json.dumps(payload).encode())}.{sig}"
    elif case == "alg_none":
        token = _forged(issuer, "none", b"")
    elif case == "hmac_with_public_key":
        from cryptography.hazmat.primitives import serialization

        pem = (
            issuer.keys[0]
            .private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        token = _forged(issuer, "HS256", pem)
    elif case == "garbage":
        token = "not-a-jwt"
    if says is None:
        assert (await _verify(issuer, token, **settings)).subject == "user-42"
        return
    with pytest.raises(TokenRejected) as err:
        await _verify(issuer, token, **settings)
    assert says in str(err.value)


async def test_an_unknown_key_id_refetches_the_keys_at_most_once_per_interval(issuer):
    config = _config(issuer.url, auth_jwks_refetch_min_s=30, auth_jwks_cache_s=3600)
    clock = Clock()
    stranger = SigningKey("rsa-unknown", "RS256")
    async with httpx.AsyncClient() as client:
        keys = SigningKeys(IssuerMetadata(config, client, clock))
        verifier = JWTVerifier(config, keys)
        await verifier.verify(issuer.token(RESOURCE))
        assert keys.fetches == 1
        # within the interval: refused from the cached set, nothing fetched
        clock.now += 10
        with pytest.raises(TokenRejected, match="does not publish"):
            await verifier.verify(issuer.sign(issuer.claims(RESOURCE), stranger))
        assert keys.fetches == 1
        # past the interval: the issuer rotated in a new key; one refetch finds it
        rotated = SigningKey("rsa-2", "RS256")
        issuer.keys.append(rotated)
        try:
            clock.now += 30
            grant = await verifier.verify(issuer.sign(issuer.claims(RESOURCE), rotated))
            assert grant.subject == "user-42" and keys.fetches == 2
            # an unknown key right after that refetch: refused without another fetch
            with pytest.raises(TokenRejected, match="does not publish"):
                await verifier.verify(issuer.sign(issuer.claims(RESOURCE), stranger))
            assert keys.fetches == 2
            # the cache time passes: the set is fetched again even for a known key
            clock.now += 3600
            await verifier.verify(issuer.token(RESOURCE))
            assert keys.fetches == 3
        finally:
            issuer.keys.remove(rotated)


async def test_the_verifier_also_serves_the_sdks_token_verifier_protocol(issuer):
    config = _config(issuer.url)
    async with httpx.AsyncClient() as client:
        verifier = JWTVerifier(config, SigningKeys(IssuerMetadata(config, client, Clock())))
        grant = await verifier.verify_token(issuer.token(RESOURCE))
        assert grant is not None and grant.resource == RESOURCE
        assert await verifier.verify_token(issuer.token("https://other.example.org")) is None


async def test_a_token_without_a_key_id_needs_an_unambiguous_key(issuer):
    claims = issuer.claims(RESOURCE)
    only_rsa = jwt.encode(claims, issuer.keys[0].private, algorithm="RS256")  # no kid
    assert (await _verify(issuer, only_rsa)).subject == "user-42"
    # with two RSA keys published, a token without a kid does not pick one
    second = SigningKey("rsa-b", "RS256")
    issuer.keys.append(second)
    try:
        with pytest.raises(TokenRejected, match="kid None"):
            await _verify(issuer, jwt.encode(claims, second.private, algorithm="RS256"))
    finally:
        issuer.keys.remove(second)


async def test_metadata_for_another_issuer_or_no_metadata_is_unavailable_not_valid(issuer):
    # the issuer's real metadata names http://127.0.0.1:PORT, not this spelling of it
    with pytest.raises(IssuerUnavailable, match="describes issuer"):
        await _verify_with_issuer(issuer, issuer.url.replace("127.0.0.1", "localhost"))
    with (
        LocalIssuer(metadata_path="/nowhere") as silent,
        pytest.raises(IssuerUnavailable, match="no issuer metadata found"),
    ):
        await _verify(silent, silent.token(RESOURCE))


async def _verify_with_issuer(issuer: LocalIssuer, configured: str):
    config = _config(configured)
    async with httpx.AsyncClient() as client:
        keys = SigningKeys(IssuerMetadata(config, client, Clock()))
        return await JWTVerifier(config, keys).verify(issuer.token(RESOURCE))


async def test_openid_configuration_is_found_when_rfc8414_metadata_is_absent():
    with LocalIssuer(metadata_path="/.well-known/openid-configuration") as oidc:
        assert (await _verify(oidc, oidc.token(RESOURCE))).subject == "user-42"


# ---- the README ------------------------------------------------------------------------

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


async def test_the_readmes_example_access_token_is_accepted_with_both_scopes(issuer):
    (block,) = [
        body
        for body in re.findall(r"^```json\n(.*?)^```", README, flags=re.S | re.M)
        if '"iss"' in body
    ]
    example = json.loads(block)
    assert example["aud"] == "https://medmo.example.org/mcp"
    # the same claims, issued by the local issuer for its audience, valid now
    now = int(time.time())
    claims = {**example, "iss": issuer.url, "aud": RESOURCE, "iat": now, "exp": now + 60}
    grant = await _verify(issuer, issuer.sign(claims))
    assert set(grant.scopes) >= {"medmo:read", "medmo:model"}
    assert grant.client_id == example["client_id"]


def test_the_readme_lists_every_auth_setting_with_its_default():
    from mcp_server.cli import AUTH_SETTINGS

    names = [n for n in Settings.model_fields if n.startswith("auth_")]
    assert set(AUTH_SETTINGS) == set(names) - {"auth_client_secret"}
    for name in names:
        (row,) = [ln for ln in README.splitlines() if ln.startswith(f"| `MEDMO_{name.upper()}`")]
        default = Settings.model_fields[name].default
        if name in AUTH_SETTINGS:
            assert f"`--{name.replace('_', '-')}`" in row
        if isinstance(default, float):
            assert f"| {default:g} |" in row, row
        elif isinstance(default, str):
            assert f"| `{default}` |" in row, row


# ---- an outage of the issuer -----------------------------------------------------------


async def test_an_issuer_outage_keeps_cached_keys_and_retries_at_the_refetch_interval(issuer):
    config = _config(issuer.url, auth_jwks_refetch_min_s=30, auth_jwks_cache_s=600)
    clock = Clock()
    async with httpx.AsyncClient() as client:
        verifier = JWTVerifier(config, SigningKeys(IssuerMetadata(config, client, clock)))
        issuer.jwks_status = 503
        try:
            asked = issuer.jwks_fetches
            with pytest.raises(IssuerUnavailable, match="without a JWK set"):
                await verifier.verify(issuer.token(RESOURCE))
            # no keys yet: a request within the interval fails at once, without asking
            clock.now += 10
            with pytest.raises(IssuerUnavailable, match="auth_jwks_refetch_min_s"):
                await verifier.verify(issuer.token(RESOURCE))
            assert issuer.jwks_fetches == asked + 1
            issuer.jwks_status = 200
            clock.now += 30
            assert (await verifier.verify(issuer.token(RESOURCE))).subject == "user-42"
            assert issuer.jwks_fetches == asked + 2
            # the cache expires during an outage: the known keys stay in use, and the
            # issuer is asked again only after the refetch interval
            issuer.jwks_status = 503
            clock.now += 600
            assert (await verifier.verify(issuer.token(RESOURCE))).subject == "user-42"
            clock.now += 10
            assert (await verifier.verify(issuer.token(RESOURCE))).subject == "user-42"
            assert issuer.jwks_fetches == asked + 3
            clock.now += 30
            await verifier.verify(issuer.token(RESOURCE))
            assert issuer.jwks_fetches == asked + 4
        finally:
            issuer.jwks_status = 200


# ---- the middleware on its own (ASGI, in process) --------------------------------------


def _asgi(issuer: LocalIssuer, seen: list, max_body_bytes: int = 1000, **settings):
    from mcp.server.auth.middleware.auth_context import get_access_token

    from mcp_server.oauth.middleware import OAuthResourceServer

    async def inner(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append((scope["user"].access_token, get_access_token(), body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = OAuthResourceServer(inner, _config(issuer.url, **settings), max_body_bytes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1:8000")


async def test_the_grant_reaches_the_app_with_the_body_intact(issuer):
    seen: list = []
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "vqa"}}
    async with _asgi(issuer, seen) as client:
        token = issuer.token(RESOURCE)
        response = await client.post(
            "/mcp", json=call, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    ((grant, in_context, body),) = seen
    assert grant.subject == "user-42" and in_context == grant
    assert json.loads(body) == call


async def test_oversized_bodies_get_413_and_an_unreachable_issuer_503(issuer):
    seen: list = []
    async with _asgi(issuer, seen, max_body_bytes=100) as client:
        auth = {"Authorization": f"Bearer {issuer.token(RESOURCE)}"}
        big = await client.post("/mcp", content=b"x" * 101, headers=auth)
        assert big.status_code == 413 and "limit of 100 bytes" in big.json()["error"]

        async def chunks():
            for _ in range(3):
                yield b"x" * 60  # no Content-Length: counted as it arrives

        streamed = await client.post("/mcp", content=chunks(), headers=auth)
        assert streamed.status_code == 413
        preflight = await client.options("/.well-known/oauth-protected-resource/mcp")
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
    assert not seen
    issuer.jwks_status = 503
    try:
        async with _asgi(issuer, seen) as client:
            down = await client.post("/mcp", json={}, headers=auth)
    finally:
        issuer.jwks_status = 200
    assert down.status_code == 503 and down.json()["error"] == "temporarily_unavailable"
    assert not seen
