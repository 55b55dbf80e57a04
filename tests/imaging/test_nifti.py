"""NIfTI volumes: nibabel's bundled real files plus synthetic orientation checks."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from medmo_agent.config import Settings
from medmo_agent.errors import ImageLoadError, ImageTooLargeError, InputError
from medmo_agent.imaging import load_image

ANAT = os.path.join(data_path, "anatomical.nii")  # 33x41x25, LAS
EX4D = os.path.join(data_path, "example4d.nii.gz")  # 128x96x24x2, LAS, cal 0..1162


def test_axial_slice_matches_nibabel_canonical_in_radiological_display() -> None:
    img = load_image(ANAT)
    canon = nib.as_closest_canonical(nib.load(ANAT)).get_fdata()
    k = canon.shape[2] // 2
    assert (img.meta.slice, img.meta.num_slices, img.meta.plane) == (k, 25, "axial")
    assert np.array_equal(img.raw, canon[:, :, k].T[::-1, ::-1])
    assert img.meta.original_size == (33, 41)
    assert img.meta.format == "nifti" and img.meta.pixel_spacing == (2.0, 2.0)


@pytest.fixture
def marked(tmp_path: Path) -> Path:
    """A 10x12x8 volume stored left-posterior-superior-ish (affine diag(-2, 3, 4)) with
    markers at known anatomical corners."""
    data = np.zeros((10, 12, 8), dtype=np.int16)
    # i grows toward the patient's LEFT (x = -2 i): i = 0 is the right-most column
    data[0, 11, 4] = 100  # right, anterior, mid-height
    data[0, 5, 7] = 200  # right, mid, superior
    data[3, 11, 7] = 300  # anterior, superior, in sagittal slice i = 3
    path = tmp_path / "marked.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([-2.0, 3.0, 4.0, 1.0])), path)
    return path


def test_axial_shows_anterior_up_and_patient_right_on_the_left(marked: Path) -> None:
    img = load_image(marked, plane="axial", slice=4)
    assert img.raw[0, 0] == 100  # top-left: anterior and the patient's right
    # rows along A-P (12 of 3 mm, shown as 18 square pixels of 2 mm), columns along R-L
    assert img.meta.pixel_spacing == (2.0, 2.0)
    assert img.meta.original_size == (10, 18)


def test_coronal_shows_superior_up_and_patient_right_on_the_left(marked: Path) -> None:
    img = load_image(marked, plane="coronal", slice=5)
    assert img.raw[0, 0] == 200
    assert img.meta.pixel_spacing == (2.0, 2.0)  # 8 rows of 4 mm shown as 16 of 2 mm
    assert img.meta.original_size == (10, 16)
    assert img.meta.num_slices == 12


def test_sagittal_shows_superior_up_and_anterior_on_the_left(marked: Path) -> None:
    # canonical i runs left->right, so stored i = 3 (x = -6) is canonical index 10 - 1 - 3
    img = load_image(marked, plane="sagittal", slice=6)
    assert img.raw[0, 0] == 300
    # 8 rows of 4 mm shown as 11 (the nearest whole count) of 32/11 mm beside 3 mm columns
    assert img.meta.pixel_spacing == pytest.approx((32 / 11, 3.0), abs=1e-5)
    assert img.meta.original_size == (12, 11)


def test_4d_volume_defaults_to_first_frame_and_selects_others() -> None:
    first = load_image(EX4D)
    second = load_image(EX4D, frame=1)
    assert (first.meta.frame, first.meta.num_frames) == (0, 2)
    assert second.meta.frame == 1
    assert not np.array_equal(first.raw, second.raw)
    with pytest.raises(ImageLoadError, match="between 0 and 1"):
        load_image(EX4D, frame=2)


def test_header_calibration_is_the_file_window_and_presets_override_it() -> None:
    img = load_image(EX4D)
    assert (img.meta.window.name, img.meta.window.width, img.meta.window.level) == (
        "file",
        1162,
        581,
    )
    assert load_image(ANAT).meta.window.name == "auto"
    brain = load_image(ANAT, window="brain")
    assert (brain.meta.window.width, brain.meta.window.level) == (80, 40)


def test_volume_handle_reslices_in_other_planes() -> None:
    img = load_image(EX4D)
    cor = img.volume.render(plane="coronal", slice=10)
    assert cor.meta.plane == "coronal" and cor.meta.slice == 10
    # 24 rows of 2.2 mm stretched to 26 rows (52.8 mm over 26) beside 2 mm columns
    assert cor.meta.pixel_spacing == pytest.approx((52.8 / 26, 2.0), abs=1e-5)
    assert cor.size == (128, 26)


def test_bytes_and_extensionless_files_are_detected_by_their_header(tmp_path: Path) -> None:
    data = Path(EX4D).read_bytes()
    plain = tmp_path / "volume.bin"
    plain.write_bytes(gzip.decompress(data))
    from_bytes = load_image(data)
    from_plain = load_image(plain)
    assert from_bytes.meta.format == from_plain.meta.format == "nifti"
    assert np.array_equal(from_bytes.raw, load_image(EX4D).raw)
    assert np.array_equal(from_plain.raw, load_image(EX4D).raw)


def test_nifti2_files_load() -> None:
    img = load_image(os.path.join(data_path, "example_nifti2.nii.gz"))
    assert img.meta.num_slices == 12 and img.meta.num_frames == 2


def test_out_of_range_slice_and_unknown_plane(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="between 0 and 24"):
        load_image(ANAT, slice=25)
    with pytest.raises(InputError, match="axial"):
        load_image(ANAT, plane="oblique")


def test_gzip_bomb_is_refused_while_inflating(tmp_path: Path) -> None:
    zeros = nib.Nifti1Image(np.zeros((100, 100, 100), dtype=np.int16), np.eye(4))
    path = tmp_path / "zeros.nii.gz"
    nib.save(zeros, path)
    small = Settings(max_image_bytes=200_000)
    assert path.stat().st_size < 200_000  # compressed it passes the file-size check
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageTooLargeError, match="100x100x100"):
            load_image(source, settings=small)  # the header shape is checked before reading
    # A header claiming a small volume in front of far more data: stopped while inflating.
    header = nib.Nifti1Image(np.zeros((10, 10, 10), dtype=np.int16), np.eye(4)).header
    header["vox_offset"] = 352
    bomb = tmp_path / "bomb.nii.gz"
    bomb.write_bytes(gzip.compress(header.binaryblock + bytes(4) + bytes(2_000_000)))
    for source in (bomb, bomb.read_bytes()):
        with pytest.raises(ImageTooLargeError, match="expands to more than 200,000 bytes"):
            load_image(source, settings=small)


def test_slice_over_the_pixel_cap_is_refused() -> None:
    with pytest.raises(ImageTooLargeError, match="pixel cap"):
        load_image(ANAT, settings=Settings(max_image_pixels=100))


def test_truncated_volume_is_an_image_load_error(tmp_path: Path) -> None:
    data = Path(EX4D).read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert "cut.nii.gz" in str(err.value) and "truncated or corrupt" in err.value.message
    assert err.value.__cause__ is not None
