"""The diagnostic workflow and the agent as review steps (scripted model)."""

from __future__ import annotations

import json

from medmo_agent.review import run_review

from .conftest import ScriptedModel, write_cases, write_png


def test_the_default_steps_are_the_diagnostic_workflow_scored_on_its_reasoned_answer(
    tmp_path, scripted, scripted_settings
):
    write_png(tmp_path / "a.png")
    cases = write_cases(
        tmp_path / "c.yaml",
        [
            {
                "id": "c",
                "image": "a.png",
                "context": "67M, smoker",
                "questions": [{"question": "Most likely diagnosis?", "expected": "lung nodule"}],
                "expected_boxes": [{"label": "nodule", "x1": 40, "y1": 40, "x2": 100, "y2": 100}],
            }
        ],
    )
    result = run_review(cases, backend=scripted, out=tmp_path / "out", settings=scripted_settings)
    rec = result.records[0]
    assert rec.status == "ok", rec.error
    assert rec.provenance.steps == "workflow"
    tool_steps = [(s.step, s.task) for s in rec.steps if s.task not in ("load", "thought")]
    assert tool_steps == [
        ("identify", "vqa"),
        ("localize", "ground"),
        ("verify", "vqa"),
        ("classify", "classify"),
        ("report", "report"),
        ("impression", "reason"),
        ("workflow", "workflow"),
    ]
    assert rec.steps[-1].question_index == 0
    assert rec.agreement["answers"]["correct"] == 1
    assert rec.agreement["boxes"]["mean_iou"] == 1.0
    assert "Confirmed findings: nodule" in rec.outputs["conclusions"][0]["conclusion"]
    assert "Conclusion" in (tmp_path / "out" / "cases" / "c" / "report.md").read_text()


def test_a_failed_workflow_tool_call_fails_the_case_with_its_reason(tmp_path, scripted_settings):
    from medmo_agent.errors import BackendError

    def hook(request):
        if "radiology report" in request.messages[-1].text.lower():
            raise BackendError("Out of luck in the report step.")

    write_png(tmp_path / "a.png")
    cases = write_cases(tmp_path / "c.yaml", [{"id": "c", "image": "a.png"}])
    rec = run_review(cases, backend=ScriptedModel(hook), settings=scripted_settings).records[0]
    assert rec.status == "failed"
    assert "Out of luck" in rec.error["message"]
    assert any(s.step == "report" and s.status == "failed" for s in rec.steps)


def test_the_agent_answers_each_case_question_and_its_trace_is_recorded(
    tmp_path, scripted_settings
):
    calls = []

    def planner_or_tool(request):
        text = request.messages[-1].text
        calls.append(text)
        if len(calls) == 1:  # the planner's first turn: call a tool
            call = {
                "name": "vqa",
                "arguments": {"image": _handle(request), "question": "Is there a nodule?"},
            }
            return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"
        if "yes' or 'no'" in text.lower():
            return "yes"
        return "There is a nodule."

    backend = ScriptedModel()
    backend._responder = planner_or_tool
    write_png(tmp_path / "a.png")
    cases = write_cases(
        tmp_path / "c.yaml",
        [
            {
                "id": "c",
                "image": "a.png",
                "questions": [{"question": "Is there a nodule?", "expected": "There is a nodule"}],
            }
        ],
    )
    rec = run_review(cases, steps="agent", backend=backend, settings=scripted_settings).records[0]
    assert rec.status == "ok", rec.error
    tasks = [s.task for s in rec.steps]
    assert tasks[0] == "load" and tasks[-1] == "agent"
    (vqa,) = [s for s in rec.steps if s.task == "vqa"]
    assert vqa.status == "ok" and vqa.result["yes_no"] is True
    assert rec.outputs["answers"][0]["answer"].startswith("There is a nodule")
    assert rec.agreement["answers"]["correct"] == 1


def _handle(request) -> str:
    import re

    found = re.search(r"medmo://images/[0-9a-f]+", request.messages[-1].text)
    return found.group(0) if found else ""
