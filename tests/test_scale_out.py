"""The README's scale-out recipe, end to end: an OpenAI-compatible model server (here
``transformers serve`` on the tiny checkpoint, standing in for ``vllm serve``) with the MCP
server, a case review and the CLI all pointed at it through the ``openai`` backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from PIL import Image
from servers import free_port, start_process, transformers_serve

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_server(tiny_checkpoint: Path):
    """The model server: OpenAI chat completions on a free loopback port."""
    base_url, ctx = transformers_serve(tiny_checkpoint)
    with ctx:
        yield base_url


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png"):
        Image.fromarray((rng.random((200, 240)) * 255).astype("uint8")).save(folder / name)
    return folder


def _env(model_server: str, checkpoint: Path) -> dict[str, str]:
    return dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        MEDMO_BACKEND="openai",
        MEDMO_BASE_URL=model_server,
        MEDMO_MODEL=str(checkpoint),  # the name the server knows its model by
        MEDMO_MAX_NEW_TOKENS="8",
    )


async def test_a_stateless_mcp_server_answers_through_the_model_server(
    model_server, tiny_checkpoint, scans
):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mcp_server",
        "--http",
        "--stateless",
        "--port",
        str(port),
        "--backend",
        "openai",
        "--base-url",
        model_server,
        "--model",
        str(tiny_checkpoint),
        "--allow-dir",
        str(scans),
    ]
    url = f"http://127.0.0.1:{port}/mcp"

    def up() -> bool:
        try:
            return httpx.post(url, content=b"{}", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    env = _env(model_server, tiny_checkpoint)
    with start_process(cmd, ready_check=up, env=env, cwd=REPO, timeout=90) as proc:
        async with Client(streamable_http_client(url), read_timeout_seconds=120) as client:
            result = await client.call_tool(
                "vqa", {"image": str(scans / "a.png"), "question": "Is there an effusion?"}
            )
            assert not result.is_error, result.content
            assert result.structured_content["backend"] == "openai"
            assert result.structured_content["usage"]["completion_tokens"] >= 1
            qa = await client.call_tool("text_qa", {"question": "What does CT stand for?"})
            assert not qa.is_error, qa.content
        assert proc.alive(), proc.log_text()


def test_a_case_review_runs_against_the_model_server(
    model_server, tiny_checkpoint, scans, tmp_path
):
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n"
        f"  - id: one\n    images: [{{path: {scans / 'a.png'}}}]\n"
        "    questions: ['Any abnormality?']\n"
        f"  - id: two\n    images: [{{path: {scans / 'b.png'}}}]\n"
        "    questions: ['Any abnormality?']\n"
    )
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medmo_agent.cli",
            "review",
            str(cases),
            "--out",
            str(out),
            "--steps",
            "vqa,report",
            "--workers",
            "2",
            "--no-progress",
        ],
        env=_env(model_server, tiny_checkpoint),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["one", "two"]
    assert all(r["status"] == "ok" for r in records)
    assert all(r["provenance"]["backend"] == "openai" for r in records)


def test_the_cli_asks_the_model_server(model_server, tiny_checkpoint, scans):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medmo_agent.cli",
            "ask",
            str(scans / "a.png"),
            "Is there a fracture?",
            "--json",
        ],
        env=_env(model_server, tiny_checkpoint),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["backend"] == "openai"
    assert result["model"] == str(tiny_checkpoint)
