"""VolumeViewer state: each slice's boxes, the findings list and table, toggles, jumps.

The volume is a NIfTI with a bright ellipsoid (see ``synthetic_sweep``); the sweep result
is written by hand in the agreed JSON shape, so every expected box, slice and extent is
known.
"""

from __future__ import annotations

import numpy as np
import pytest
import synthetic_sweep as synth

from jupyter_ext.volume_viewer import VolumeViewer
from medmo_agent.errors import InputError, MedmoError

LESION, NODULE = 1, 2


@pytest.fixture
def volume(tmp_path):
    return str(synth.write_volume(tmp_path / "ellipsoid.nii.gz"))


@pytest.fixture
def result():
    return synth.sweep_result()


@pytest.fixture
def viewer(volume, result, scripted_session):
    return VolumeViewer(result, volume)


def _drawn(viewer):
    return [
        (b["label"], [b["x1"], b["y1"], b["x2"], b["y2"]], b["visible"])
        for b in viewer.canvas.boxes
    ]


def _box_on(result, finding_id, index):
    finding = result["findings"][finding_id - 1]
    return next(b["box"] for b in finding["boxes"] if b["slice"] == index)


def test_it_opens_on_the_first_findings_key_slice_with_that_slices_boxes(viewer, result):
    key = result["findings"][0]["key_slice"]
    assert viewer.slice_slider.value == key == viewer.image.meta.slice
    assert viewer.slice_slider.max == synth.SHAPE[2] - 1
    assert viewer.canvas.image_key.endswith(f"#{key}")
    assert _drawn(viewer) == [("lesion #1", _box_on(result, LESION, key), True)]
    # the box is where the ellipsoid is bright in the slice the viewer shows
    rows, cols = np.nonzero(viewer.image.raw > 500)
    assert [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1] == _box_on(result, 1, key)
    assert "Slice 20: 1 box(es)" in viewer.slice_note.value


def test_the_slider_shows_each_slices_own_boxes(viewer, result):
    viewer.slice_slider.value = 16
    assert _drawn(viewer) == [("lesion #1", _box_on(result, LESION, 16), True)]
    viewer.slice_slider.value = synth.ISOLATED_SLICE
    assert _drawn(viewer) == [("nodule #2 (isolated)", synth.ISOLATED_BOX, True)]
    viewer.slice_slider.value = 30
    assert viewer.canvas.boxes == [] and viewer.visible_boxes == []
    viewer.slice_slider.value = synth.FAILED_SLICE
    assert "Slice 33 failed: The model did not answer within 60 s." in viewer.slice_note.value


def test_clicking_a_finding_jumps_to_its_key_slice_and_highlights_its_boxes(viewer, result):
    viewer.finding_buttons[NODULE].click()
    assert viewer.slice_slider.value == synth.ISOLATED_SLICE == viewer.image.meta.slice
    assert viewer.highlighted == NODULE
    assert viewer.canvas.selected == 0
    assert viewer.finding_buttons[NODULE].button_style == "info"
    assert viewer.finding_buttons[LESION].button_style == ""

    viewer.finding_buttons[LESION].click()
    assert viewer.slice_slider.value == result["findings"][0]["key_slice"]
    # the highlight follows the finding through its slices, and stays off other slices
    for index in (15, 22, 25):
        viewer.slice_slider.value = index
        assert viewer.canvas.selected == 0, index
    viewer.slice_slider.value = 30
    assert viewer.canvas.selected == -1 and viewer.highlighted == LESION


def test_clicking_a_box_selects_its_finding_and_shows_it_in_3d(viewer):
    viewer.canvas.selected = 0  # what the browser sets on click
    assert viewer.highlighted == LESION
    assert viewer.finding_buttons[LESION].button_style == "info"
    assert "3D finding #1" in viewer.info.value and "slices 15–25" in viewer.info.value
    viewer.canvas.selected = -1
    assert viewer.highlighted is None


def test_toggling_a_finding_hides_its_boxes_on_every_slice(viewer, result):
    viewer.set_finding_visible(LESION, False)
    lesion = result["findings"][0]
    first, last = lesion["slice_range"]
    for index in range(first, last + 1):
        viewer.slice_slider.value = index
        assert [visible for *_, visible in _drawn(viewer)] == [False], index
        assert viewer.visible_boxes == []
        assert f"Slice {index}: 0 box(es), 1 hidden" in viewer.slice_note.value
    assert "hidden" in viewer.table.value
    # the other finding is untouched
    viewer.slice_slider.value = synth.ISOLATED_SLICE
    assert [visible for *_, visible in _drawn(viewer)] == [True]
    # showing a hidden finding turns it back on
    viewer.show_finding(LESION)
    assert viewer.hidden_findings == [] and "hidden" not in viewer.table.value
    assert [visible for *_, visible in _drawn(viewer)] == [True]


def test_the_table_gives_extents_in_mm_and_flags_isolated_findings(viewer, result):
    table = viewer.table.value
    lesion, nodule = result["findings"]
    assert nodule["isolated"] and not lesion["isolated"]
    x, y, z = lesion["extent_mm"]
    assert f"{x:.1f} × {y:.1f} × {z:.1f} mm" in table
    assert f"≤ {lesion['volume_ml']:.2f} ml" in table
    assert "Centre (mm, RAS)" in table and "(12.0, -14.0, 10.0)" in table
    assert "15–25" in table
    rows = table.split("<tr data-finding=")[1:]
    assert ["isolated" in row for row in rows] == [False, True]
    isolated_rows = [
        r for r in viewer.findings.children if "medmo-finding-isolated" in r._dom_classes
    ]
    assert len(isolated_rows) == 1
    assert "Study read" in viewer.notes.value and "Slice 33 failed" in viewer.notes.value


def test_the_view_exports_the_shown_slice_with_its_boxes(viewer, tmp_path):
    png = viewer.to_png(tmp_path / "slice.png")
    assert png.startswith(b"\x89PNG") and viewer.canvas.export_name.endswith("-20-boxes.png")


def test_a_result_object_with_to_dict_is_accepted(volume, result, scripted_session):
    viewer = VolumeViewer.from_result(_SweepResult(result), volume)
    assert len(viewer.finding_toggles) == 2


def test_a_volume_that_is_not_the_swept_one_is_refused(volume, result, scripted_session):
    result["shape"] = [60, 48, 64]
    with pytest.raises(InputError) as caught:
        VolumeViewer(result, volume)
    message = str(caught.value)
    assert "40 axial slices of 64 × 48 px" in message and "60 slices" in message


def test_a_result_that_is_not_a_volume_sweep_is_refused_with_a_fix(volume, scripted_session):
    with pytest.raises(InputError, match="not a volume sweep result: it has no per_slice"):
        VolumeViewer({"plane": "axial", "shape": [1, 2, 3], "findings": []}, volume)
    with pytest.raises(InputError, match="Pass the volume too"):
        VolumeViewer(synth.sweep_result())


def test_a_finding_on_a_slice_outside_the_volume_is_refused(volume, result, scripted_session):
    result["findings"][1]["key_slice"] = 99
    with pytest.raises(InputError, match="names slice 99, outside the 40 slices"):
        VolumeViewer(result, volume)


def test_a_single_image_is_not_taken_for_the_volume(chest_png, result, scripted_session):
    with pytest.raises(InputError, match="is a single image"):
        VolumeViewer(result, str(chest_png))


def test_its_boxes_cannot_be_replaced(viewer):
    with pytest.raises(MedmoError, match="cannot be replaced"):
        viewer.set_boxes([])


def test_the_result_handle_names_the_volume_when_none_is_given(volume, result, scripted_session):
    result["handle"] = volume
    viewer = VolumeViewer(result)
    assert viewer.image.meta.num_slices == synth.SHAPE[2]


def test_a_volume_loaded_in_another_plane_is_resliced_in_the_sweeps(
    volume, result, scripted_session
):
    coronal = scripted_session.load(volume, plane="coronal")
    assert coronal.meta.plane == "coronal" and coronal.meta.num_slices == synth.SHAPE[1]
    viewer = VolumeViewer(result, coronal)
    assert viewer.image.meta.plane == "axial" and viewer.image.meta.slice == 20


class _SweepResult:
    """Stands in for the volume task's result model: its task name, summary and dict."""

    task = "ground_volume"

    def __init__(self, data):
        self.data = data

    def summary(self):
        return f"{len(self.data['findings'])} findings"

    def to_dict(self):
        return self.data


def test_a_task_panel_shows_a_volume_sweep_result_in_the_volume_viewer(
    volume, result, scripted_session, monkeypatch
):
    import jupyter_ext.panels as panels

    # the volume task is answered by a stand-in; the panel's loading and display are real
    monkeypatch.setattr(panels, "call_task", lambda *_a, **_k: _SweepResult(result))
    panel = panels.TaskPanel("ground", volume, "lesion", session=scripted_session)
    panel.wait(60)
    assert isinstance(panel.viewer, VolumeViewer)
    assert panel.viewer.slice_slider.value == result["findings"][0]["key_slice"]
    assert panel.body.children[0] is panel.viewer


def test_a_task_panel_says_why_a_sweep_cannot_be_shown_on_its_volume(
    volume, result, scripted_session, monkeypatch
):
    import jupyter_ext.panels as panels

    result["shape"] = [40, 50, 64]
    monkeypatch.setattr(panels, "call_task", lambda *_a, **_k: _SweepResult(result))
    panel = panels.TaskPanel("ground", volume, "lesion", session=scripted_session)
    panel.wait(60)
    assert "but the sweep ran on 40 slices of 64 × 50 px" in panel.status.value
    assert not isinstance(panel.viewer, VolumeViewer)


def test_a_multi_frame_dicom_is_stepped_through_by_frame(scripted_session):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("emri_small.dcm")  # 10 frames of 64 x 64
    box = [10.0, 12.0, 30.0, 28.0]
    per_slice = [
        {"slice": k, "boxes": [{"label": "cyst", "box": box}] if k == 3 else [], "answer": ""}
        for k in range(10)
    ]
    result = {
        "plane": "axial",
        "shape": [10, 64, 64],
        "per_slice": per_slice,
        "findings": [
            {
                "id": 1,
                "label": "cyst",
                "slice_range": [3, 3],
                "key_slice": 3,
                "boxes": [{"slice": 3, "box": box}],
                "isolated": True,
            }
        ],
    }
    viewer = VolumeViewer(result, path)
    assert viewer.slice_slider.description == "Frame" and viewer.slice_slider.max == 9
    assert viewer.image.meta.frame == 3
    assert _drawn(viewer) == [("cyst #1 (isolated)", box, True)]
    assert "–" in viewer.table.value  # no extent or centre given: shown as unknown
    viewer.slice_slider.value = 4
    assert viewer.image.meta.frame == 4 and viewer.canvas.boxes == []
    assert "Frame 4: 0 box(es)" in viewer.slice_note.value


def test_failed_slices_are_listed_as_runs(volume, result, scripted_session):
    for k in (7, 8, 9, 10, 12):
        result["per_slice"][k]["error"] = "The server closed the connection."
    viewer = VolumeViewer(result, volume)
    assert "6 slice(s) failed: 7–10, 12, 33" in viewer.notes.value


def test_slices_the_sweep_stepped_over_say_so(volume, result, scripted_session):
    result["per_slice"] = [s for s in result["per_slice"] if s["slice"] % 2 == 0]
    result["slices"] = [s["slice"] for s in result["per_slice"]]
    viewer = VolumeViewer(result, volume)
    viewer.slice_slider.value = 17
    assert "Slice 17 was not swept." in viewer.slice_note.value
    assert viewer.canvas.boxes == []
    viewer.slice_slider.value = 18
    assert [label for label, *_ in _drawn(viewer)] == ["lesion #1"]


def test_a_4d_volume_is_shown_at_the_time_point_the_sweep_read(tmp_path, scripted_session):
    from medmo_agent.backends.scripted import ScriptedBackend
    from medmo_agent.testing.volumes import lesion_reply, write_perfusion
    from medmo_agent.toolkit import Toolkit

    path = write_perfusion(tmp_path / "perfusion.nii.gz")
    kit = Toolkit(backend=ScriptedBackend(responder=lesion_reply))
    result = kit.ground_volume(str(path), ["nodule"], frame=2)
    (finding,) = result.findings
    viewer = VolumeViewer(result, str(path))
    assert viewer.image.meta.frame == 2 and viewer.image.meta.slice == finding.key_slice
    assert viewer.image.raw.max() > 200  # the lesion is in time point 2 only
    # moving through the slices stays on that time point
    viewer.slice_slider.value = finding.slice_range[0]
    assert viewer.image.meta.frame == 2 and viewer.image.raw.max() > 200
