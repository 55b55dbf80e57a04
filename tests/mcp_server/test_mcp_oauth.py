"""``python -m mcp_server --http --auth-issuer URL`` as a real subprocess, against a local
issuer (its own keys; metadata, JWKS and introspection over HTTP on loopback), driven by
the SDK's client over streamable HTTP and by plain HTTP requests for the exact answers:
the attack list, scopes per tool, the 401 pointer and the protected-resource metadata."""

from __future__ import annotations

import base64
import json
import secrets
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from mcp import Client
from mcp.client.auth.utils import extract_field_from_www_auth
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import ProtectedResourceMetadata
from mcp.shared.exceptions import MCPError
from mcp_helpers import model_tools, png_bytes
from oauth_issuer import CLIENT_ID, CLIENT_SECRET, LocalIssuer, SigningKey
from servers import free_port, start_process

from mcp_server.tools import TOOL_NAMES
from medmo_agent.testing import scripted_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BOX_REPLY = "Lesion <box>[[20, 10, 90, 60]]</box>"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
CALL_VQA = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "vqa", "arguments": {"image": "dark.png", "question": "?"}},
}


@pytest.fixture(scope="module")
def issuer():
    with LocalIssuer() as running:
        yield running


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("allowed")
    (root / "dark.png").write_bytes(png_bytes(np.full((100, 200, 3), 20, np.uint8)))
    return root


@contextmanager
def _serve(issuer: LocalIssuer, image_dir: Path, *extra: str, env: dict[str, str] | None = None):
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_server", "--http", "--port", str(port)]
    cmd += ["--backend", "scripted", "--allow-dir", str(image_dir), "--auth-issuer", issuer.url]
    metadata = f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
    variables = {
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "MEDMO_AUTH_TOKEN": "",  # a static token in this environment would be refused
        **scripted_env(BOX_REPLY),
        **(env or {}),
    }
    ready = lambda: _status(metadata) == 200  # noqa: E731
    with start_process([*cmd, *extra], ready_check=ready, env=variables, cwd=REPO) as proc:
        yield f"http://127.0.0.1:{port}/mcp"
        assert proc.alive(), proc.log_text()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audit") / "calls.jsonl"


@pytest.fixture(scope="module")
def jwt_server(issuer, image_dir, audit_log):
    # no refetch interval, so each unknown key id is looked up again (the interval itself
    # is tested in test_oauth_checks.py with a clock the test moves)
    env = {"MEDMO_AUTH_JWKS_REFETCH_MIN_S": "0"}
    with _serve(issuer, image_dir, "--audit-log", str(audit_log), env=env) as url:
        yield url


def _client(url: str, token: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"}
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers)))


def _post(url: str, token: str | None, message: dict = INITIALIZE) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=message, headers=headers, timeout=30)


async def _use_fully(url: str, token: str, image_dir: Path) -> None:
    """List, call a model tool, read its result and the server resource."""
    async with _client(url, token) as client:
        tools = await client.list_tools()
        result = await client.call_tool("ground", {"image": str(image_dir / "dark.png")})
        assert not result.is_error, result.content[0].text
        uri = result.structured_content["result_uri"]
        held = await client.read_resource(uri)
        server = await client.read_resource("medmo://server")
    assert len(model_tools(tools.tools)) == len(TOOL_NAMES)
    assert json.loads(held.contents[0].text)["boxes"][0]["label"] == "Lesion"
    assert json.loads(server.contents[0].text)["tools"]


# ---- JWT access tokens -----------------------------------------------------------------


async def test_a_valid_token_calls_a_model_tool_and_reads_resources(
    jwt_server, issuer, image_dir, audit_log
):
    token = issuer.token(jwt_server, sub="dr-jones", client_id="reading-room")
    await _use_fully(jwt_server, token, image_dir)
    # the audit log says who called: the token's client and subject
    entries = [json.loads(line) for line in audit_log.read_text().splitlines()]
    (mine,) = [e for e in entries if e.get("caller", {}).get("subject") == "dr-jones"]
    assert mine["tool"] == "ground" and mine["outcome"] == "ok"
    assert mine["caller"] == {"client_id": "reading-room", "subject": "dr-jones"}


async def test_a_read_only_token_reads_but_gets_403_for_a_model_tool(jwt_server, issuer):
    token = issuer.token(jwt_server, scope="medmo:read")
    async with _client(jwt_server, token) as client:
        assert len(model_tools((await client.list_tools()).tools)) == len(TOOL_NAMES)
        assert json.loads((await client.read_resource("medmo://server")).contents[0].text)
        with pytest.raises(MCPError):  # the SDK's error for an HTTP 403
            await client.call_tool("vqa", {"image": "dark.png", "question": "Normal?"})
        # refused, not broken: the session goes on serving what the token allows
        assert (await client.list_resource_templates()).resource_templates
    denied = _post(jwt_server, token, CALL_VQA)
    assert denied.status_code == 403
    assert extract_field_from_www_auth(denied, "error") == "insufficient_scope"
    assert extract_field_from_www_auth(denied, "scope") == "medmo:read medmo:model"
    assert "lacks medmo:model" in denied.json()["error_description"]
    # a token with neither scope cannot even open a session
    none = _post(jwt_server, issuer.token(jwt_server, scope="openid"))
    assert none.status_code == 403
    assert extract_field_from_www_auth(none, "scope") == "medmo:read"


def test_without_a_token_the_401_points_to_metadata_naming_the_issuer(jwt_server, issuer):
    denied = _post(jwt_server, None)
    assert denied.status_code == 401
    challenge = denied.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "error=" not in challenge  # RFC 6750, 3.1
    assert denied.json()["error"] == "unauthorized"
    assert issuer.url in denied.json()["error_description"]
    pointer = extract_field_from_www_auth(denied, "resource_metadata")
    assert pointer == jwt_server.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    document = httpx.get(pointer, timeout=10)
    assert document.status_code == 200
    assert document.headers["access-control-allow-origin"] == "*"
    metadata = ProtectedResourceMetadata.model_validate(document.json())
    assert document.json()["resource"] == jwt_server
    assert document.json()["authorization_servers"] == [issuer.url]
    assert metadata.scopes_supported == ["medmo:read", "medmo:model"]
    assert metadata.bearer_methods_supported == ["header"]
    # a client follows it to the authorization server's own metadata
    as_url = f"{issuer.url}/.well-known/oauth-authorization-server"
    assert httpx.get(as_url, timeout=10).json()["issuer"] == issuer.url
    basic = httpx.post(jwt_server, json=INITIALIZE, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _attack(case: str, issuer: LocalIssuer, audience: str) -> str:
    now = int(time.time())
    claims = issuer.claims(audience)
    if case == "expired":
        claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    elif case == "not_yet_valid":
        claims.update(nbf=now + 3600)
    elif case == "wrong_audience":
        claims.update(aud="https://other-service.example.org/mcp")
    elif case == "wrong_issuer":
        claims.update(iss="https://evil.example.org")
    elif case == "tampered":
        head, _, sig = issuer.sign(claims).split(".")
        claims["sub"] = "admin"
        return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
    elif case == "alg_none":
        head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
        return f"{head}.{_b64(json.dumps(claims).encode())}."
    elif case == "another_issuers_keys":
        with LocalIssuer() as other:
            claims["iss"] = other.url
            return other.sign(claims)
    return issuer.sign(claims)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("expired", "expired"),
        ("not_yet_valid", "not valid yet"),
        ("wrong_audience", "another audience"),
        ("wrong_issuer", "another issuer"),
        ("another_issuers_keys", "signature does not verify"),
        ("tampered", "signature does not verify"),
        ("alg_none", "alg 'none'"),
    ],
)
async def test_the_attack_list_gets_401_invalid_token(jwt_server, issuer, case, says):
    token = _attack(case, issuer, jwt_server)
    denied = _post(jwt_server, token)
    assert denied.status_code == 401, denied.text
    assert extract_field_from_www_auth(denied, "error") == "invalid_token"
    assert says in extract_field_from_www_auth(denied, "error_description")
    assert extract_field_from_www_auth(denied, "resource_metadata").endswith(
        "/.well-known/oauth-protected-resource/mcp"
    )
    assert denied.json()["error"] == "invalid_token"
    with pytest.raises(Exception):  # noqa: B017 - the SDK's error type for an HTTP 401
        async with _client(jwt_server, token) as client:
            await client.list_tools()


async def test_an_unknown_key_id_refetches_the_keys_then_refuses(jwt_server, issuer, image_dir):
    assert _post(jwt_server, issuer.token(jwt_server)).status_code == 200
    before = issuer.jwks_fetches
    stranger = SigningKey("rsa-unknown", "RS256")
    denied = _post(jwt_server, issuer.sign(issuer.claims(jwt_server), stranger))
    assert denied.status_code == 401
    assert "does not publish" in extract_field_from_www_auth(denied, "error_description")
    assert issuer.jwks_fetches == before + 1
    # the issuer rotates in a new key: the refetch finds it and the token works
    rotated = SigningKey("ec-2", "ES256")
    issuer.keys.append(rotated)
    try:
        async with _client(jwt_server, issuer.sign(issuer.claims(jwt_server), rotated)) as client:
            result = await client.call_tool("detect", {"image": str(image_dir / "dark.png")})
        assert not result.is_error and result.structured_content["counts"] == {"Lesion": 1}
        assert issuer.jwks_fetches == before + 2
    finally:
        issuer.keys.remove(rotated)


# ---- introspection ---------------------------------------------------------------------


async def test_introspection_mode_accepts_active_tokens_and_refuses_the_rest(issuer, image_dir):
    introspect = ("--auth-token-check", "introspection", "--auth-client-id", CLIENT_ID)
    secret = {"MEDMO_AUTH_CLIENT_SECRET": CLIENT_SECRET}
    with _serve(issuer, image_dir, *introspect, env=secret) as url:

        def opaque(**answer) -> str:
            token = secrets.token_urlsafe(24)
            now = int(time.time())
            issuer.introspection[token] = {
                "active": True,
                "iss": issuer.url,
                "aud": url,
                "sub": "user-7",
                "client_id": "web-client",
                "scope": "medmo:read medmo:model",
                "exp": now + 300,
                "iat": now,
                **answer,
            }
            return token

        await _use_fully(url, opaque(), image_dir)
        checks = {
            "not active": opaque(active=False),
            "not active (revoked": secrets.token_urlsafe(24),  # unknown to the issuer
            "another audience": opaque(aud="https://other-service.example.org/mcp"),
            "expired": opaque(exp=int(time.time()) - 3600),
            "another issuer": opaque(iss="https://evil.example.org"),
        }
        for says, token in checks.items():
            denied = _post(url, token)
            assert denied.status_code == 401, (says, denied.text)
            assert says in extract_field_from_www_auth(denied, "error_description")
        read_only = _post(url, opaque(scope="medmo:read"), CALL_VQA)
        assert read_only.status_code == 403
        assert extract_field_from_www_auth(read_only, "error") == "insufficient_scope"
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert set(issuer.introspection_auth) == {f"Basic {expected}"}


def test_a_session_belongs_to_the_user_whose_token_opened_it(jwt_server, issuer):
    opened = _post(jwt_server, issuer.token(jwt_server))
    session = opened.headers["mcp-session-id"]
    headers = {
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": session,
        "MCP-Protocol-Version": "2025-11-25",
    }
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}

    def post(token: str) -> httpx.Response:
        auth = {**headers, "Authorization": f"Bearer {token}"}
        return httpx.post(jwt_server, json=listing, headers=auth, timeout=30)

    # the same user with a fresh token (a refresh) carries on; another user cannot
    assert post(issuer.token(jwt_server)).status_code == 200
    assert post(issuer.token(jwt_server, sub="user-99")).status_code == 404
