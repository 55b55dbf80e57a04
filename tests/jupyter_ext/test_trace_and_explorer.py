"""TraceViewer filling in live, CaseExplorer buttons, and rich HTML of results and traces."""

from __future__ import annotations

import threading

from jupyter_ext.explorer import CaseExplorer
from jupyter_ext.trace_viewer import TraceViewer
from medmo_agent.agent.trace import Trace
from medmo_agent.tasks.results import GroundingResult, ReportResult, VQAResult
from medmo_agent.types import Box


def _grounding(handle=None):
    box = Box.from_pixels("nodule", (10, 10, 50, 60), (256, 200))
    return GroundingResult(raw_text="nodule: [10, 10, 50, 60]", boxes=[box], found=True)


def _add_grounding_result(trace, **extra):
    trace.add(
        "tool_result",
        tool="ground",
        result=_grounding().model_dump(),
        result_type="GroundingResult",
        boxes=_grounding().boxes,
        **extra,
    )


def test_trace_viewer_adds_steps_as_the_trace_records_them():
    trace = Trace(question="Is there a nodule?", image="x.png")
    viewer = TraceViewer(title=trace.question)
    viewer.follow(trace)
    trace.add("tool_call", tool="ground", arguments={"image": "x.png", "targets": ["nodule"]})
    assert len(viewer.step_widgets) == 1
    assert "1. Tool call — ground" in viewer.step_widgets[0].get_title(0)
    # steps recorded from another thread (as the run does) land too
    worker = threading.Thread(
        target=lambda: trace.add(
            "tool_result",
            tool="ground",
            result=_grounding().model_dump(),
            result_type="GroundingResult",
            boxes=_grounding().boxes,
            seconds=1.5,
        )
    )
    worker.start()
    worker.join()
    assert viewer.step_widgets[1].get_title(0) == "2. Result — ground · 1 box(es) · 1.50 s"
    assert "Running" in viewer.status.value
    trace.finish("A nodule in the right upper lobe.")
    viewer.finish(trace)
    assert "A nodule in the right upper lobe." in viewer.conclusion.value
    assert "3 steps" in viewer.status.value


def test_opening_a_step_shows_its_arguments_and_result():
    trace = Trace(question="q")
    trace.add("tool_call", tool="ground", arguments={"targets": ["nodule"]})
    _add_grounding_result(trace)
    viewer = TraceViewer(trace)
    assert all(w.children[0].value == "" for w in viewer.step_widgets)  # built when opened
    viewer.expand_all()
    assert "&quot;nodule&quot;" in viewer.step_widgets[0].children[0].value
    assert "10, 10, 50, 60" in viewer.step_widgets[1].children[0].value


def test_trace_displays_name_images_by_label_unless_paths_are_asked_for(
    chest_png, tmp_path, monkeypatch
):
    from medmo_agent.privacy import path_label

    monkeypatch.delenv("MEDMO_INCLUDE_PATHS", raising=False)
    patient_dir = tmp_path / "Jane_Doe_1961"
    patient_dir.mkdir()
    image = patient_dir / "chest.png"
    image.write_bytes(chest_png.read_bytes())
    trace = Trace(question="Is there a nodule?", image=str(image))
    trace.add("tool_call", tool="ground", arguments={"image": str(image), "targets": ["nodule"]})
    _add_grounding_result(trace, image=str(image), text=f"Grounded nodule in {image}")
    trace.finish(f"A nodule; see {image}.")
    label = path_label(str(image))

    page = trace._repr_html_()
    assert "Jane_Doe" not in page and label in page

    loaded: list[str] = []

    def load(handle):
        loaded.append(handle)
        from medmo_agent.imaging.loader import load_image

        return load_image(handle)

    viewer = TraceViewer(trace, load_image=load)
    viewer.expand_all()
    bodies = [w.children[0].value for w in viewer.step_widgets] + [viewer.conclusion.value]
    assert not any("Jane_Doe" in body for body in bodies)
    assert label in bodies[0] and label in bodies[-1]  # the arguments and the conclusion
    assert loaded == [str(image)]  # the overlay is still drawn from the real file
    assert "<img" in bodies[1]

    shown = TraceViewer(trace, load_image=load, include_paths=True)
    shown.expand_all()
    assert str(image) in shown.step_widgets[0].children[0].value
    monkeypatch.setenv("MEDMO_INCLUDE_PATHS", "1")
    assert str(image) in trace._repr_html_()


def test_a_failed_run_shows_its_error_in_red():
    viewer = TraceViewer(Trace(question="q"))
    viewer.finish(error=RuntimeError("planner crashed"))
    assert "medmo-error" in viewer.status.value and "planner crashed" in viewer.status.value


def test_case_explorer_runs_tasks_with_buttons_and_shows_results_beside_the_image(
    chest_png, scripted_session
):
    explorer = CaseExplorer(str(chest_png))
    assert explorer.viewer is not None and not explorer.buttons["ground"].disabled
    explorer.targets.value = "nodule, effusion"
    explorer.buttons["ground"].click()
    result = explorer.wait(30)
    assert result.targets == ["nodule", "effusion"]
    assert len(explorer.viewer.canvas.boxes) == 3  # boxes land on the image shown
    assert not explorer.buttons["ask"].disabled
    explorer.question.value = "Is there a nodule?"
    explorer.buttons["ask"].click()
    assert explorer.wait(30).answer == "yes"
    assert len(explorer.result_box.children) == 2
    assert "Is there a nodule?" in explorer.result_box.children[0].value  # newest first
    assert scripted_session.loaded  # the same model served both


def test_case_explorer_reports_a_bad_path_in_red_and_keeps_working(chest_png, scripted_session):
    explorer = CaseExplorer()
    assert explorer.buttons["ask"].disabled
    explorer.path.value = "/no/such/image.png"
    explorer.open_button.click()
    assert "medmo-error" in explorer.status.value and "/no/such/image.png" in explorer.status.value
    explorer.path.value = str(chest_png)
    explorer.open_button.click()
    assert explorer.viewer is not None and explorer.status.value == ""


def test_case_explorer_file_chooser_lists_images_and_opens_one(chest_png, scripted_session):
    explorer = CaseExplorer(folder=chest_png.parent)
    explorer.browse_button.value = True
    labels = [label for label, _ in explorer.chooser.options]
    assert "🖼 chest.png" in labels
    explorer.chooser.value = str(chest_png)
    assert explorer.viewer is not None and explorer.path.value == str(chest_png)


def test_results_and_traces_render_as_html_without_widgets(chest_png):
    vqa = VQAResult(raw_text="yes", question="Effusion?", answer="yes")
    assert "<b>Q:</b> Effusion?" in vqa._repr_html_()
    report = ReportResult(raw_text="x", report="x", findings="Clear lungs.", impression="Normal.")
    html = report._repr_html_()
    assert "Clear lungs." in html and "Impression" in html
    grounding = _grounding()
    assert "<table" in grounding._repr_html_() and "nodule" in grounding._repr_html_()
    trace = Trace(question="Is <b> escaped?")
    trace.add("tool_call", tool="vqa", arguments={"question": "x"})
    trace.finish("Done.")
    page = trace._repr_html_()
    assert "Is &lt;b&gt; escaped?" in page and "medmo-conclusion" in page
    assert "<html" not in page  # a fragment, safe inside a notebook
