"""The diagnostic workflow on a volume: sweep every slice, verify each 3D finding on its
key slice, then report on that slice with the 3D findings as context."""

from __future__ import annotations

from medmo_agent.agent.workflow import VOLUME_STEPS, DiagnosticWorkflow
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series
from medmo_agent.toolkit import Toolkit


def _reply(request) -> str:
    text = request.messages[-1].text
    if "Detect" in text:
        return lesion_reply(request)
    if "Answer yes or no" in text:
        return "yes"
    if "report" in text.lower() and "diagnosis" not in text:
        return "Findings: round lesion. Impression: nodule."
    return "<answer>Likely a benign nodule.</answer>"


def test_a_series_is_swept_then_each_finding_verified_on_its_key_slice_then_reported(
    tmp_path,
):
    folder = write_dicom_series(Phantom(), tmp_path / "study")
    backend = ScriptedBackend(responder=_reply)
    wf = DiagnosticWorkflow(toolkit=Toolkit(backend=backend))
    trace = wf.run(str(folder), "Is there a nodule?")
    calls = [(s.workflow_step, s.tool) for s in trace.steps if s.kind == "tool_call"]
    assert calls == [
        ("sweep", "ground_volume"),
        ("verify", "vqa"),
        ("study_report", "report"),
        ("impression", "reason"),
    ]
    verify_call = next(s for s in trace.steps if s.workflow_step == "verify")
    assert verify_call.arguments["slice"] == 8  # the key slice of the one finding
    verify_request = next(r for r in backend.requests if "Answer yes or no" in r.messages[-1].text)
    assert verify_request.images[0].meta.slice == 8
    report_call = next(s for s in trace.steps if s.workflow_step == "study_report")
    assert report_call.arguments["slice"] == 8
    assert (
        "nodule: slices 5-11, key slice 8, 16 x 16 x 18 mm (confirmed)"
        in (report_call.arguments["context"])
    )
    reason_call = next(s for s in trace.steps if s.tool == "reason")
    assert "on slice 8 (confirmed)" in reason_call.arguments["context"]
    assert "Confirmed findings: nodule." in trace.conclusion
    assert trace.planner == "workflow:" + ",".join(VOLUME_STEPS)


def test_chosen_steps_are_kept_for_a_volume_and_volume_false_reads_one_image(tmp_path):
    folder = write_dicom_series(Phantom(), tmp_path / "study")
    wf = DiagnosticWorkflow(toolkit=Toolkit(backend=ScriptedBackend(responder=_reply)))
    trace = wf.run(str(folder), volume=False)
    calls = [s.workflow_step for s in trace.steps if s.kind == "tool_call"]
    assert calls[:2] == ["identify", "localize"]
    wf2 = DiagnosticWorkflow(
        toolkit=Toolkit(backend=ScriptedBackend(responder=_reply)), steps=["sweep"]
    )
    trace2 = wf2.run(str(folder))
    assert [s.workflow_step for s in trace2.steps if s.kind == "tool_call"] == ["sweep"]


def test_a_review_step_sweeps_the_cases_volume_with_the_cases_targets(tmp_path):
    from medmo_agent.review.cases import Case
    from medmo_agent.review.steps import CaseRun, parse_task_steps, run_task_steps

    folder = write_dicom_series(Phantom(), tmp_path / "study")
    kit = Toolkit(backend=ScriptedBackend(responder=lesion_reply))
    case = Case.model_validate({"id": "c1", "image": str(folder), "targets": ["nodule"]})
    run = CaseRun(case=case, toolkit=kit, images=[kit.load(str(folder))])
    run_task_steps(parse_task_steps("ground_volume"), run)
    (record,) = run.records
    assert record.status == "ok" and record.task == "ground_volume"
    assert record.inputs["targets"] == ["nodule"]
    (finding,) = record.result["findings"]
    assert finding["slice_range"] == [5, 11] and finding["label"] == "nodule"
    assert record.result["slices"] == list(range(24))
