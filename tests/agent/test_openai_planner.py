"""An OpenAI-compatible planner for real: ``ChatOpenAI`` (in the library and behind
``medmo agent --planner openai``) against ``transformers serve`` on the tiny checkpoint,
with the tools in-process on the same checkpoint.

The random tiny model emits no tool calls, so each run is one planner turn whose text is
the conclusion; what is checked is that the request really went to the server (with the
tools offered, under the checkpoint's name, capped in length) and the trace records it.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from servers import transformers_serve

from medmo_agent.agent.agent import create_medmo_agent
from medmo_agent.agent.tools import DEFAULT_TOOLS
from medmo_agent.agent.trace import Trace
from medmo_agent.cli import main

pytestmark = pytest.mark.slow

CHAT_POST = '"POST /v1/chat/completions HTTP/1.1" 200'


@pytest.fixture(scope="module")
def model_server(tiny_checkpoint: Path):
    """``transformers serve`` on the tiny checkpoint: its base URL and the process."""
    base_url, ctx = transformers_serve(tiny_checkpoint)
    with ctx as server:
        yield base_url, server


def _assert_one_planner_turn(trace: Trace, checkpoint: Path, cap: int) -> None:
    assert trace.planner == str(checkpoint)
    assert trace.tools_source == "in-process"
    assert trace.stopped is None
    assert [s.kind for s in trace.steps] == ["final"]
    final = trace.final
    assert final is not None and final.text.strip()
    assert trace.conclusion == final.text.strip()
    # the server's own usage: a prompt with the system prompt and tools, a capped reply
    assert final.prompt_tokens > 100
    assert 1 <= final.completion_tokens <= cap


def test_create_medmo_agent_plans_with_chat_openai_on_the_model_server(
    model_server, tiny_checkpoint, tiny_settings, chest_png
):
    from langchain_openai import ChatOpenAI

    base_url, server = model_server
    bodies: list[dict] = []

    def record(request: httpx.Request) -> None:
        bodies.append(json.loads(request.content))

    planner = ChatOpenAI(
        model=str(tiny_checkpoint),  # the one model the server is pinned to
        base_url=base_url,
        api_key="none",
        temperature=0,
        max_tokens=6,
        http_client=httpx.Client(event_hooks={"request": [record]}, timeout=120),
    )
    agent = create_medmo_agent(planner, settings=tiny_settings)
    posts_before = server.log_text(tail=10**6).count(CHAT_POST)

    trace = agent.run(str(chest_png), "Is there a nodule?")

    _assert_one_planner_turn(trace, tiny_checkpoint, cap=6)
    (body,) = bodies
    assert body["model"] == str(tiny_checkpoint)
    assert sorted(t["function"]["name"] for t in body["tools"]) == sorted(DEFAULT_TOOLS)
    assert body["messages"][0]["role"] == "system"
    assert f"Image: {chest_png}" in body["messages"][-1]["content"]
    assert server.log_text(tail=10**6).count(CHAT_POST) == posts_before + 1


def test_medmo_agent_with_an_openai_planner_runs_against_the_model_server(
    model_server, tiny_checkpoint, chest_png, tmp_path, capsys
):
    base_url, server = model_server
    out = tmp_path / "trace.json"
    posts_before = server.log_text(tail=10**6).count(CHAT_POST)

    code = main(
        [
            "agent",
            str(chest_png),
            "Any nodule?",
            *("--planner", "openai", "--planner-base-url", base_url),
            *("--planner-model", str(tiny_checkpoint)),
            *("--model", str(tiny_checkpoint), "--device", "cpu"),
            *("--max-new-tokens", "8", "--trace", str(out)),
        ]
    )

    captured = capsys.readouterr()
    assert code == 0, captured.err
    trace = Trace.load(out)
    _assert_one_planner_turn(trace, tiny_checkpoint, cap=8)
    assert captured.out.strip() == trace.conclusion
    assert f"trace written to {out}" in captured.err
    assert server.log_text(tail=10**6).count(CHAT_POST) == posts_before + 1
