"""Both protocol revisions end to end, over the real transports: a 2026-07-28 client
(stateless requests, ``server/discover``, ``Mcp-Method``/``Mcp-Name`` headers, cache
hints) and a 2025-11-25 one (the initialize handshake), each through the SDK's own
client against ``python -m mcp_server`` over streamable HTTP and over stdio.

Each client calls ``ground``, follows the resource links the result carries (the result
as JSON, the overlay PNG), and gets JSON-RPC's -32602 with a message for a wrong prompt
name or a missing prompt argument, without the server logging an error. Raw HTTP covers
what the SDK client does not show: the wire of each revision and the header checks.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_helpers import model_tools, no_error_logged_by, png_bytes, rpc_answer
from PIL import Image
from servers import ServerProcess, free_port, post_answers, start_process

from mcp_server.caching import IMMUTABLE, SERVER_LISTS
from mcp_server.tools import TOOL_NAMES
from medmo_agent.testing import scripted_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BOX_REPLY = "Lesion <box>[[100, 100, 450, 600]]</box>"
ENV = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **scripted_env(BOX_REPLY)}
MODERN, LEGACY = "2026-07-28", "2025-11-25"
#: (the client's ``mode``, the revision it must end up speaking)
MODES = [
    pytest.param("auto", MODERN, id="auto-discovers-2026-07-28"),
    pytest.param(MODERN, MODERN, id="pinned-2026-07-28"),
    pytest.param("legacy", LEGACY, id="handshake-2025-11-25"),
]
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Served:
    url: str
    proc: ServerProcess
    folder: Path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("revision-images")
    (root / "dark.png").write_bytes(png_bytes(np.full((100, 200, 3), 20, np.uint8)))
    return root


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[Served]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    cmd = [sys.executable, "-m", "mcp_server", "--http", "--port", str(port)]
    cmd += ["--backend", "scripted", "--allow-dir", str(folder)]
    with start_process(cmd, ready_check=lambda: post_answers(url), env=ENV, cwd=REPO) as proc:
        yield Served(url, proc, folder)


@pytest.fixture
def no_error_logged(served: Served) -> Iterator[None]:
    """Fails the test if the HTTP server logged an ERROR or a traceback while it ran."""
    with no_error_logged_by(served.proc):
        yield


def _http_client(url: str, mode: str, seen: Counter[str] | None = None) -> Client:
    http = create_mcp_http_client()
    if seen is not None:

        async def count(request: Any) -> None:
            seen[request.headers.get("mcp-method", "?")] += 1

        http.event_hooks = {"request": [count]}
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def _ground_and_follow_links(client: Client, image: Path) -> None:
    """``ground`` answers with text, the overlay and links; both links read back."""
    result = await client.call_tool("ground", {"image": str(image)})
    assert not result.is_error, result.content[0].text
    assert [c.type for c in result.content] == ["text", "image", "resource_link", "resource_link"]
    uri = result.structured_content["result_uri"]
    links = {c.name: c.uri for c in result.content if c.type == "resource_link"}
    assert links == {"result": uri, "overlay": f"{uri}/overlay"}
    as_json = await client.read_resource(links["result"])
    assert json.loads(as_json.contents[0].text) == result.structured_content
    (overlay,) = (await client.read_resource(links["overlay"])).contents
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(overlay.blob))).convert("RGB"))
    assert pixels.shape[:2] == (100, 200)
    (box,) = result.structured_content["boxes"]
    mid_y, left = int((box["y1"] + box["y2"]) / 2), round(box["x1"])
    edge = pixels[mid_y, max(0, left - 1) : left + 2].astype(int)
    assert (np.abs(edge - 20).max(axis=1) > 60).any(), "the overlay shows the box"


async def _prompt_mistakes_are_invalid_params(client: Client) -> None:
    with pytest.raises(MCPError) as unknown:
        await client.get_prompt("review_mri")
    with pytest.raises(MCPError) as missing:
        await client.get_prompt("second_opinion", {"image": "a.png"})
    assert unknown.value.code == missing.value.code == -32602
    assert unknown.value.message.startswith("Unknown prompt 'review_mri'. This server offers:")
    assert missing.value.message == (
        "Prompt 'second_opinion' needs the argument 'question'. Its arguments are: image, question."
    )
    ok = await client.get_prompt("second_opinion", {"image": "a.png", "question": "Normal?"})
    assert "Normal?" in ok.messages[0].content.text


async def _speaks(client: Client, mode: str, revision: str) -> None:
    assert client.protocol_version == revision
    if mode != MODERN:  # a pinned client adopts the revision without asking the server
        caps = client.server_capabilities
        assert caps.tools and caps.resources and caps.prompts and caps.completions
        # Deliberately no log messages to clients (see conformance/expected-failures.yml).
        assert caps.logging is None
    tools = await client.list_tools()
    assert len(model_tools(tools.tools)) == len(TOOL_NAMES)
    if revision == MODERN:
        assert (tools.ttl_ms, tools.cache_scope) == (SERVER_LISTS.ttl_ms, "public")
    else:
        # The SDK warns: the 2026-07-28 revision drops logging/setLevel altogether.
        with pytest.raises(MCPError) as refused, pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("info")
        assert refused.value.code == -32601


@pytest.mark.parametrize(("mode", "revision"), MODES)
async def test_an_http_client_of_either_revision_is_served_and_follows_result_links(
    served, no_error_logged, mode, revision
):
    async with _http_client(served.url, mode) as client:
        await _speaks(client, mode, revision)
        await _ground_and_follow_links(client, served.folder / "dark.png")
        await _prompt_mistakes_are_invalid_params(client)


@pytest.mark.parametrize(("mode", "revision"), MODES)
async def test_a_stdio_client_of_either_revision_is_served_and_follows_result_links(
    folder, tmp_path, mode, revision
):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--backend", "scripted", "--allow-dir", str(folder)],
        env={**os.environ, **ENV},
        cwd=str(REPO),
    )
    log = tmp_path / "stderr.log"
    with log.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
            await _speaks(client, mode, revision)
            await _ground_and_follow_links(client, folder / "dark.png")
            await _prompt_mistakes_are_invalid_params(client)
    text = log.read_text()
    assert "ERROR" not in text and "Traceback" not in text, text


async def test_a_2026_client_caches_what_may_be_cached_and_asks_again_for_the_rest(
    served, no_error_logged
):
    seen: Counter[str] = Counter()
    async with _http_client(served.url, MODERN, seen) as client:
        for _ in range(2):
            await client.list_tools()
        result = await client.call_tool("ground", {"image": str(served.folder / "dark.png")})
        uri = result.structured_content["result_uri"]
        for _ in range(2):
            await client.list_prompts()
            await client.list_resources()
            await client.read_resource(uri)
            await client.read_resource(f"{uri}/overlay")
    # Fixed lists and the held result: asked once. The file listing and the overlay drawn
    # on a file, which may change on disk: asked each time.
    assert seen["tools/list"] == seen["prompts/list"] == 1, seen
    assert seen["resources/list"] == 2, seen
    assert seen["resources/read"] == 3, seen
    assert "initialize" not in seen, "a 2026-07-28 client makes no handshake"


def _modern(method: str, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Headers and body of a 2026-07-28 request, as a stateless client sends it."""
    headers = {**ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
    }
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**params, "_meta": meta}}
    return {"headers": headers, "content": json.dumps(body)}


def test_a_2026_request_needs_no_session_and_its_headers_must_match_its_body(
    served, no_error_logged
):
    post = lambda **kw: httpx.post(served.url, timeout=30, **kw)  # noqa: E731
    discover = post(**_modern("server/discover", {}))
    assert discover.status_code == 200, discover.text
    assert "mcp-session-id" not in discover.headers
    found = rpc_answer(discover)["result"]
    assert MODERN in found["supportedVersions"] and found["resultType"] == "complete"
    assert {"tools", "resources", "prompts", "completions"} <= set(found["capabilities"])
    assert "logging" not in found["capabilities"]
    assert (found["ttlMs"], found["cacheScope"]) == (SERVER_LISTS.ttl_ms, "public")

    arguments = {"name": "ground", "arguments": {"image": str(served.folder / "dark.png")}}
    called = post(**_modern("tools/call", arguments, name="ground"))
    assert called.status_code == 200 and "mcp-session-id" not in called.headers
    result = rpc_answer(called)["result"]
    assert not result["isError"] and result["resultType"] == "complete"
    (link, _) = [c for c in result["content"] if c["type"] == "resource_link"]
    read = rpc_answer(post(**_modern("resources/read", {"uri": link["uri"]}, name=link["uri"])))
    assert (read["result"]["ttlMs"], read["result"]["cacheScope"]) == (IMMUTABLE.ttl_ms, "private")

    # A request whose routing headers disagree with its body is refused before it runs.
    wrong_name = post(**_modern("tools/call", arguments, name="vqa"))
    wrong_method = post(
        content=_modern("tools/call", arguments, name="ground")["content"],
        headers=_modern("tools/list", {})["headers"],
    )
    for reply, header in ((wrong_name, "Mcp-Name"), (wrong_method, "Mcp-Method")):
        assert reply.status_code == 400, reply.text
        error = rpc_answer(reply)["error"]
        assert error["code"] == -32020 and error["message"].lower().startswith(header.lower()), (
            error
        )


def test_a_2025_session_gets_the_results_without_2026_fields(served, no_error_logged):
    headers = {**ACCEPT}
    hello = {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"},
    }
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    reply = httpx.post(served.url, content=json.dumps(init), headers=headers, timeout=30)
    assert rpc_answer(reply)["result"]["protocolVersion"] == LEGACY
    headers["mcp-protocol-version"] = LEGACY
    headers["mcp-session-id"] = reply.headers["mcp-session-id"]
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(served.url, content=json.dumps(done), headers=headers).status_code == 202
    listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    reply = httpx.post(served.url, content=json.dumps(listed), headers=headers, timeout=30)
    result = rpc_answer(reply)["result"]
    assert "vqa" in {t["name"] for t in result["tools"]}
    assert not {"ttlMs", "cacheScope", "resultType"} & set(result), sorted(result)
