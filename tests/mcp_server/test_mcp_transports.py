"""``python -m mcp_server`` as a real subprocess, driven by the SDK's client over stdio and
over streamable HTTP (with and without the bearer token), plus the HTTP-only rules:
401 without a valid token, Host header checks, the request-size cap, stateless mode."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_helpers import model_tools
from PIL import Image
from servers import free_port, post_answers, start_process

from mcp_server.tools import TOOL_NAMES
from medmo_agent.testing import scripted_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"
BOX_REPLY = "Lesion <box>[[20, 10, 90, 60]]</box>"
ENV = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **scripted_env(BOX_REPLY)}


def _serve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mcp_server", *args]


@pytest.fixture
def http_server(image_dir):
    """``http_server(*extra_args)``: start the HTTP server, yield its endpoint URL."""

    @asynccontextmanager
    async def start(*extra: str):
        port = free_port()
        cmd = _serve_cmd(
            *("--http", "--port", str(port), "--backend", "scripted"),
            *("--allow-dir", str(image_dir), *extra),
        )
        url = f"http://127.0.0.1:{port}/mcp"
        ready = lambda: post_answers(url)  # noqa: E731
        with start_process(cmd, ready_check=ready, env=ENV, cwd=REPO, timeout=60) as proc:
            yield url
            assert proc.alive(), proc.log_text()

    return start


def _client(url: str, token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers)))


def _overlay_size(result) -> tuple[int, int]:
    (block,) = [c for c in result.content if c.type == "image"]
    return Image.open(io.BytesIO(base64.b64decode(block.data))).size


async def test_stdio_subprocess_on_the_tiny_checkpoint_serves_tools(tiny_checkpoint, image_dir):
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mcp_server",
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--max-new-tokens",
            "8",
        ],
        env={**os.environ, **ENV},
        cwd=str(image_dir),  # over stdio the working directory is the allowed folder
    )
    from medmo_agent.testing.volumes import write_perfusion

    write_perfusion(image_dir / "perfusion.nii.gz")
    async with Client(params, read_timeout_seconds=120) as client:
        tools = await client.list_tools()
        answer = await client.call_tool("vqa", {"image": "dark.png", "question": "Normal?"})
        denied = await client.call_tool("vqa", {"image": "/etc/hostname", "question": "?"})
        again = await client.call_tool("text_qa", {"question": "What does the liver make?"})
        # a 4D volume, one time point, coronal slices of 2.5 mm slices (shown square)
        sweep = await client.call_tool(
            "ground_volume",
            {"image": "perfusion.nii.gz", "frame": 2, "plane": "coronal", "slices": "::16"},
        )
    assert len(model_tools(tools.tools)) == 9
    assert not answer.is_error, answer.content[0].text
    assert answer.structured_content["backend"] == "transformers"
    assert answer.structured_content["usage"]["completion_tokens"] == 8
    assert denied.is_error and denied.content[0].text.startswith("AccessDeniedError")
    assert not again.is_error
    assert not sweep.is_error, sweep.content[0].text
    swept = sweep.structured_content
    assert swept["backend"] == "transformers" and swept["time_point"] == 2
    assert swept["plane"] == "coronal" and swept["slices"] == [0, 16, 32]
    # 20 slices of 2.5 mm as rows of about 0.8 mm: 62 rows beside 48 columns of 0.8 mm
    assert swept["shape"] == [48, 62, 48]
    assert swept["spacing_mm"][:2] == pytest.approx([50 / 62, 0.8], abs=1e-4)
    assert all(e["error"] is None for e in swept["per_slice"])


async def test_stdio_subprocess_returns_the_overlay_image(image_dir):
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mcp_server",
            "--backend",
            "scripted",
            "--allow-dir",
            str(image_dir),
        ],
        env={**os.environ, **ENV},
        cwd=str(REPO),
    )
    async with Client(params, read_timeout_seconds=60) as client:
        result = await client.call_tool("ground", {"image": str(image_dir / "dark.png")})
    assert not result.is_error, result.content[0].text
    assert result.structured_content["boxes"][0]["label"] == "Lesion"
    assert _overlay_size(result) == (200, 100)


async def test_http_with_the_token_serves_and_without_it_answers_401(http_server, image_dir):
    async with http_server("--auth-token", TOKEN) as url:
        wrong = [
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": f"Basic {TOKEN}"},
        ]
        for headers in wrong:
            denied = httpx.post(url, json={}, headers=headers, timeout=10)
            assert denied.status_code == 401
            assert "bearer token" in denied.json()["error"]
            assert denied.headers["www-authenticate"].startswith("Bearer")
        with pytest.raises(Exception):  # noqa: B017 - the SDK's error type varies by phase
            async with _client(url) as client:
                await client.list_tools()
        async with _client(url, TOKEN) as client:
            tools = await client.list_tools()
            result = await client.call_tool("ground", {"image": str(image_dir / "dark.png")})
            follow = await client.call_tool(
                "vqa", {"image": result.structured_content["result_uri"], "question": "Big?"}
            )
    assert len(model_tools(tools.tools)) == 9
    assert not result.is_error and _overlay_size(result) == (200, 100)
    assert not follow.is_error


async def test_http_refuses_foreign_host_headers_and_oversized_bodies(http_server):
    async with http_server("--max-request-bytes", "20000") as url:
        foreign = httpx.post(url, json={}, headers={"Host": "evil.example.com"}, timeout=10)
        assert foreign.status_code == 421
        arguments = {"image": "x" * 30000, "question": "?"}
        huge = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "vqa", "arguments": arguments},
        }
        too_big = httpx.post(
            url,
            content=json.dumps(huge),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=10,
        )
        assert too_big.status_code == 413
        assert "over this server's limit of 20000 bytes" in too_big.json()["error"]
        async with _client(url) as client:  # loopback: no token needed; still serving
            assert len(model_tools((await client.list_tools()).tools)) == len(TOOL_NAMES)


async def test_http_stateless_mode_serves_independent_requests(http_server, image_dir):
    async with http_server("--stateless") as url:
        for _ in range(2):
            async with _client(url) as client:
                result = await client.call_tool("detect", {"image": str(image_dir / "dark.png")})
                assert not result.is_error, result.content[0].text
                assert result.structured_content["counts"] == {"Lesion": 1}


def test_binding_a_public_address_without_a_token_exits_with_a_clear_error():
    env = {k: v for k, v in os.environ.items() if k != "MEDMO_AUTH_TOKEN"}
    done = subprocess.run(
        _serve_cmd("--http", "--host", "0.0.0.0", "--backend", "scripted"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 1
    assert "bearer token is required" in done.stderr
    assert "MEDMO_AUTH_TOKEN" in done.stderr
