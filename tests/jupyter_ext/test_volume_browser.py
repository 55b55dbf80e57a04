"""In a browser: the volume viewer in real JupyterLab 4, driven by Debian's chromium.

A notebook written here makes a NIfTI volume with a bright ellipsoid and shows a volume
sweep result for it (built by hand in the agreed shape, see ``synthetic_sweep``). The test
checks what a user sees: the lesion's box drawn on the right pixels of its key slice and
over the bright ellipsoid, a click on a finding moving the slider to its key slice and
highlighting its box, unticking a finding hiding its boxes on every slice, and the table
giving extents in mm. Screenshots are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import synthetic_sweep as synth
import test_browser
from test_browser import ARTIFACTS, TOKEN, _cell_with, _open_and_run

# the same JupyterLab server and browser page as the image viewer's browser test
lab = test_browser.lab
page = test_browser.page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
NOTEBOOK = "volume_viewer.ipynb"
CELLS = [
    "%load_ext jupyter_ext",
    f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport synthetic_sweep\n\n"
    "VOLUME = str(synthetic_sweep.write_volume('ellipsoid.nii.gz'))\n"
    "RESULT = synthetic_sweep.sweep_result()",
    "from jupyter_ext import VolumeViewer\n\n"
    "volume_viewer = VolumeViewer(RESULT, VOLUME)\nvolume_viewer",
]

# Where each visible box lies in the image's own pixels, and the image's value there.
_GEOMETRY = """canvas => {
  const img = canvas.querySelector('img.medmo-image');
  const ir = img.getBoundingClientRect();
  const scale = img.naturalWidth / ir.width;
  const paint = document.createElement('canvas');
  paint.width = img.naturalWidth;
  paint.height = img.naturalHeight;
  const ctx = paint.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const grey = (x, y) => ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data[0];
  return [...canvas.querySelectorAll('.medmo-box')].map(box => {
    const r = box.getBoundingClientRect();
    const xyxy = [(r.left - ir.left) * scale, (r.top - ir.top) * scale,
                  (r.right - ir.left) * scale, (r.bottom - ir.top) * scale];
    return {xyxy, selected: box.classList.contains('medmo-selected'),
            centre: grey((xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2),
            corner: grey(1, 1)};
  });
}"""


#: The magic on a DICOM series, answered by a model that boxes the phantom's sphere.
MAGIC_NOTEBOOK = "volume_magic.ipynb"
MAGIC_CELLS = [
    "%load_ext jupyter_ext",
    "from pathlib import Path\n"
    "from jupyter_ext import get_session\n"
    "from medmo_agent.backends.scripted import ScriptedBackend\n"
    "from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series\n"
    "from medmo_agent.toolkit import Toolkit\n\n"
    "STUDY = str(write_dicom_series(Phantom(), Path('study')))\n"
    "session = get_session()\n"
    "session._toolkit = Toolkit(\n"
    "    ScriptedBackend(responder=lesion_reply), session.settings, session.resolver\n"
    ")",
    "%medmo ground_volume $STUDY nodule",
]


def _write_notebook(lab: str, name: str = NOTEBOOK, sources: list[str] = CELLS) -> None:
    """Put a notebook in the server's folder through its contents API."""
    cells = [
        {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
        for src in sources
    ]
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    request = urllib.request.Request(
        f"{lab}/api/contents/{name}",
        data=json.dumps({"type": "notebook", "format": "json", "content": notebook}).encode(),
        method="PUT",
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)


def _wait_key(page, canvas, index: int) -> None:
    page.wait_for_function(
        f"el => el.dataset.imageKey.endsWith('#{index}')", arg=canvas.element_handle()
    )
    image = canvas.locator("img.medmo-image")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )


def _screenshot(page, cell, name: str) -> None:
    # a window tall enough for the whole cell (below the notebook's scroll area an element
    # screenshot shows only grey)
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": 1800})
    try:
        cell.scroll_into_view_if_needed()
        cell.screenshot(path=str(ARTIFACTS / name))
    finally:
        page.set_viewport_size(viewport)


def test_the_volume_viewer_places_each_findings_boxes_and_jumps_to_key_slices(page, lab):
    result = synth.sweep_result()
    lesion, nodule = result["findings"]
    key = lesion["key_slice"]
    _write_notebook(lab)
    _open_and_run(page, lab, NOTEBOOK)
    cell = _cell_with(page, "volume_viewer = VolumeViewer(RESULT, VOLUME)")
    canvas = cell.locator(".medmo-canvas").first
    canvas.wait_for(timeout=90_000)
    _wait_key(page, canvas, key)
    readout = cell.locator(".widget-slider", has_text="Slice").first.locator(".widget-readout")
    assert readout.inner_text().strip() == str(key)

    # the lesion's box, on the pixels the result gives, over the bright ellipsoid
    assert canvas.locator(".medmo-tag").all_inner_texts() == ["lesion #1"]
    (drawn,) = canvas.evaluate(_GEOMETRY)
    expected = next(b["box"] for b in lesion["boxes"] if b["slice"] == key)
    assert drawn["xyxy"] == pytest.approx(expected, abs=0.3)
    assert drawn["centre"] > 200 and drawn["corner"] < 30
    # the table gives each finding's extents in mm, and flags the isolated one
    table = cell.locator("table.medmo-findings-table")
    extent = table.locator("tr[data-finding='1'] td.medmo-extent").inner_text()
    assert extent == " × ".join(f"{v:.1f}" for v in lesion["extent_mm"]) + " mm"
    assert table.locator("tr[data-finding='2'] .medmo-isolated").is_visible()
    assert not table.locator("tr[data-finding='1'] .medmo-isolated").count()
    assert cell.locator(".medmo-finding-isolated .medmo-isolated").is_visible()
    _screenshot(page, cell, "volume-viewer-key-slice.png")

    # a click on the isolated finding: its key slice, its box highlighted
    cell.locator(".medmo-finding-go").nth(1).click()
    _wait_key(page, canvas, nodule["key_slice"])
    assert readout.inner_text().strip() == str(nodule["key_slice"])
    assert canvas.locator(".medmo-tag").all_inner_texts() == ["nodule #2 (isolated)"]
    (drawn,) = canvas.evaluate(_GEOMETRY)
    assert drawn["selected"] and drawn["xyxy"] == pytest.approx(nodule["boxes"][0]["box"], abs=0.3)
    _screenshot(page, cell, "volume-viewer-isolated-finding.png")

    # and back to the lesion, highlighted on its key slice
    cell.locator(".medmo-finding-go").nth(0).click()
    _wait_key(page, canvas, key)
    (drawn,) = canvas.evaluate(_GEOMETRY)
    assert drawn["selected"]

    # unticking the lesion hides its boxes on every slice of it
    cell.locator(".medmo-finding").nth(0).locator(".widget-checkbox input").click()
    page.wait_for_function("el => el.dataset.visibleBoxes === '0'", arg=canvas.element_handle())
    assert "hidden" in table.locator("tr[data-finding='1']").inner_text()
    handle = cell.locator(".widget-slider", has_text="Slice").first.locator(".noUi-handle").first
    handle.focus()
    for _ in range(4):
        handle.press("ArrowLeft")
    _wait_key(page, canvas, key - 4)
    assert canvas.get_attribute("data-visible-boxes") == "0"
    _screenshot(page, cell, "volume-viewer-finding-hidden.png")
    # ticked again, its box on this slice is back
    cell.locator(".medmo-finding").nth(0).locator(".widget-checkbox input").click()
    page.wait_for_function("el => el.dataset.visibleBoxes === '1'", arg=canvas.element_handle())
    (drawn,) = canvas.evaluate(_GEOMETRY)
    expected = next(b["box"] for b in lesion["boxes"] if b["slice"] == key - 4)
    assert drawn["xyxy"] == pytest.approx(expected, abs=0.3)


def test_the_volume_magic_shows_a_whole_study_sweep_in_the_volume_viewer(page, lab):
    _write_notebook(lab, MAGIC_NOTEBOOK, MAGIC_CELLS)
    _open_and_run(page, lab, MAGIC_NOTEBOOK)
    cell = _cell_with(page, "%medmo ground_volume $STUDY nodule")
    canvas = cell.locator(".medmo-canvas").first
    canvas.wait_for(timeout=90_000)
    # the phantom's sphere: one finding on slices 5-11, shown first on its key slice
    _wait_key(page, canvas, 8)
    readout = cell.locator(".widget-slider", has_text="Slice").first.locator(".widget-readout")
    assert readout.inner_text().strip() == "8"
    assert canvas.locator(".medmo-tag").all_inner_texts() == ["nodule #1"]
    (drawn,) = canvas.evaluate(_GEOMETRY)
    assert drawn["centre"] > 200 and drawn["corner"] < 100
    table = cell.locator("table.medmo-findings-table")
    extent = table.locator("tr[data-finding='1'] td.medmo-extent").inner_text()
    assert extent == "16.0 × 16.0 × 17.5 mm"
    # the result card beside the viewer gives the same finding
    assert "16.0 × 16.0 × 17.5 mm" in cell.locator("table.medmo-volume-findings").inner_text()
    _screenshot(page, cell, "volume-magic-sweep.png")
