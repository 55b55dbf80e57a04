"""ImageViewer state and callbacks: boxes, toggles, hover/click details, windowing, slices."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jupyter_ext.viewer import ImageViewer
from medmo_agent.imaging import apply_window, load_image
from medmo_agent.types import Box


def _boxes(size, spacing=None):
    return [
        Box.from_pixels("nodule", (10, 12, 40, 44), size, spacing),
        Box.from_pixels("effusion", (50, 20, 90, 60), size, spacing),
    ]


@pytest.fixture
def ct_path():
    from pydicom import examples

    return str(examples.get_path("ct"))


@pytest.fixture
def mri_path():
    import nibabel.testing

    return os.path.join(nibabel.testing.data_path, "anatomical.nii")


def test_boxes_are_drawn_colour_coded_and_each_finding_can_be_toggled(chest_png, scripted_session):
    viewer = ImageViewer(str(chest_png), _boxes((256, 200)))
    drawn = viewer.canvas.boxes
    assert [b["label"] for b in drawn] == ["nodule", "effusion"]
    assert drawn[0]["color"] != drawn[1]["color"]
    assert all(b["visible"] for b in drawn)
    assert [t.description for t in viewer.finding_toggles] == ["1. nodule", "2. effusion"]
    viewer.finding_toggles[0].value = False
    assert [b["visible"] for b in viewer.canvas.boxes] == [False, True]
    assert [b.label for b in viewer.visible_boxes] == ["effusion"]


def test_clicking_a_box_shows_its_label_and_pixel_coordinates(chest_png, scripted_session):
    viewer = ImageViewer(str(chest_png), _boxes((256, 200)))
    assert "Box" not in viewer.info.value
    viewer.canvas.selected = 1  # what the browser sets on click
    assert "effusion: x 50–90, y 20–60 px (40 × 40 px)" in viewer.info.value
    viewer.canvas.selected = -1
    viewer.canvas.hovered = 0
    assert "nodule: x 10–40" in viewer.info.value


def test_zooming_in_from_fit_enlarges_a_small_image(ct_path, scripted_session):
    # a 128 px CT slice is fitted to 520 px (about 4 screen px per image px): zooming in
    # must go beyond that, not back to 1:1
    viewer = ImageViewer(ct_path, max_height=520)
    viewer.zoom_in_button.click()
    assert viewer.canvas.zoom == pytest.approx(520 / 128 * 1.25)


def test_zoom_fit_and_export_change_the_canvas(chest_png, scripted_session, tmp_path):
    viewer = ImageViewer(str(chest_png), _boxes((256, 200)))
    assert viewer.canvas.zoom == 0
    viewer.zoom_in_button.click()
    assert viewer.canvas.zoom > 0
    zoomed = viewer.canvas.zoom
    viewer.zoom_out_button.click()
    assert viewer.canvas.zoom < zoomed
    viewer.fit_button.click()
    assert viewer.canvas.zoom == 0
    viewer.export_button.click()
    assert viewer.canvas.export_count == 1
    assert viewer.canvas.export_name == "chest-boxes.png"
    png = viewer.to_png(tmp_path / "out.png")
    assert png.startswith(b"\x89PNG") and (tmp_path / "out.png").read_bytes() == png


def test_a_ct_slice_is_rewindowed_from_its_hounsfield_units(ct_path, scripted_session):
    ct = load_image(ct_path)
    spacing = ct.meta.pixel_spacing
    viewer = ImageViewer(ct, _boxes(ct.size, spacing))
    assert viewer.window_box.layout.display != "none"
    assert viewer.slice_box.layout.display == "none"  # one slice only
    options = list(viewer.window_preset.options)
    assert any(o.startswith("lung (1500/-600)") for o in options)
    before = viewer.canvas.image_src
    viewer.window_preset.value = next(o for o in options if o.startswith("bone"))
    assert viewer.window == (2000.0, 500.0)
    assert viewer.canvas.image_src != before
    # the rendering equals the library's window applied to the raw values
    from PIL import Image

    shown = np.asarray(Image.open(__import__("io").BytesIO(viewer.to_png())).convert("L"))
    expected = apply_window(ct.raw, 2000, 500)
    unboxed = np.ones_like(expected, dtype=bool)
    unboxed[:70, :100] = False  # skip the drawn boxes and labels
    assert np.array_equal(shown[unboxed], expected[unboxed])
    viewer.window_width.value = 400
    assert viewer.window_preset.value == "custom" and viewer.window == (400, 500)


def test_box_sizes_are_given_in_mm_when_the_spacing_is_known(ct_path, scripted_session):
    ct = load_image(ct_path)
    row, col = ct.meta.pixel_spacing
    viewer = ImageViewer(ct, _boxes(ct.size, ct.meta.pixel_spacing))
    viewer.canvas.selected = 0
    assert f"{30 * col:.1f} × {32 * row:.1f} mm" in viewer.info.value


def test_the_slice_slider_changes_the_slice_and_boxes_stay_on_their_slice(
    mri_path, scripted_session
):
    mri = load_image(mri_path)
    viewer = ImageViewer(mri, _boxes(mri.size))
    assert viewer.slice_box.layout.display != "none"
    assert viewer.slice_slider.max == mri.meta.num_slices - 1
    assert viewer.slice_slider.value == mri.meta.slice
    before = viewer.canvas.image_src
    viewer.slice_slider.value = 3
    assert viewer.image.meta.slice == 3
    assert viewer.canvas.image_src != before
    assert not any(b["visible"] for b in viewer.canvas.boxes)
    assert "found on slice" in viewer.status.value
    viewer.slice_slider.value = mri.meta.slice
    assert all(b["visible"] for b in viewer.canvas.boxes)


def test_a_failed_reload_shows_in_red_and_keeps_the_image(mri_path, scripted_session):
    def broken(*_a, **_k):
        raise OSError("disk gone")

    viewer = ImageViewer(load_image(mri_path), [], loader=broken)
    before = viewer.canvas.image_src
    viewer.slice_slider.value = 2
    assert "medmo-error" in viewer.status.value and "disk gone" in viewer.status.value
    assert viewer.canvas.image_src == before


def test_from_result_reloads_the_image_by_its_handle(shell, chest_png):
    panel = shell.run_line_magic("medmo", f"ground {chest_png} --wait")
    viewer = ImageViewer.from_result(panel.result)
    assert len(viewer.canvas.boxes) == 3
    assert "3 box(es)" in viewer.title.value
