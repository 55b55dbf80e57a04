"""An independent client: the official MCP Inspector CLI (TypeScript SDK) lists the tools
of ``medmo serve`` and calls them, over stdio and over streamable HTTP with a token.

The Inspector is pinned in tests/mcp_server/inspector/package.json; install it with
``npm ci --prefix tests/mcp_server/inspector``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image
from servers import free_port, start_process

from mcp_server.tools import TOOL_NAMES
from medmo_agent.testing import SCRIPTED_REPLY_ENV, scripted_env

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
INSPECTOR = HERE / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
BOX_REPLY = "Lesion <box>[[20, 10, 90, 60]]</box>"
TOKEN = "inspector-token-0123456789abcdef"


@pytest.fixture(scope="module")
def inspector() -> Path:
    if not INSPECTOR.exists():
        pytest.skip("MCP Inspector not installed: run `npm ci --prefix tests/mcp_server/inspector`")
    return INSPECTOR


#: An stdio client starts the server with a minimal environment of its own, so the switch
#: that makes the scripted test double selectable is passed explicitly.
TEST_DOUBLES = ("-e", "MEDMO_TEST_DOUBLES=1")


def _medmo() -> list[str]:
    script = Path(sys.executable).with_name("medmo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "medmo_agent.cli"]


def _inspect(inspector: Path, tmp_path: Path, *args: str) -> dict:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MCP_CATALOG_PATH": str(tmp_path / "catalog.json"),
    }
    done = subprocess.run(
        [str(inspector), "--cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def test_inspector_lists_the_tools_of_medmo_serve_over_stdio(inspector, image_dir, tmp_path):
    serve = [*_medmo(), "serve", "--backend", "scripted", "--allow-dir", str(image_dir)]
    listed = _inspect(inspector, tmp_path, *TEST_DOUBLES, *serve, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    # the viewer's render tool is for MCP App views only: hosts keep it from the model
    assert tools.pop("viewer_render")["_meta"]["ui"]["visibility"] == ["app"]
    assert tools["ground"]["_meta"]["ui"]["resourceUri"] == "ui://medmo/viewer.html"
    assert set(tools) == set(TOOL_NAMES)
    for tool in tools.values():
        assert tool["annotations"]["readOnlyHint"] is True
        assert tool["annotations"]["openWorldHint"] is False
        assert tool["outputSchema"]["type"] == "object"
    assert "image" in tools["ground"]["inputSchema"]["required"]


def test_inspector_calls_ground_over_stdio_and_gets_boxes_and_an_overlay(
    inspector, image_dir, tmp_path
):
    serve = [
        *_medmo(),
        "serve",
        *("--backend", "scripted"),
        *("--allow-dir", str(image_dir)),
    ]
    result = _inspect(
        inspector,
        tmp_path,
        *TEST_DOUBLES,
        *("-e", f"{SCRIPTED_REPLY_ENV}={BOX_REPLY}"),
        *serve,
        *("--method", "tools/call", "--tool-name", "ground"),
        *("--tool-arg", f"image={image_dir / 'dark.png'}"),
    )
    assert not result.get("isError")
    assert result["structuredContent"]["boxes"][0]["label"] == "Lesion"
    (image,) = [c for c in result["content"] if c["type"] == "image"]
    assert image["mimeType"] == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(image["data"]))).size == (200, 100)


def test_inspector_calls_vqa_over_http_with_the_bearer_token(inspector, image_dir, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    cmd = [
        *_medmo(),
        "serve",
        *("--http", "--port", str(port), "--auth-token", TOKEN),
        *("--backend", "scripted"),
        *("--allow-dir", str(image_dir)),
    ]

    def ready() -> bool:
        try:
            return httpx.post(url, content=b"{}", timeout=2).status_code == 401
        except httpx.HTTPError:
            return False

    with start_process(
        cmd, ready_check=ready, env={"HF_HUB_OFFLINE": "1", **scripted_env("yes")}, cwd=REPO
    ):
        result = _inspect(
            inspector,
            tmp_path,
            url,
            *("--transport", "http", "--header", f"Authorization: Bearer {TOKEN}"),
            *("--method", "tools/call", "--tool-name", "vqa"),
            *("--tool-arg", f"image={image_dir / 'dark.png'}", "question=Is it dark?"),
        )
    assert not result.get("isError")
    assert result["structuredContent"]["yes_no"] is True
    assert result["structuredContent"]["answer"].lower() == "yes"
