"""Progress notifications from the real transformers backend, over the real transports.

The transformers backend streams text from its own batching thread, not from the thread
the request handed the call to; these tests run ``python -m mcp_server`` on the tiny
checkpoint as a subprocess and count the notifications an SDK client receives over stdio
and over streamable HTTP. (The scripted backend's progress is checked in-process in
test_mcp_tools.py.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from servers import free_port, post_answers, start_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ENV = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TRANSFORMERS_VERBOSITY": "error"}
#: Enough tokens that the random model emits many pieces of text; one notification is sent
#: per 8 pieces (the server's default ``progress_every_tokens``).
MAX_NEW_TOKENS = 64
EVERY = 8


def _model_args(checkpoint: Path) -> list[str]:
    return [
        *("--model", str(checkpoint), "--device", "cpu", "--dtype", "float32"),
        *("--max-new-tokens", str(MAX_NEW_TOKENS)),
    ]


async def _report_with_progress(client: Client, image: str):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await client.call_tool(
        "report",
        {"image": image, "max_new_tokens": MAX_NEW_TOKENS},
        progress_callback=on_progress,
    )
    return result, seen


def _assert_progress(result, seen) -> None:
    assert not result.is_error, result.content[0].text
    assert result.structured_content["backend"] == "transformers"
    assert result.structured_content["usage"]["completion_tokens"] == MAX_NEW_TOKENS
    assert len(seen) > 0, "no progress notification reached the client"
    values = [progress for progress, _, _ in seen]
    assert values == sorted(set(values)), f"progress must increase monotonically: {values}"
    assert values == [EVERY * (i + 1) for i in range(len(values))], values
    assert all(total == MAX_NEW_TOKENS for _, total, _ in seen), seen
    assert seen[-1][2] == f"{int(values[-1])} tokens generated"


async def test_progress_reaches_a_stdio_client_from_the_transformers_backend(
    tiny_checkpoint, image_dir
):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", *_model_args(tiny_checkpoint)],
        env={**os.environ, **ENV},
        cwd=str(image_dir),  # over stdio the working directory is the allowed folder
    )
    async with Client(params, read_timeout_seconds=120) as client:
        first = await _report_with_progress(client, "dark.png")
        # a second call on the same server gets its own notifications as well
        second = await _report_with_progress(client, "sub/small.png")
    _assert_progress(*first)
    _assert_progress(*second)


async def test_progress_reaches_an_http_client_from_the_transformers_backend(
    tiny_checkpoint, image_dir
):
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    cmd = [sys.executable, "-m", "mcp_server", "--http", "--port", str(port)]
    cmd += [*_model_args(tiny_checkpoint), "--allow-dir", str(image_dir)]
    with start_process(cmd, ready_check=lambda: post_answers(url), env=ENV, cwd=REPO) as proc:
        http = create_mcp_http_client()
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result, seen = await _report_with_progress(client, str(image_dir / "dark.png"))
        log = proc.log_text(tail=200_000)
        assert proc.alive(), log
    _assert_progress(result, seen)
    assert "Traceback" not in log and "ERROR" not in log, log
