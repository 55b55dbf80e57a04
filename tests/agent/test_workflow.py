"""DiagnosticWorkflow: the fixed review, in-process and against the MCP server."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from medmo_agent.agent.trace import result_model
from medmo_agent.agent.workflow import DEFAULT_STEPS, DiagnosticWorkflow, StepContext
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.errors import InputError
from medmo_agent.tasks.results import GroundingResult, ReasoningResult
from medmo_agent.toolkit import Toolkit

SCRIPT = [
    "Chest X-ray, PA view",
    "Nodule <box>[[60, 20, 80, 40]]</box>",
    "yes",
    "Nodule",
    "Findings: round opacity. Impression: pulmonary nodule.",
    "<think>Well defined.</think><answer>Likely granuloma; differential: carcinoma.</answer>",
]


def scripted_workflow(**kwargs) -> tuple[DiagnosticWorkflow, ScriptedBackend]:
    backend = ScriptedBackend(SCRIPT)
    return DiagnosticWorkflow(toolkit=Toolkit(backend=backend), **kwargs), backend


def test_the_default_review_runs_every_step_in_order_and_concludes(chest_png: Path):
    wf, _backend = scripted_workflow()
    trace = wf.run(str(chest_png), "Cause of cough?", context={"age": 67, "sex": "M"})
    calls = [(s.workflow_step, s.tool) for s in trace.steps if s.kind == "tool_call"]
    assert calls == [
        ("identify", "vqa"),
        ("localize", "ground"),
        ("verify", "vqa"),
        ("classify", "classify"),
        ("report", "report"),
        ("impression", "reason"),
    ]
    box = next(s for s in trace.steps if s.tool == "ground" and s.kind == "tool_result").boxes[0]
    where = f"[{box.x1:.0f}, {box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f}]"
    verify_call, verify_result = [s for s in trace.steps if s.workflow_step == "verify"]
    assert f"Nodule in the region {where}" in verify_call.arguments["question"]
    assert [b.label for b in verify_result.boxes] == ["Nodule"]  # the finding checked
    assert verify_result.result["yes_no"] is True
    report_call = next(s for s in trace.steps if s.workflow_step == "report")
    assert report_call.arguments["context"] == "age: 67, sex: M"
    reason_call = next(s for s in trace.steps if s.tool == "reason")
    assert f"Finding: Nodule at {where} (confirmed)" in reason_call.arguments["context"]
    assert "Cause of cough?" in reason_call.arguments["question"]
    assert trace.conclusion.startswith("Likely granuloma; differential: carcinoma.")
    assert "Confirmed findings: Nodule." in trace.conclusion
    assert trace.final.kind == "final" and trace.stopped is None
    assert trace.mode == "workflow" and trace.question == "Cause of cough?"


def test_steps_can_be_skipped_reordered_and_added(chest_png: Path):
    wf, _backend = scripted_workflow(steps=["classify", "identify"])
    seen = {}

    def measure(step: StepContext) -> dict:
        seen.update(step.results)
        step.note("custom step ran")
        return {"ok": True}

    wf.add_step("measure", measure, after="classify")
    assert wf.steps == ["classify", "measure", "identify"]
    wf.skip("identify")
    trace = wf.run(str(chest_png))
    assert [s.workflow_step for s in trace.steps if s.kind != "final"] == [
        "classify",
        "classify",
        "measure",
    ]
    assert "classify" in seen
    with pytest.raises(InputError, match="Unknown workflow step"):
        wf.set_steps(["nope"])


def test_a_failed_step_is_recorded_and_the_review_goes_on(tmp_path: Path):
    wf, _ = scripted_workflow(steps=["identify", "classify"])
    trace = wf.run(str(tmp_path / "missing.png"))
    results = trace.tool_steps
    assert [r.status for r in results] == ["error", "error"]
    assert results[0].error["error"] == "ImageLoadError"
    assert trace.final is not None and "No conclusion" in trace.conclusion


def test_the_time_limit_stops_the_review_and_keeps_the_partial_trace(chest_png: Path):
    wf, _ = scripted_workflow(time_limit_s=1e-9)
    trace = wf.run(str(chest_png))
    assert trace.stopped == "time_limit"
    assert [s.kind for s in trace.steps] == ["final"]


def test_cancelling_the_review_stops_it_before_the_next_step_and_keeps_the_steps(
    chest_png: Path,
):
    wf, _ = scripted_workflow()
    stop = threading.Event()

    def on_step(step) -> None:
        if step.kind == "tool_result":
            stop.set()

    trace = wf.run(str(chest_png), on_step=on_step, cancel=stop)
    assert trace.stopped == "cancelled"
    assert [(s.kind, s.workflow_step) for s in trace.steps] == [
        ("tool_call", "identify"),
        ("tool_result", "identify"),
        ("final", None),
    ]
    assert trace.conclusion.startswith("Stopped: the run was cancelled")


def test_the_review_on_the_tiny_checkpoint_runs_end_to_end_in_process(tiny_toolkit, chest_png):
    wf = DiagnosticWorkflow(toolkit=tiny_toolkit)
    steps = list(wf.iter_steps(str(chest_png), "Any nodule?", context={"sex": "F"}))
    assert steps[-1].kind == "final"
    called = [s.workflow_step for s in steps if s.kind == "tool_call"]
    assert called[0] == "identify" and called[-1] == "impression"
    assert {"identify", "localize", "classify", "report", "impression"} <= set(called)
    ground = next(s for s in steps if s.kind == "tool_result" and s.tool == "ground")
    assert ground.status == "ok" and isinstance(result_model(ground), GroundingResult)
    reason = next(s for s in steps if s.kind == "tool_result" and s.tool == "reason")
    assert isinstance(result_model(reason), ReasoningResult)
    assert all(s.completion_tokens > 0 for s in steps if s.kind == "tool_result")


@pytest.mark.slow
async def test_the_review_runs_against_the_mcp_server_as_a_subprocess(tiny_checkpoint, chest_png):
    from medmo_agent.agent.mcp import describe_target, mcp_tools

    command = (
        f"{sys.executable} -m mcp_server --model {tiny_checkpoint} --device cpu --dtype float32 "
        f"--max-new-tokens 16 --allow-dir {chest_png.parent}"
    )
    async with mcp_tools(command) as tools:
        assert {"vqa", "ground", "classify", "report", "reason"} <= {t.name for t in tools}
        wf = DiagnosticWorkflow(tools, tools_source=describe_target(command))
        trace = await wf.arun(str(chest_png), "Any nodule?")
        denied = await DiagnosticWorkflow(tools, steps=["identify"]).arun("/etc/hostname")
    assert trace.tools_source.startswith("mcp:stdio:python")
    results = trace.tool_steps
    assert results[0].workflow_step == "identify"
    assert results[0].status == "ok" and result_model(results[0]).task == "vqa"
    assert results[0].result["usage"]["completion_tokens"] > 0  # structured output kept
    # The random model may write no readable boxes: the server says so, the review goes on.
    ground = results[1]
    assert ground.workflow_step == "localize"
    if ground.status == "ok":
        assert isinstance(result_model(ground), GroundingResult)
    else:
        assert ground.error["error"] == "UnreadableAnswerError"
    assert [r.workflow_step for r in results][-3:] == ["classify", "report", "impression"]
    assert trace.final.kind == "final" and trace.final is trace.steps[-1]
    assert denied.tool_steps[0].status == "error"  # outside --allow-dir: an observation


def test_default_steps_are_the_documented_review():
    assert DEFAULT_STEPS == ("identify", "localize", "verify", "classify", "report", "impression")


async def test_async_step_stream_yields_the_same_steps_as_the_sync_iterator(chest_png):
    wf, _ = scripted_workflow()
    seen: list[str] = []
    sync_steps = [(s.kind, s.workflow_step) for s in wf.iter_steps(str(chest_png), "Nodule?")]
    wf2, _ = scripted_workflow()
    async_steps = [
        (s.kind, s.workflow_step)
        async for s in wf2.astream_steps(
            str(chest_png), "Nodule?", on_step=lambda s: seen.append(s.kind)
        )
    ]
    assert async_steps == sync_steps
    assert seen == [kind for kind, _ in async_steps]  # the caller's callback sees each step
    assert async_steps[-1][0] == "final"
