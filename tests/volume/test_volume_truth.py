"""Synthetic volumes whose truth is known: an ellipsoid lesion of given size at a given
position, written as a DICOM series (pydicom) and as NIfTI (nibabel) at anisotropic
spacing. The scripted backend boxes the bright pixels of each slice it is shown, so the
box mapping, the linking and the geometry are all checked against the truth."""

from __future__ import annotations

import pytest

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.testing.volumes import (
    Phantom,
    lesion_reply,
    write_dicom_series,
    write_multiframe,
    write_nifti,
)
from medmo_agent.toolkit import Toolkit

# An ellipsoid in thick axial slices (3 mm) of non-square pixels (0.7 x 0.9 mm).
ELLIPSOID = Phantom(
    shape=(30, 60, 80),
    spacing=(0.7, 0.9, 3.0),
    centre=(5.0, 2.0, 45.0),
    radii=(12.0, 6.0, 15.0),
    origin=(-30.0, -20.0, 0.0),
)
# A sphere's bounding estimate (box areas x slab) is 4/pi of its volume.
BOUND_RATIO = 4 / 3.141592653589793


def _toolkit() -> Toolkit:
    return Toolkit(backend=ScriptedBackend(responder=lesion_reply))


def _check_against_truth(result, phantom: Phantom, *, slice_step: int = 1) -> None:
    row_mm, col_mm, slice_mm = phantom.spacing
    # in plane: square pixels at the finer of the two spacings (whole pixels allowing)
    fine = min(row_mm, col_mm)
    assert result.spacing_mm == pytest.approx((fine, fine, slice_mm), rel=0.01)
    assert len(result.findings) == 1, result.summary()
    (f,) = result.findings
    assert f.label == "nodule" and not f.isolated
    a, b, c = phantom.radii
    # extents: within one pixel in plane and one swept slab across slices
    assert f.extent_mm[0] == pytest.approx(2 * a, abs=col_mm + 0.01)
    assert f.extent_mm[1] == pytest.approx(2 * b, abs=row_mm + 0.01)
    assert f.extent_mm[2] == pytest.approx(2 * c, abs=slice_mm * slice_step + 0.01)
    # centre: within half a voxel in plane, half a swept slab across slices
    cx, cy, cz = phantom.centre
    assert f.center_mm[0] == pytest.approx(cx, abs=col_mm / 2 + 0.01)
    assert f.center_mm[1] == pytest.approx(cy, abs=row_mm / 2 + 0.01)
    assert f.center_mm[2] == pytest.approx(cz, abs=slice_mm * slice_step / 2 + 0.01)
    # key slice: the one nearest the centre
    nearest = round((cz - phantom.origin[2]) / slice_mm)
    assert abs(f.key_slice - nearest) <= slice_step
    # the bounding estimate: about 4/pi of the true volume (within 20 %), never below it
    assert f.volume_ml > phantom.volume_ml
    assert f.volume_ml == pytest.approx(phantom.volume_ml * BOUND_RATIO, rel=0.2)


def test_a_sphere_in_a_dicom_series_has_its_size_centre_and_volume_in_lps(tmp_path):
    phantom = Phantom()
    folder = write_dicom_series(phantom, tmp_path / "series")
    result = _toolkit().ground_volume(str(folder), ["nodule"])
    assert result.frame == "LPS" and result.plane == "axial"
    assert result.shape == (24, 64, 64)
    assert result.slices == list(range(24))
    assert all(e.error is None for e in result.per_slice)
    _check_against_truth(result, phantom)
    assert result.warnings == []


def test_an_ellipsoid_in_nifti_has_its_size_centre_and_volume_in_ras(tmp_path):
    phantom = ELLIPSOID
    path = write_nifti(phantom, tmp_path / "vol.nii.gz")
    result = _toolkit().ground_volume(str(path), ["nodule"], window="400/50")
    assert result.frame == "RAS"
    assert result.shape == (30, 60, 103)  # 80 columns of 0.9 mm shown as 103 of 0.7 mm
    _check_against_truth(result, phantom)


def test_a_coronal_sweep_of_thick_slices_measures_the_lesion_on_square_pixels(tmp_path):
    # 30 axial slices of 3 mm: a coronal slice has 30 rows of 3 mm along z, shown as 100
    # rows of 0.9 mm. The extents and centre come out right only if the geometry follows
    # the stretched rows.
    phantom = ELLIPSOID
    path = write_nifti(phantom, tmp_path / "vol.nii.gz")
    result = _toolkit().ground_volume(str(path), ["nodule"], plane="coronal", window="400/50")
    assert (result.frame, result.plane, result.shape) == ("RAS", "coronal", (60, 100, 80))
    assert result.spacing_mm == pytest.approx((0.9, 0.9, 0.7))
    (f,) = result.findings
    a, b, c = phantom.radii
    # columns along x; rows along z, sampled every 3 mm, so each end of the lesion lies
    # anywhere within a stored slice of the last row that shows it; slices along y
    assert f.extent_mm[0] == pytest.approx(2 * a, abs=0.9 + 0.01)
    assert f.extent_mm[1] == pytest.approx(2 * c, abs=2 * 3.0)
    assert f.extent_mm[2] == pytest.approx(2 * b, abs=0.7 + 0.01)
    cx, cy, cz = phantom.centre
    assert f.center_mm[0] == pytest.approx(cx, abs=0.45 + 0.01)
    assert f.center_mm[1] == pytest.approx(cy, abs=0.35 + 0.01)
    assert f.center_mm[2] == pytest.approx(cz, abs=1.5 + 0.01)
    assert f.volume_ml > phantom.volume_ml
    assert f.volume_ml == pytest.approx(phantom.volume_ml * BOUND_RATIO, rel=0.2)


def test_a_nifti_stored_with_flipped_axes_gives_the_same_ras_centre(tmp_path):
    phantom = Phantom(shape=(20, 50, 70), spacing=(1.1, 0.6, 2.0), centre=(-4.0, 7.0, 18.0))
    path = write_nifti(phantom, tmp_path / "flipped.nii", flipped=True)
    result = _toolkit().ground_volume(str(path), ["nodule"], window="400/50")
    _check_against_truth(result, phantom)


def test_a_step_sweeps_every_other_slice_and_still_measures_the_whole_lesion(tmp_path):
    phantom = Phantom(shape=(40, 64, 64), spacing=(0.8, 0.8, 1.25), centre=(0.0, 0.0, 25.0))
    folder = write_dicom_series(phantom, tmp_path / "series")
    result = _toolkit().ground_volume(str(folder), ["nodule"], slices="::2")
    assert result.slices == list(range(0, 40, 2))
    _check_against_truth(result, phantom, slice_step=2)


def test_a_range_reads_only_those_slices(tmp_path):
    folder = write_dicom_series(Phantom(), tmp_path / "series")
    backend = ScriptedBackend(responder=lesion_reply)
    result = Toolkit(backend=backend).ground_volume(str(folder), slices="6:10")
    assert result.slices == [6, 7, 8, 9]
    assert len(backend.requests) == 4
    assert [f.slice_range for f in result.findings] == [(6, 9)]


def test_a_gantry_tilt_is_reported_and_the_centre_follows_each_slices_position(tmp_path):
    phantom = Phantom(tilt_mm=0.5)  # each slice 0.5 mm further along y: about 11 degrees
    folder = write_dicom_series(phantom, tmp_path / "series")
    result = _toolkit().ground_volume(str(folder), ["nodule"])
    assert any("Gantry tilt of about 11" in w for w in result.warnings), result.warnings
    (f,) = result.findings
    assert f.center_mm[1] == pytest.approx(phantom.centre[1], abs=0.8)
    assert f.center_mm[2] == pytest.approx(phantom.centre[2], abs=1.3)


def test_a_missing_slice_is_reported_and_extents_use_the_measured_positions(tmp_path):
    phantom = Phantom(skip=(8,))  # inside the lesion
    folder = write_dicom_series(phantom, tmp_path / "series")
    result = _toolkit().ground_volume(str(folder), ["nodule"])
    assert result.shape[0] == 23
    (warning,) = [w for w in result.warnings if "Uneven slice spacing" in w]
    assert "7-8: 5.00 mm" in warning and "about 1 slice(s) seem missing" in warning
    (f,) = result.findings
    # the gap is bridged by position: the extent still spans the whole lesion
    assert f.extent_mm[2] == pytest.approx(2 * phantom.radii[2], abs=2.5 + 0.01)
    assert f.center_mm[2] == pytest.approx(phantom.centre[2], abs=1.3)


def test_a_single_slice_series_is_swept_and_its_finding_flagged_isolated(tmp_path):
    phantom = Phantom(shape=(1, 64, 64), origin=(-25.0, -25.0, 20.0))
    folder = write_dicom_series(phantom, tmp_path / "one")
    result = _toolkit().ground_volume(str(folder), ["nodule"])
    (f,) = result.findings
    assert f.isolated and f.slice_range == (0, 0)
    assert f.extent_mm[2] == pytest.approx(2.5)  # the SliceThickness
    assert any("A single slice" in w for w in result.warnings)


def test_boxes_on_far_apart_slices_or_with_other_labels_stay_separate_findings(tmp_path):
    folder = write_dicom_series(Phantom(), tmp_path / "series")

    def reply(request):
        index = request.images[0].meta.slice
        if index in (2, 3):
            return "nodule: [10, 10, 60, 60]"
        if index == 3 + 10:
            return "nodule: [10, 10, 60, 60]\ncyst: [100, 100, 140, 140]"
        return "No Finding"

    result = Toolkit(backend=ScriptedBackend(responder=reply)).ground_volume(str(folder))
    got = [(f.label, f.slice_range, f.isolated) for f in result.findings]
    assert got == [
        ("nodule", (2, 3), False),
        ("nodule", (13, 13), True),
        ("cyst", (13, 13), True),
    ]


def test_detect_mode_sweeps_with_the_detect_prompt_and_label(tmp_path):
    folder = write_dicom_series(Phantom(), tmp_path / "series")
    backend = ScriptedBackend(responder=lambda r: lesion_reply(r, label="lesion"))
    result = Toolkit(backend=backend).ground_volume(
        str(folder), mode="detect", label="lesion", slices="5:12"
    )
    assert result.mode == "detect" and result.targets == ["lesion"]
    assert "lesions" in backend.requests[0].messages[-1].text
    assert [f.label for f in result.findings] == ["lesion"]


def test_the_study_read_shows_key_slices_and_evenly_spaced_ones_each_labelled(tmp_path):
    folder = write_dicom_series(Phantom(), tmp_path / "series")
    backend = ScriptedBackend(responder=lesion_reply)
    result = Toolkit(backend=backend, settings=Settings(volume_study_read_images=4)).ground_volume(
        str(folder), ["nodule"], study_read=True
    )
    read = backend.requests[-1]
    assert len(read.images) == 4
    # the key slice, then the centres of three equal parts of the other slices
    assert result.study_read_slices == [3, 8, 12, 20]
    texts = [p.text for p in read.messages[-1].parts if hasattr(p, "text")]
    assert texts[:4] == [
        "<image_1>: slice 3",
        "<image_2>: slice 8",
        "<image_3>: slice 12",
        "<image_4>: slice 20",
    ]
    assert "#1 nodule: slices 5-11, key slice 8" in texts[-1]
    assert [i.meta.slice for i in read.images] == [3, 8, 12, 20]
    assert result.study_read == "Findings: 4 slices reviewed; one nodule. Impression: nodule."


def test_a_multiframe_dicom_uses_its_per_frame_positions(tmp_path):
    phantom = Phantom(origin=(-25.0, -25.0, 100.0), centre=(10.0, -6.0, 120.0))
    path = write_multiframe(phantom, tmp_path / "enhanced.dcm")
    result = _toolkit().ground_volume(str(path), ["nodule"])
    assert result.frame == "LPS" and result.shape == (24, 64, 64)
    assert result.warnings == []
    _check_against_truth(result, phantom)


def test_a_multiframe_dicom_without_positions_is_stacked_by_spacing_and_says_so(tmp_path):
    phantom = Phantom()
    path = write_multiframe(phantom, tmp_path / "plain.dcm", positions=False)
    result = _toolkit().ground_volume(str(path), ["nodule"])
    (warning,) = result.warnings
    assert "stacked 2.5 mm apart" in warning and "not patient coordinates" in warning
    (f,) = result.findings
    assert f.extent_mm[0] == pytest.approx(2 * phantom.radii[0], abs=0.8 + 0.01)
    assert f.extent_mm[2] == pytest.approx(2 * phantom.radii[2], abs=2.5 + 0.01)
    # relative to the first pixel of the first frame
    assert f.center_mm[2] == pytest.approx(phantom.centre[2] - phantom.origin[2], abs=1.3)


@pytest.mark.parametrize("layout", ["series", "multiframe"])
def test_dicom_pixels_wider_than_tall_are_measured_on_square_ones(tmp_path, layout):
    # columns of 1.6 mm beside rows of 0.8 mm: shown as twice as many columns of 0.8 mm;
    # the extents and centre hold only if the geometry follows the stretched columns
    phantom = Phantom(shape=(24, 64, 32), spacing=(0.8, 1.6, 2.5), centre=(6.0, -4.0, 20.0))
    if layout == "series":
        path = write_dicom_series(phantom, tmp_path / "series")
    else:
        path = write_multiframe(phantom, tmp_path / "enhanced.dcm")
    result = _toolkit().ground_volume(str(path), ["nodule"])
    assert result.shape == (24, 64, 64)
    _check_against_truth(result, phantom)


@pytest.mark.parametrize("layout", ["series", "multiframe", "nifti-coronal"])
def test_the_middle_of_a_stretched_slice_is_the_middle_of_the_stored_one(tmp_path, layout):
    """Stretching keeps a slice's extent: its middle lies where the stored slice's middle
    does, in patient coordinates (a half-pixel slip would move every centre)."""
    from medmo_agent.imaging import load_image
    from medmo_agent.volume.geometry import geometry_of

    phantom = Phantom(shape=(6, 20, 10), spacing=(0.8, 1.6, 2.5), origin=(-7.0, 3.0, 11.0))
    plane = None
    if layout == "series":
        path = write_dicom_series(phantom, tmp_path / "series")
    elif layout == "multiframe":
        path = write_multiframe(phantom, tmp_path / "enhanced.dcm")
    else:
        path, plane = write_nifti(phantom, tmp_path / "v.nii.gz"), "coronal"
    first = load_image(path, plane=plane)
    geo = geometry_of(first.volume, plane=plane, first=first)
    cols, rows = first.size
    middle = geo.to_patient((cols - 1) / 2, (rows - 1) / 2, 0)
    n, stored_rows, stored_cols = phantom.shape
    row_mm, col_mm, slice_mm = phantom.spacing
    x0, y0, z0 = phantom.origin
    x = x0 + (stored_cols - 1) / 2 * col_mm
    if plane is None:  # axial: rows along y, the first slice at z0
        assert (cols, rows) == (2 * stored_cols, stored_rows)
        expected = (x, y0 + (stored_rows - 1) / 2 * row_mm, z0)
        assert middle == pytest.approx(expected, abs=0.011)
    else:  # coronal: columns along x (1.6 mm), rows along z (6 of 2.5 mm shown as 9)
        assert (cols, rows) == (stored_cols, round(n * slice_mm / col_mm))
        assert (middle[0], middle[2]) == pytest.approx((x, z0 + (n - 1) / 2 * slice_mm), abs=0.011)


def test_dicom_of_a_modality_shown_as_stored_keeps_its_pixels(tmp_path):
    import pydicom

    from medmo_agent.imaging import load_image

    folder = write_dicom_series(Phantom(shape=(2, 20, 10), spacing=(0.8, 1.6, 2.5)), tmp_path)
    path = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(path)
    ds.Modality = "OPT"  # ophthalmic tomography: its viewers show B-scans as stored
    ds.save_as(path, enforce_file_format=True)
    image = load_image(path)
    assert image.size == (10, 20) and image.meta.pixel_spacing == (0.8, 1.6)
    assert load_image(sorted(folder.iterdir())[1]).size == (20, 20)  # the CT one, stretched
