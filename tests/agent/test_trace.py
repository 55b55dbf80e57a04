"""Traces: data, privacy, persistence, live events and rendering."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from medmo_agent.agent.trace import Trace, result_model
from medmo_agent.tasks.results import GroundingResult
from medmo_agent.types import Box


def sample(image: str) -> Trace:
    trace = Trace(question="Any nodule?", image=image, context={"age": 60})
    box = Box.from_pixels("nodule", (50, 20, 70, 40), (96, 64))
    result = GroundingResult(raw_text="nodule <box>..</box>", found=True, boxes=[box])
    trace.add("tool_call", tool="ground", call_id="c1", arguments={"image": image})
    trace.add(
        "tool_result",
        tool="ground",
        call_id="c1",
        text="1 box",
        result=result.model_dump(mode="json"),
        result_type="GroundingResult",
        boxes=[box],
        image=image,
        seconds=0.5,
        prompt_tokens=100,
        completion_tokens=12,
    )
    trace.finish("A nodule. For research use only.")
    return trace


def test_a_trace_round_trips_through_json_files(tmp_path: Path):
    trace = sample("chest.png")
    loaded = Trace.load(trace.save(tmp_path / "t.json", include_paths=True))
    assert loaded.model_dump() == trace.model_dump()
    assert isinstance(result_model(loaded.steps[1]), GroundingResult)
    assert loaded.tokens == (100, 12)
    assert [s.number for s in loaded.steps] == [1, 2, 3]


def test_inline_image_arguments_are_stored_as_a_digest_never_as_pixels(chest_png: Path):
    uri = "data:image/png;base64," + base64.b64encode(chest_png.read_bytes()).decode()
    trace = Trace()
    step = trace.add("tool_call", tool="vqa", arguments={"image": uri, "question": "q"})
    assert step.arguments["image"].startswith("<inline image sha256:")
    assert "base64" not in trace.to_json()


def test_listeners_see_each_step_and_a_failing_listener_does_not_stop_the_run():
    trace = Trace()
    seen = []
    trace.on_step(lambda s: 1 / 0)
    trace.on_step(seen.append)
    trace.add("thought", text="hmm")
    trace.finish("done")
    assert [s.kind for s in seen] == ["thought", "final"]


def test_markdown_shows_arguments_boxes_and_the_conclusion():
    md = sample("chest.png").to_markdown(include_paths=True)
    assert "## 1. Tool call — `ground`" in md
    assert '"image": "chest.png"' in md
    assert "- nodule: [50, 20, 70, 40]" in md
    assert "A nodule. For research use only." in md
    assert "For research use only; not for clinical decisions." in md


def test_html_embeds_a_small_overlay_png_when_the_image_loads(chest_png: Path):
    page = sample(str(chest_png)).to_html()
    assert page.count("data:image/png;base64,") == 1
    png = base64.b64decode(page.split("data:image/png;base64,")[1].split("'")[0])
    assert png.startswith(b"\x89PNG")
    assert "nodule: [50, 20, 70, 40]" in page


def test_html_without_the_image_still_lists_the_boxes(tmp_path: Path):
    page = sample(str(tmp_path / "gone.png")).to_html()
    assert "data:image/png" not in page and "nodule: [50, 20, 70, 40]" in page


def test_importing_the_package_and_the_agent_cli_does_not_import_langchain():
    code = (
        "import sys, medmo_agent, medmo_agent.agent, medmo_agent.agent.cli;"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('langchain', 'langchain_core',"
        " 'langgraph', 'torch', 'transformers')]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_agent_modules_declare_exactly_what_they_export():
    import importlib

    for name in [
        "",
        ".agent",
        ".chat_model",
        ".cli",
        ".mcp",
        ".tool_calls",
        ".tools",
        ".trace",
        ".workflow",
        ".render",
        ".middleware",
        ".prompts",
        ".convert",
    ]:
        mod = importlib.import_module("medmo_agent.agent" + name)
        assert len(mod.__all__) == len(set(mod.__all__))
        for attr in mod.__all__:
            assert getattr(mod, attr) is not None, f"{mod.__name__} lacks {attr}"


def test_a_missing_image_in_a_trace_is_named_by_its_label_by_default(tmp_path: Path, monkeypatch):
    from medmo_agent.privacy import path_label

    monkeypatch.delenv("MEDMO_INCLUDE_PATHS", raising=False)
    gone = str(tmp_path / "Jane_Doe_1961" / "gone.png")
    trace = sample(gone)
    trace.add("tool_result", tool="vqa", status="error", text=f"No such file: {gone}")
    for text in (trace.to_json(), trace.to_markdown(), trace.to_html()):
        assert "Jane_Doe_1961" not in text and path_label(gone) in text
    monkeypatch.setenv("MEDMO_INCLUDE_PATHS", "1")
    assert f"No such file: {gone}" in trace.to_json()
    assert trace.image == gone, "the trace in memory keeps the path"


def test_a_workflow_trace_on_the_tiny_checkpoint_shows_paths_only_when_asked(
    tiny_toolkit, tmp_path: Path
):
    from PIL import Image

    from medmo_agent.agent.workflow import DiagnosticWorkflow
    from medmo_agent.privacy import path_label

    folder = tmp_path / "Jane_Doe_1961"
    folder.mkdir()
    png = folder / "chest.png"
    Image.new("L", (96, 64), 40).save(png)
    trace = DiagnosticWorkflow(toolkit=tiny_toolkit).run(str(png), "Any nodule?")
    assert any(s.result for s in trace.steps if s.kind == "tool_result")
    hidden = [
        trace.to_json(include_paths=False),
        trace.to_markdown(include_paths=False),
        trace.to_html(include_paths=False),
    ]
    for text in hidden:
        assert "Jane_Doe_1961" not in text and str(png) not in text
        assert path_label(str(png)) in text
    assert str(png) in trace.to_json(include_paths=True)
    assert str(png) in trace.to_html(include_paths=True)
    saved = Trace.load(trace.save(tmp_path / "t.json", include_paths=False))
    assert saved.steps[-1].kind == "final" and str(folder) not in saved.model_dump_json()
