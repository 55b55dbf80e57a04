"""Folders holding a DICOM series: written here with pydicom from its real CT example."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import examples
from pydicom.uid import generate_uid

from medmo_agent.config import Settings
from medmo_agent.errors import AccessDeniedError, ImageLoadError
from medmo_agent.imaging import ImageResolver, load_image


def write_series(
    folder: Path,
    n: int,
    *,
    series_uid: str | None = None,
    series_number: int = 1,
    positions: bool = True,
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    seed: int = 0,
) -> Path:
    """Write ``n`` slices whose HU value is ``100 * z_index``, in shuffled file order with
    InstanceNumbers running against the position order."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    order = list(range(n))
    random.Random(seed).shuffle(order)
    normal = np.cross(orientation[:3], orientation[3:])
    for k, z in enumerate(order):
        ds = examples.ct
        arr = np.full_like(ds.pixel_array, 1024 + 100 * z)  # RescaleIntercept is -1024
        ds.PixelData = arr.tobytes()
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = series_number
        ds.SOPInstanceUID = generate_uid()
        ds.ImageOrientationPatient = list(orientation)
        if positions:
            ds.ImagePositionPatient = [float(v) for v in normal * 5.0 * z]
            ds.InstanceNumber = 100 - z  # deliberately against the position order
        else:
            del ds.ImagePositionPatient
            ds.InstanceNumber = z + 1
        ds.save_as(folder / f"IM{k:04d}.dcm")
    return folder


def slice_values(folder: Path, n: int) -> list[float]:
    return [float(load_image(folder, slice=i).raw.mean()) for i in range(n)]


def test_slices_follow_position_not_file_or_instance_order(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 6)
    assert slice_values(folder, 6) == [0, 100, 200, 300, 400, 500]


def test_series_defaults_to_the_middle_slice_with_metadata(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 5)
    img = load_image(folder)
    assert (img.meta.slice, img.meta.num_slices) == (2, 5)
    assert img.meta.format == "dicom-series" and img.meta.plane == "axial"
    assert img.meta.source == str(folder)
    assert img.meta.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert img.raw.mean() == 200


def test_instance_number_orders_slices_without_positions(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 4, positions=False)
    assert slice_values(folder, 4) == [0, 100, 200, 300]


def test_sagittal_series_sorts_along_its_own_normal(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "sag", 4, orientation=(0, 1, 0, 0, 0, -1))
    assert load_image(folder).meta.plane == "sagittal"
    # normal = row x column = (-1, 0, 0); positions were written as normal * 5 * z
    assert slice_values(folder, 4) == [0, 100, 200, 300]


def test_largest_series_is_chosen_when_a_folder_holds_several(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    write_series(folder / "a", 2, series_number=7)
    write_series(folder / "b", 5, series_number=3)
    for sub in ("a", "b"):
        for f in (folder / sub).iterdir():
            f.rename(folder / f"{sub}_{f.name}")
    img = load_image(folder)
    assert img.meta.num_slices == 5
    assert img.meta.dicom["SeriesNumber"] == 3
    assert img.volume.series_count == 2


def test_non_dicom_files_in_the_folder_are_ignored(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 3)
    (folder / "README.txt").write_text("notes")
    (folder / ".DS_Store").write_bytes(b"\x00" * 10)
    pydicom.dcmread(examples.get_path("rt_plan")).save_as(folder / "plan.dcm")
    assert load_image(folder).meta.num_slices == 3


def test_empty_folder_or_folder_without_dicom_is_an_image_load_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageLoadError, match="holds no DICOM images"):
        load_image(empty)
    (empty / "x.dcm").write_text("not dicom")
    with pytest.raises(ImageLoadError, match="1 file"):
        load_image(empty)


def test_out_of_range_slice_says_which_slices_exist(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 20)
    with pytest.raises(ImageLoadError) as err:
        load_image(folder, slice=20)
    assert "choose a slice between 0 and 19" in err.value.fix.lower()


def test_other_planes_of_a_series_are_refused_with_a_way_forward(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 3)
    assert load_image(folder, plane="axial").meta.plane == "axial"
    with pytest.raises(ImageLoadError) as err:
        load_image(folder, plane="coronal")
    assert "NIfTI" in err.value.fix


def test_resolver_reslices_a_loaded_series_through_its_volume(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 4)
    resolver = ImageResolver(Settings(), allowed_dirs=[tmp_path], confine=True)
    first = resolver.resolve(folder)
    assert first.handle == str(folder)
    other = resolver.resolve(first, slice=0, window="lung")
    assert other.raw.mean() == 0 and other.meta.window.name == "lung"
    assert other.handle.startswith("medmo://images/")
    again = resolver.resolve(other.handle, slice=3)
    assert again.raw.mean() == 300


def test_symlink_inside_a_series_folder_cannot_escape_the_allowed_folders(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    uid = generate_uid()
    folder = write_series(allowed / "ct", 3, series_uid=uid)
    outside = write_series(tmp_path / "outside", 1, series_uid=uid)
    (folder / "IM9999.dcm").symlink_to(next(outside.iterdir()))
    resolver = ImageResolver(Settings(), allowed_dirs=[allowed], confine=True)
    with pytest.raises(AccessDeniedError, match=r"IM9999\.dcm"):
        resolver.resolve(folder)
    # without confinement the same folder is a 4-slice series
    assert ImageResolver(Settings()).resolve(folder).meta.num_slices == 4


def test_load_image_enforces_allowed_dirs_itself(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "ct", 2)
    with pytest.raises(AccessDeniedError):
        load_image(folder, allowed_dirs=[tmp_path / "elsewhere"])
    assert load_image(folder, allowed_dirs=[tmp_path]).meta.num_slices == 2
