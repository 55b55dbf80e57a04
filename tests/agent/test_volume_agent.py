"""The agent on a CT series: it is offered the volume task, the sweep is a traced step with
its 3D findings, the planner reads a compact summary, and every trace rendering shows the
findings table and the overview strip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from medmo_agent.agent.agent import create_medmo_agent
from medmo_agent.agent.render import trace_html
from medmo_agent.agent.trace import Trace, result_model
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series
from medmo_agent.toolkit import Toolkit
from medmo_agent.volume.results import VolumeResult

from .conftest import ScriptedToolCaller

PHANTOM = Phantom()  # 24 slices; a 16 mm sphere on slices 5-11


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return write_dicom_series(PHANTOM, tmp_path / "patient-doe" / "study")


@pytest.fixture
def trace(study: Path) -> tuple[Trace, ScriptedToolCaller]:
    planner = ScriptedToolCaller(
        responses=[
            AIMessage(
                content="Sweep the whole study first.",
                tool_calls=[
                    {
                        "name": "ground_volume",
                        "args": {"image": str(study), "targets": ["nodule"]},
                        "id": "c1",
                    }
                ],
            ),
            AIMessage(content="One nodule of about 16 mm. For research use only."),
        ]
    )
    toolkit = Toolkit(backend=ScriptedBackend(responder=lesion_reply))
    agent = create_medmo_agent(planner, toolkit=toolkit)
    return agent.run(str(study), "Is there a nodule in this CT?"), planner


def test_the_planner_is_offered_the_volume_task_and_its_sweep_is_traced(trace, study):
    run, planner = trace
    assert "ground_volume" in planner.offered
    (step,) = run.tool_steps
    assert (step.tool, step.status, step.result_type) == ("ground_volume", "ok", "VolumeResult")
    (finding,) = step.result["findings"]
    assert finding["slice_range"] == [5, 11] and finding["key_slice"] == 8
    assert len(step.result["per_slice"]) == PHANTOM.shape[0]
    model = result_model(step)
    assert isinstance(model, VolumeResult) and model.findings[0].label == "nodule"
    assert run.conclusion.startswith("One nodule")


def test_the_planner_reads_the_findings_not_every_slice(trace, study):
    run, _ = trace
    (step,) = run.tool_steps
    text = step.text
    assert "#1 nodule: slices 5-11, key slice 8" in text
    assert "1 finding(s) over 24 of 24 axial slice(s)" in text
    # no per-slice answers: 24 slices would be 24 lines; a finding is one line
    assert not re.search(r"^slice \d+:", text, flags=re.M)
    assert len(text.splitlines()) <= 4, text
    # where the study is, so the planner can ask about a key slice next
    assert f"image: {step.image}" in text and step.image


def test_every_trace_rendering_shows_the_findings_and_the_overview(trace, study):
    run, _ = trace
    row = "| 1 | nodule | 5–11 | 8 | 16.0 × 16.0 × 17.5 mm |"
    markdown = run.to_markdown()
    assert row in markdown and "![key slices with boxes](data:image/png;base64," in markdown
    page = run.to_html()
    assert "medmo-volume-findings" in page and "<td>5–11</td>" in page
    assert "class='medmo-volume-overview'" in page and "data:image/png;base64," in page
    fragment = trace_html(run)  # the notebook display
    assert "medmo-volume-findings" in fragment and "<td>16.0 × 16.0 × 17.5 mm</td>" in fragment
    assert "1 finding(s) in 3D" in fragment
    # exported traces do not name the folders unless asked to
    for text in (markdown, page):
        assert "patient-doe" not in text
    assert "patient-doe" in run.to_html(include_paths=True)


def test_a_saved_trace_still_renders_its_volume_step(trace, tmp_path):
    run, _ = trace
    again = Trace.load(run.save(tmp_path / "trace.json"))
    (step,) = again.tool_steps
    assert isinstance(result_model(step), VolumeResult)
    # the saved trace names the study by a label: the table shows, the strip cannot be drawn
    assert "| 1 | nodule | 5–11 | 8 |" in again.to_markdown()
    assert "medmo-volume-findings" in again.to_html()


def test_a_sweep_from_an_mcp_server_renders_like_one_in_process(study):
    from langchain_core.messages import ToolMessage

    from medmo_agent.agent.middleware import record_tool_message

    result = Toolkit(backend=ScriptedBackend(responder=lesion_reply)).ground_volume(str(study))
    trace = Trace(question="Any nodule?")
    message = ToolMessage(
        content=result.summary(),
        tool_call_id="c1",
        artifact={"structured_content": result.to_dict()},  # what an MCP tool returns
    )
    record_tool_message(trace, {"name": "ground_volume", "args": {}, "id": "c1"}, message, 0.1)
    (step,) = trace.tool_steps
    assert step.result_type is None and isinstance(result_model(step), VolumeResult)
    assert "| 1 | nodule | 5–11 | 8 |" in trace.to_markdown()
    assert "class='medmo-volume-overview'" in trace.to_html()


def test_the_agents_sweep_runs_on_the_tiny_checkpoint(tmp_path, tiny_backend, tiny_settings):
    study = write_dicom_series(Phantom(shape=(4, 64, 64)), tmp_path / "study")
    call = {"name": "ground_volume", "args": {"image": str(study)}, "id": "c1"}
    planner = ScriptedToolCaller(
        responses=[AIMessage(content="", tool_calls=[call]), AIMessage(content="Done.")]
    )
    agent = create_medmo_agent(planner, toolkit=Toolkit(tiny_backend, tiny_settings))
    run = agent.run(str(study), "Is there a nodule?")
    (step,) = run.tool_steps
    assert (step.tool, step.status, step.result_type) == ("ground_volume", "ok", "VolumeResult")
    assert step.result["backend"] == "transformers"
    assert [e["slice"] for e in step.result["per_slice"]] == [0, 1, 2, 3]
