"""In a browser: real JupyterLab 4 driven by Debian's chromium through Playwright.

The kernel answers from a scripted backend (``MEDMO_BACKEND=scripted`` plus a replies file),
so the number of boxes and of trace steps is known. The test opens the clinical-images and
agent-trace notebooks, runs them, and checks what a user sees: the image with the right
number of boxes, the slice slider changing the slice, and the trace listing every step.
Screenshots are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from browsers import ARTIFACTS, chromium_page, require_chromium
from servers import free_port

from medmo_agent.testing import scripted_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "medmo-browser-test"
# coordinates inside CT_small (128 x 128), in the 256 x 256 space the model sees it in
REPLIES = {
    "bounding box": "nodule: [40, 60, 120, 140]\neffusion: [140, 40, 220, 120]\n"
    "nodule: [20, 160, 80, 220]",
    "*": "yes",
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free loopback port, serving a copy of the notebooks."""
    require_chromium()
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    replies = work / "replies.json"
    replies.write_text(json.dumps(REPLIES))
    _quiet_lab_settings(work / "config")
    port = free_port()
    env = {
        **os.environ,
        "MEDMO_BACKEND": "scripted",
        "MEDMO_MODEL": "scripted-medmo",
        **scripted_env(rules=replies),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "JUPYTER_CONFIG_DIR": str(work / "config"),
    }
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={work / 'notebooks'}",
        f"--LabApp.workspaces_dir={work / 'workspaces'}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    # the server logs its URL once it accepts connections: read until then
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if f"127.0.0.1:{port}/lab" in line:
            break
    else:
        pytest.fail("JupyterLab did not start:\n" + "".join(seen[-30:]))
    # keep draining the log so the server never blocks on a full pipe
    threading.Thread(target=seen.extend, args=(proc.stderr,), daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def _quiet_lab_settings(config_dir: Path) -> None:
    """User settings that keep JupyterLab's "get notified about official Jupyter news?"
    toast from covering the page (and screenshots): news fetching is answered "Never"
    up front, so the announcements plugin neither asks nor fetches."""
    folder = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    settings = {"fetchNews": "false", "checkForUpdates": False}
    (folder / "notification.jupyterlab-settings").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def page(lab):
    with chromium_page(1400, 1000) as page:
        yield page


def _open_and_run(page, lab: str, name: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{lab}/lab/tree/{name}?token={TOKEN}")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    with contextlib.suppress(PlaywrightTimeout):  # JupyterLab may ask which kernel to start
        page.locator(".jp-Dialog").get_by_role("button", name="Select").click(timeout=10_000)
    page.locator(
        ".jp-Notebook-ExecutionIndicator[data-status='idle'] >> visible=true"
    ).first.wait_for(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile("^Run All Cells")).click()


def _cell_with(page, text: str):
    return page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=text))


def test_the_viewer_shows_the_image_with_its_boxes_and_the_slider_changes_the_slice(page, lab):
    _open_and_run(page, lab, "02_clinical_images.ipynb")
    ground = _cell_with(page, "%medmo ground $CT lung")
    canvas = ground.locator(".medmo-canvas").first
    canvas.wait_for(timeout=90_000)
    image = canvas.locator("img.medmo-image")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert image.evaluate("img => img.naturalWidth") == 128
    boxes = canvas.locator(".medmo-box")
    assert boxes.count() == 3
    assert canvas.locator(".medmo-tag").all_inner_texts() == ["nodule", "effusion", "nodule"]
    boxes.nth(1).hover()
    tip = canvas.locator(".medmo-tip")
    assert tip.is_visible() and "effusion" in tip.inner_text() and "mm" in tip.inner_text()
    ground.scroll_into_view_if_needed()
    ground.screenshot(path=str(ARTIFACTS / "viewer-ct-boxes.png"))

    # untick one finding: one box fewer
    ground.locator(".widget-checkbox input").first.click()
    page.wait_for_function(
        "el => el.querySelectorAll('.medmo-box').length === 2", arg=canvas.element_handle()
    )

    volume = _cell_with(page, "mri_viewer = ImageViewer(MRI)")
    mri = volume.locator(".medmo-canvas").first
    mri.wait_for(timeout=60_000)
    before = mri.get_attribute("data-image-key")
    assert before.endswith("#12")  # the middle of 25 slices
    slider = volume.locator(".widget-slider", has_text="Slice").first
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    handle.press("ArrowRight")
    # each key press commits a value; the image follows to slice 14
    page.wait_for_function("el => el.dataset.imageKey.endsWith('#14')", arg=mri.element_handle())
    assert mri.get_attribute("data-image-key") != before
    assert slider.locator(".widget-readout").inner_text().strip() == "14"
    volume.screenshot(path=str(ARTIFACTS / "viewer-nifti-slice.png"))


def test_the_trace_viewer_lists_every_step_and_highlights_the_conclusion(page, lab):
    expected = _expected_workflow_steps()
    _open_and_run(page, lab, "03_agent_trace.ipynb")
    cell = _cell_with(page, "%%medmo agent data/chest.png --workflow")
    conclusion = cell.locator(".medmo-conclusion")
    conclusion.wait_for(timeout=120_000)
    steps = cell.locator(".medmo-step")
    assert steps.count() == len(expected)
    headers = cell.locator(".medmo-step .jupyter-widget-Collapse-header")
    titles = [t.strip() for t in headers.all_inner_texts()]
    for title, (number, tool) in zip(titles, expected, strict=True):
        assert title.startswith(f"{number}.") and tool in title
    # open the grounding result: its image with boxes is drawn in the step
    ground_result = steps.filter(has_text="Result — ground").first
    ground_result.locator(".jupyter-widget-Collapse-header").first.click()
    ground_result.locator("img").first.wait_for(timeout=30_000)
    assert "Confirmed findings" in conclusion.inner_text()
    # a window tall enough for the whole cell: below the notebook's own scroll area an
    # element screenshot shows only grey
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": 2600})
    try:
        cell.scroll_into_view_if_needed()
        cell.screenshot(path=str(ARTIFACTS / "trace-viewer.png"))
    finally:
        page.set_viewport_size(viewport)


def _expected_workflow_steps() -> list[tuple[int, str]]:
    """Run the same workflow headless on the same script: the steps the browser must list."""
    from medmo_agent.agent.workflow import DiagnosticWorkflow
    from medmo_agent.config import Settings
    from medmo_agent.testing.scripted import scripted_backend
    from medmo_agent.toolkit import Toolkit

    settings = Settings(backend="scripted", model="scripted-medmo")
    replies = ARTIFACTS / "replies.json"
    replies.write_text(json.dumps(REPLIES))
    backend = scripted_backend(settings, scripted_env(rules=replies))
    trace = DiagnosticWorkflow(toolkit=Toolkit(backend, settings)).run(
        str(ROOT / "notebooks" / "data" / "chest.png"), "What is the most likely diagnosis?"
    )
    return [(s.number, s.tool or "") for s in trace.steps if s.kind != "final"]
