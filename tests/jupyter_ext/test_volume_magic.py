"""A whole-study sweep in the notebook, end to end: ``%medmo ground_volume`` (and ``ground``
or ``detect`` with ``--slices``) runs the real volume task on a DICOM series and shows it
in a VolumeViewer; a volume step of a trace opens as a VolumeViewer in the TraceViewer.

The model is the scripted backend that boxes the bright pixels of each slice shown, so the
findings are the phantom's sphere: slices 5-11, key slice 8.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import pytest
from IPython.core.error import UsageError
from langchain_core.messages import ToolMessage

from jupyter_ext.panels import TaskPanel
from jupyter_ext.trace_viewer import TraceViewer
from jupyter_ext.volume_viewer import VolumeViewer
from medmo_agent.agent.middleware import record_tool_message
from medmo_agent.agent.trace import Trace
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return write_dicom_series(Phantom(), tmp_path / "study")


@pytest.fixture
def lesion_session(scripted_session, monkeypatch):
    """The kernel's session, its model the scripted one that boxes the lesion."""
    backend = ScriptedBackend(responder=lesion_reply)
    monkeypatch.setattr(scripted_session, "_local_backend", lambda: backend)
    return scripted_session


def _shown_finding(panel: TaskPanel) -> None:
    assert panel.error is None, panel.error
    viewer = panel.viewer
    assert isinstance(viewer, VolumeViewer)
    (finding,) = viewer.sweep.findings
    assert (finding.slice_range, finding.key_slice) == ((5, 11), 8)
    # it opens on the key slice, with the finding's box drawn there
    assert viewer.image.meta.slice == 8
    assert [b["label"] for b in viewer.canvas.boxes] == ["nodule #1"]
    assert "medmo-findings-table" in viewer.table.value
    # the result card beside it lists the finding in mm
    assert "<td>16.0 × 16.0 × 17.5 mm</td>" in panel.result_html.value


def test_the_ground_volume_magic_shows_the_sweep_in_a_volume_viewer(shell, lesion_session, study):
    panel = shell.run_line_magic("medmo", f"ground_volume {study} nodule --wait")
    assert isinstance(panel, TaskPanel)
    assert panel.result.task == "ground_volume" and panel.result.slices == list(range(24))
    _shown_finding(panel)


def test_ground_with_slices_sweeps_the_chosen_slices(shell, lesion_session, study):
    panel = shell.run_line_magic("medmo", f"ground {study} nodule --slices 4:14 --wait")
    assert panel.result.task == "ground_volume" and panel.result.slices == list(range(4, 14))
    assert panel.result.targets == ["nodule"]
    _shown_finding(panel)


def test_detect_with_slices_sweeps_in_detect_mode(shell, lesion_session, study):
    panel = shell.run_line_magic("medmo", f"detect {study} nodule --slices ::1 --wait")
    assert (panel.result.mode, panel.result.targets) == ("detect", ["nodule"])
    _shown_finding(panel)


def test_slices_with_a_task_that_reads_one_image_is_a_usage_error(shell, lesion_session, study):
    with pytest.raises(UsageError, match="--slices sweeps a volume"):
        shell.run_line_magic("medmo", f"vqa {study} Any nodule? --slices all")


def test_a_volume_step_of_a_trace_opens_as_a_volume_viewer(lesion_session, study):
    result = lesion_session.toolkit.ground_volume(str(study), ["nodule"])
    trace = Trace(question="Any nodule?", image=str(study))
    call = {"name": "ground_volume", "args": {"image": str(study)}, "id": "c1"}
    message = ToolMessage(content=result.summary(), tool_call_id="c1", artifact=result)
    record_tool_message(trace, call, message, 0.5)

    viewer = TraceViewer(trace)
    (row,) = viewer.step_widgets
    assert "1 finding(s) in 3D" in row.get_title(0)
    row.selected_index = 0  # opened by the user
    (box,) = row.children
    assert isinstance(box, widgets.VBox)
    volume, body = box.children
    assert isinstance(volume, VolumeViewer) and volume.sweep.findings[0].key_slice == 8
    assert "medmo-volume-findings" in body.value and "medmo-volume-overview" in body.value


def test_a_volume_step_whose_study_is_gone_still_shows_its_findings(lesion_session, study):
    result = lesion_session.toolkit.ground_volume(str(study), ["nodule"])
    trace = Trace(question="Any nodule?")
    call = {"name": "ground_volume", "args": {}, "id": "c1"}
    message = ToolMessage(content=result.summary(), tool_call_id="c1", artifact=result)
    record_tool_message(trace, call, message, 0.5)
    for path in study.iterdir():
        path.unlink()

    viewer = TraceViewer(trace)
    (row,) = viewer.step_widgets
    row.selected_index = 0
    (body,) = row.children
    assert isinstance(body, widgets.HTML)
    assert "<td>5–11</td>" in body.value and "medmo-volume-overview" not in body.value


def test_the_real_model_sweeps_a_series_through_the_magic(tiny_settings, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_ext.session import MedmoSession, reset_session

    small = write_dicom_series(Phantom(shape=(6, 32, 32)), tmp_path / "small")
    reset_session(MedmoSession(tiny_settings))
    try:
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jupyter_ext")
        panel = shell.run_line_magic(
            "medmo", f"ground {small} nodule --slices 1:5 --max-new-tokens 6 --wait"
        )
        assert panel.error is None, panel.error
        result = panel.result
        assert (result.task, result.model) == ("ground_volume", tiny_settings.model)
        assert [e.slice for e in result.per_slice] == [1, 2, 3, 4]
        assert all(e.error is None for e in result.per_slice)
        assert result.usage.completion_tokens > 0
        assert isinstance(panel.viewer, VolumeViewer)
        assert panel.viewer.sweep.shape == (6, 32, 32)
        assert panel.viewer.canvas.image_src.startswith("data:image/png;base64,")
    finally:
        reset_session()


def test_a_sweep_result_names_its_study_for_the_viewer(lesion_session, study):
    result = lesion_session.toolkit.ground_volume(str(study), ["nodule"])
    viewer = VolumeViewer(result)  # no volume given: the result's image handle is the study
    assert viewer.sweep.handle == result.image.handle
    assert viewer.image.meta.slice == 8 and viewer.image.meta.num_slices == 24
