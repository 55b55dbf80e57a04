"""Protocol errors over streamable HTTP: what a client that sends a wrong request gets back.

One ``python -m mcp_server --http`` subprocess on the tiny checkpoint serves the module.
Raw JSON-RPC over httpx covers what an SDK client cannot send (an object as ``id``); the
SDK client covers the rest. No mistake of the caller may leave an ERROR or a traceback in
the server's log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_helpers import no_error_logged_by, rpc_answer
from servers import ServerProcess, free_port, post_answers, start_process

from mcp_server.tools import TOOL_NAMES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ENV = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TRANSFORMERS_VERBOSITY": "error"}
PROTOCOL = "2025-11-25"
JSON_RPC = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Served:
    url: str
    proc: ServerProcess
    image: Path


@pytest.fixture(scope="module")
def served(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("protocol-images")
    from mcp_helpers import png_bytes
    from numpy import full, uint8

    (folder / "dark.png").write_bytes(png_bytes(full((100, 200, 3), 20, uint8)))
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    cmd = [sys.executable, "-m", "mcp_server", "--http", "--port", str(port)]
    cmd += ["--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32"]
    cmd += ["--max-new-tokens", "8", "--allow-dir", str(folder)]
    with start_process(cmd, ready_check=lambda: post_answers(url), env=ENV, cwd=REPO) as proc:
        yield Served(url, proc, folder / "dark.png")


@pytest.fixture
def no_error_logged(served: Served) -> Iterator[None]:
    """Fails the test if the server logged an ERROR or a traceback while it ran."""
    with no_error_logged_by(served.proc):
        yield


class RawSession:
    """JSON-RPC over plain HTTP POSTs, after the initialize handshake."""

    def __init__(self, url: str):
        self.url = url
        self.headers = dict(JSON_RPC)
        reply = self.post_raw(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "raw-test", "version": "0"},
                },
            }
        )
        assert reply.status_code == 200, reply.text
        self.headers["mcp-protocol-version"] = PROTOCOL
        if "mcp-session-id" in reply.headers:
            self.headers["mcp-session-id"] = reply.headers["mcp-session-id"]
        done = self.post_raw({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert done.status_code == 202, done.text

    def post_raw(self, message: Any) -> httpx.Response:
        return httpx.post(self.url, content=json.dumps(message), headers=self.headers, timeout=60)

    def call(self, method: str, params: dict[str, Any], request_id: Any = 1) -> dict[str, Any]:
        """The JSON-RPC answer to one request (read from JSON or from the SSE stream)."""
        reply = self.post_raw(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        )
        assert reply.status_code == 200, reply.text
        return rpc_answer(reply)


@pytest.mark.parametrize(
    ("request_id", "kind"),
    [
        ({"a": 1}, "an object"),
        ([1], "an array"),
        (None, "null"),
        (True, "the boolean true"),
        (1.5, "the number 1.5"),
    ],
)
def test_a_request_with_an_invalid_id_gets_an_invalid_request_error(
    served, no_error_logged, request_id, kind
):
    session = RawSession(served.url)
    reply = session.post_raw(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": {}}
    )
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32600
    message = body["error"]["message"]
    assert message.startswith("Invalid request: the 'id' of a JSON-RPC request must be")
    assert f"got {kind}." in message
    # the same session still serves well-formed requests
    listed = session.call("tools/list", {}, request_id="after")
    assert listed["id"] == "after"
    assert {t["name"] for t in listed["result"]["tools"]} >= set(TOOL_NAMES)


def test_a_chunked_body_is_checked_too_and_an_oversized_one_still_gets_413(served, no_error_logged):
    session = RawSession(served.url)
    invalid = json.dumps({"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}).encode()

    def chunks(body: bytes, size: int):
        for start in range(0, len(body), size):
            yield body[start : start + size]

    # a generator body goes out with chunked transfer encoding and no Content-Length
    reply = httpx.post(served.url, content=chunks(invalid, 7), headers=session.headers, timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == -32600
    huge = {
        "jsonrpc": "2.0",
        "id": {"a": 1},
        "method": "tools/call",
        "params": {"name": "vqa", "arguments": {"image": "x" * (5 << 20), "question": "?"}},
    }
    over = httpx.post(
        served.url,
        content=chunks(json.dumps(huge).encode(), 1 << 16),
        headers=session.headers,
        timeout=60,
    )
    assert over.status_code == 413  # the default 4 MiB cap applies before any parsing


def test_string_and_integer_ids_and_notifications_pass_the_id_check(served, no_error_logged):
    session = RawSession(served.url)
    assert session.call("prompts/list", {}, request_id="abc")["id"] == "abc"
    assert session.call("prompts/list", {}, request_id=7)["id"] == 7
    note = session.post_raw({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}})
    assert note.status_code == 202


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"name": "nope"},
            "Unknown prompt 'nope'. This server offers: count_cells, review_chest_xray, "
            "review_ct_slice, second_opinion.",
        ),
        (
            {"name": "review_chest_xray", "arguments": {}},
            "Prompt 'review_chest_xray' needs the argument 'image'. Its arguments are: image.",
        ),
        (
            {"name": "second_opinion", "arguments": {"image": "a.png"}},
            "Prompt 'second_opinion' needs the argument 'question'. Its arguments are: "
            "image, question.",
        ),
        (
            {"name": "count_cells", "arguments": {"image": "a.png", "colour": "red"}},
            "Prompt 'count_cells' has no argument 'colour'. Its arguments are: image, "
            "label (optional).",
        ),
    ],
    ids=["unknown-name", "missing-argument", "one-of-two-missing", "unknown-argument"],
)
def test_prompts_get_with_a_wrong_name_or_argument_is_invalid_params(
    served, no_error_logged, params, expected
):
    answer = RawSession(served.url).call("prompts/get", params)
    assert answer["error"] == {"code": -32602, "message": expected}


async def test_sdk_client_sees_invalid_params_for_a_wrong_prompt_and_a_valid_one_works(
    served, no_error_logged
):
    async with _client(served.url) as client:
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("nope")
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("review_ct_slice", {"window": "lung"})
        ok = await client.get_prompt("review_ct_slice", {"image": "ct/001.dcm"})
    assert unknown.value.code == -32602
    assert unknown.value.message.startswith("Unknown prompt 'nope'. This server offers:")
    assert missing.value.code == -32602
    assert missing.value.message == (
        "Prompt 'review_ct_slice' needs the argument 'image'. Its arguments are: image, "
        "window (optional), slice (optional)."
    )
    assert "ct/001.dcm" in ok.messages[0].content.text


async def test_wrong_argument_types_come_back_readable_for_an_llm(served, no_error_logged):
    image = str(served.image)
    async with _client(served.url) as client:
        wrong_int = await client.call_tool(
            "vqa", {"image": image, "question": "?", "max_new_tokens": "abc"}
        )
        several = await client.call_tool(
            "vqa",
            {"image": image, "question": "", "slice": -1, "options": "x", "plane": "top"},
        )
        missing = await client.call_tool("ground", {"targets": ["nodule", 3]})
        fixed = await client.call_tool("vqa", {"image": image, "question": "?"})
    assert wrong_int.is_error
    assert wrong_int.content[0].text == (
        "Invalid arguments for tool 'vqa': Argument 'max_new_tokens' must be an integer; "
        "got 'abc'. Correct this argument and call 'vqa' again; its input schema lists "
        "every argument and its type."
    )
    text = several.content[0].text
    assert several.is_error and text.startswith("Invalid arguments for tool 'vqa': ")
    for part in (
        "Argument 'question' must be a non-empty string; got ''.",
        "Argument 'options' must be a list (JSON array); got 'x'.",
        "Argument 'slice' must be at least 0; got -1.",
        "Argument 'plane' must be one of 'axial', 'coronal' or 'sagittal'; got 'top'.",
        "Correct these arguments",
    ):
        assert part in text, text
    assert "pydantic" not in text and "type=" not in text
    assert missing.is_error
    assert "Argument 'image' is required but was not given." in missing.content[0].text
    assert "Argument 'targets[1]' must be a string; got 3." in missing.content[0].text
    assert not fixed.is_error, fixed.content[0].text


async def test_a_long_rejected_value_is_quoted_short(served, no_error_logged):
    async with _client(served.url) as client:
        result = await client.call_tool("text_qa", {"question": "?", "options": "y" * 5000})
    text = result.content[0].text
    assert result.is_error and "Argument 'options' must be a list (JSON array); got 'yyy" in text
    assert "... (5002 characters)." in text and len(text) < 400


def _client(url: str) -> Client:
    return Client(streamable_http_client(url, http_client=create_mcp_http_client()))
