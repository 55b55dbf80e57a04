"""The planning agent: a scripted planner drives the real tools; traces, failures, limits."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from medmo_agent.agent.agent import create_medmo_agent
from medmo_agent.agent.trace import Trace, result_model
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.tasks.results import GroundingResult, VQAResult
from medmo_agent.toolkit import Toolkit

from .conftest import ScriptedToolCaller


def call(name: str, args: dict, id_: str, text: str = "") -> AIMessage:
    return AIMessage(content=text, tool_calls=[{"name": name, "args": args, "id": id_}])


def test_a_scripted_planner_drives_the_real_tools_and_the_trace_records_each_step(
    tiny_toolkit, chest_png: Path
):
    image = str(chest_png)
    planner = ScriptedToolCaller(
        responses=[
            call(
                "vqa", {"image": image, "question": "What modality is this?"}, "c1", "Look first."
            ),
            call("ground", {"image": image}, "c2"),
            AIMessage(content="No acute finding. For research use only; not a clinical diagnosis."),
        ]
    )
    seen = []
    agent = create_medmo_agent(planner, toolkit=tiny_toolkit)
    trace = agent.run(image, "Any nodule?", context={"age": 61, "sex": "F"}, on_step=seen.append)

    assert [(s.number, s.kind, s.tool) for s in trace.steps] == [
        (1, "thought", None),
        (2, "tool_call", "vqa"),
        (3, "tool_result", "vqa"),
        (4, "tool_call", "ground"),
        (5, "tool_result", "ground"),
        (6, "final", None),
    ]
    assert seen == trace.steps  # streamed live, in order
    assert set(planner.offered) >= {"vqa", "ground", "report", "reason", "classify"}
    assert "viewer_render" not in planner.offered  # app-only: for MCP App views
    assert trace.steps[0].text == "Look first."
    assert trace.steps[1].arguments == {"image": image, "question": "What modality is this?"}
    vqa = result_model(trace.steps[2])
    assert isinstance(vqa, VQAResult) and vqa.question == "What modality is this?"
    assert trace.steps[2].call_id == trace.steps[1].call_id == "c1"
    assert trace.steps[2].completion_tokens > 0 and trace.steps[2].seconds > 0
    assert trace.steps[2].image == image
    ground = result_model(trace.steps[4])
    assert isinstance(ground, GroundingResult)
    assert trace.steps[4].boxes == ground.boxes
    assert trace.conclusion.startswith("No acute finding.")
    assert trace.stopped is None
    assert trace.context == {"age": 61, "sex": "F"} and trace.tools_source == "in-process"
    assert Trace.from_json(trace.to_json(include_paths=True)).steps == trace.steps


def scripted_toolkit(replies: list[str]) -> Toolkit:
    return Toolkit(backend=ScriptedBackend(replies))


def test_a_tool_error_returns_to_the_planner_as_an_observation_with_the_fix(chest_png: Path):
    planner = ScriptedToolCaller(
        responses=[
            call("ground", {"image": str(chest_png.parent / "missing.png")}, "c1"),
            call("ground", {"image": str(chest_png)}, "c2"),
            AIMessage(content="Nodule at the right."),
        ]
    )
    agent = create_medmo_agent(
        planner, toolkit=scripted_toolkit(["Nodule <box>[[10,10,40,40]]</box>"])
    )
    trace = agent.run(str(chest_png), "Any nodule?")
    failed = trace.steps[1]
    assert (failed.kind, failed.status) == ("tool_result", "error")
    assert failed.error["error"] == "ImageLoadError"
    assert "missing.png" in failed.text and "Fix:" in failed.text
    retried = trace.steps[3]
    assert retried.status == "ok" and [b.label for b in retried.boxes] == ["Nodule"]
    assert trace.conclusion == "Nodule at the right."


def test_a_call_to_an_unknown_tool_or_with_bad_arguments_is_an_observation(chest_png: Path):
    planner = ScriptedToolCaller(
        responses=[
            call("segment", {"image": str(chest_png)}, "c1"),
            call("vqa", {"image": str(chest_png)}, "c2"),  # no question
            AIMessage(content="Gave up."),
        ]
    )
    agent = create_medmo_agent(planner, toolkit=scripted_toolkit(["x"]))
    trace = agent.run(str(chest_png), "?")
    results = trace.tool_steps
    assert [r.status for r in results] == ["error", "error"]
    assert "segment" in results[0].text
    assert "question" in results[1].text
    assert trace.conclusion == "Gave up."


def test_an_unreadable_tool_call_is_retried_once_and_noted_in_the_trace(chest_png: Path):
    bad = AIMessage(
        content="",
        invalid_tool_calls=[
            {
                "name": None,
                "args": "{oops",
                "id": "b1",
                "error": "not valid JSON",
                "type": "invalid_tool_call",
            }
        ],
    )
    planner = ScriptedToolCaller(responses=[bad, AIMessage(content="Answer without tools.")])
    agent = create_medmo_agent(planner, toolkit=scripted_toolkit(["x"]))
    trace = agent.run(str(chest_png), "Anything?")
    assert [s.kind for s in trace.steps] == ["thought", "final"]
    assert trace.steps[0].status == "error" and "not valid JSON" in trace.steps[0].text
    assert trace.conclusion == "Answer without tools."


def test_the_step_limit_stops_a_runaway_loop_with_a_clear_message_and_keeps_the_trace(
    chest_png: Path,
):
    loop = [
        call("vqa", {"image": str(chest_png), "question": f"q{i}?"}, f"c{i}") for i in range(20)
    ]
    agent = create_medmo_agent(
        ScriptedToolCaller(responses=loop), toolkit=scripted_toolkit(["yes"]), max_steps=3
    )
    trace = agent.run(str(chest_png), "Loop?")
    assert trace.stopped == "step_limit"
    assert len(trace.tool_steps) == 3
    assert trace.final.text.startswith("Stopped: the step limit (3 planner turns)")
    assert "kept in the trace" in trace.conclusion


def test_the_time_limit_stops_the_run_with_a_clear_message(chest_png: Path):
    planner = ScriptedToolCaller(
        responses=[call("vqa", {"image": str(chest_png), "question": "q?"}, "c")]
    )
    agent = create_medmo_agent(planner, toolkit=scripted_toolkit(["yes"]), time_limit_s=1e-9)
    trace = agent.run(str(chest_png), "Slow?")
    assert trace.stopped == "time_limit"
    assert "time limit" in trace.conclusion and [s.kind for s in trace.steps] == ["final"]


def test_cancelling_a_run_stops_it_before_the_next_planner_turn_and_keeps_the_steps(
    chest_png: Path,
):
    loop = [call("vqa", {"image": str(chest_png), "question": f"q{i}?"}, f"c{i}") for i in range(5)]
    agent = create_medmo_agent(
        ScriptedToolCaller(responses=loop), toolkit=scripted_toolkit(["yes"])
    )
    stop = threading.Event()

    def on_step(step) -> None:
        if step.kind == "tool_result":
            stop.set()  # as a Stop button would, while the run goes

    trace = agent.run(str(chest_png), "Loop?", on_step=on_step, cancel=stop)
    assert trace.stopped == "cancelled"
    assert [s.kind for s in trace.steps] == ["tool_call", "tool_result", "final"]
    assert trace.final.status == "error"
    assert trace.conclusion.startswith("Stopped: the run was cancelled")


def test_chat_medmo_plans_by_default_and_its_qwen_calls_drive_the_tools(chest_png: Path):
    image = str(chest_png)

    def respond(request):
        system = request.messages[0].text if request.messages else ""
        if "# Tools" not in system:  # a tool's own prompt
            return "Chest X-ray"
        if "<tool_response>" in request.messages[-1].text:
            return "Frontal chest radiograph; no acute finding."
        args = json.dumps({"image": image, "question": "Modality?"})
        return f'Identify first.<tool_call>\n{{"name": "vqa", "arguments": {args}}}\n</tool_call>'

    agent = create_medmo_agent(toolkit=Toolkit(backend=ScriptedBackend(responder=respond)))
    trace = agent.run(image, "What is this?")
    assert [(s.kind, s.tool) for s in trace.steps] == [
        ("thought", None),
        ("tool_call", "vqa"),
        ("tool_result", "vqa"),
        ("final", None),
    ]
    assert trace.steps[2].result["answer"] == "Chest X-ray"
    assert trace.conclusion == "Frontal chest radiograph; no acute finding."
    assert trace.planner == "medmo:scripted"


def test_steps_can_be_consumed_as_an_iterator_while_the_run_goes(chest_png: Path):
    planner = ScriptedToolCaller(
        responses=[call("classify", {"image": str(chest_png)}, "c1"), AIMessage(content="Done.")]
    )
    agent = create_medmo_agent(planner, toolkit=scripted_toolkit(["Nodule"]))
    kinds = [s.kind for s in agent.iter_steps(str(chest_png), "Labels?")]
    assert kinds == ["tool_call", "tool_result", "final"]


def test_the_tiny_checkpoint_as_planner_ends_with_a_final_step_whatever_it_writes(
    tiny_toolkit, chest_png: Path
):
    agent = create_medmo_agent(toolkit=tiny_toolkit, max_steps=2)
    trace = agent.run(str(chest_png), "Any nodule?")
    assert trace.final is not None and trace.final is trace.steps[-1]
    assert trace.planner.startswith("medmo:")


@pytest.mark.slow
async def test_a_scripted_planner_drives_the_tools_of_an_mcp_server_over_http(
    tiny_checkpoint, chest_png: Path
):
    import sys

    import httpx
    from servers import free_port, start_process

    from medmo_agent.agent.mcp import describe_target, mcp_tools

    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    cmd = [
        sys.executable, "-m", "mcp_server", "--http", "--port", str(port),
        "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32",
        "--max-new-tokens", "12", "--allow-dir", str(chest_png.parent),
    ]  # fmt: skip

    def up() -> bool:
        try:
            return httpx.post(url, content=b"{}", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    image = str(chest_png)
    planner = ScriptedToolCaller(
        responses=[
            call("vqa", {"image": image, "question": "What modality is this?"}, "c1"),
            call("vqa", {"image": "/etc/hostname", "question": "What is this?"}, "c2"),
            AIMessage(content="Done. For research use only; not a clinical diagnosis."),
        ]
    )
    with start_process(cmd, ready_check=up, env={"HF_HUB_OFFLINE": "1"}, timeout=120) as server:
        async with mcp_tools(url) as tools:
            agent = create_medmo_agent(planner, tools, tools_source=describe_target(url))
            trace = await agent.arun(image, "What is this?")
        assert server.alive(), server.log_text()
    assert set(planner.offered) >= {"vqa", "ground", "report", "reason", "classify"}
    assert "viewer_render" not in planner.offered  # app-only: for MCP App views
    assert [(s.kind, s.tool, s.status) for s in trace.steps] == [
        ("tool_call", "vqa", "ok"),
        ("tool_result", "vqa", "ok"),
        ("tool_call", "vqa", "ok"),
        ("tool_result", "vqa", "error"),  # outside --allow-dir: an observation, not a crash
        ("final", None, "ok"),
    ]
    answered = result_model(trace.steps[1])
    assert isinstance(answered, VQAResult) and answered.question == "What modality is this?"
    assert trace.steps[1].result["usage"]["completion_tokens"] > 0
    assert trace.tools_source == f"mcp:{url}" and trace.stopped is None
