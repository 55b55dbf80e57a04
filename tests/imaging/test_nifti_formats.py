"""NIfTI relatives: RGB voxels, Analyze/NIfTI .hdr/.img pairs, and the formats that are
recognised only to be refused by name (CIFTI-2, MINC1, MINC2)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from medmo_agent.config import Settings
from medmo_agent.errors import AccessDeniedError, ImageLoadError
from medmo_agent.imaging import ImageResolver, load_image

RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
RGBA = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])


def _rgb_volume(dtype: np.dtype) -> np.ndarray:
    vol = np.zeros((6, 5, 4), dtype=dtype)
    vol["R"] = np.arange(6)[:, None, None] * 40  # grows left -> right (i)
    vol["G"] = np.arange(5)[None, :, None] * 50  # grows posterior -> anterior (j)
    vol["B"] = 77
    if "A" in dtype.names:
        vol["A"] = 255
    return vol


@pytest.mark.parametrize(("dtype", "code"), [(RGB, 128), (RGBA, 2304)])
def test_rgb_nifti_renders_its_colours(tmp_path: Path, dtype: np.dtype, code: int) -> None:
    path = tmp_path / "rgb.nii"
    nib.save(nib.Nifti1Image(_rgb_volume(dtype), np.eye(4)), path)
    assert int(nib.load(path).header["datatype"]) == code
    image = load_image(path)
    assert image.size == (6, 5) and image.meta.photometric == "RGB"
    px = image.pixels  # axial: anterior up, the patient's right (low i) on the left
    assert px.shape == (5, 6, 3)
    assert px[0, 0].tolist() == [200, 200, 77]  # row 0 = most anterior, column 0 = i=5
    assert px[-1, -1].tolist() == [0, 0, 77]
    coronal = load_image(path, plane="coronal", window="lung")  # a window is ignored
    assert coronal.meta.window is None and coronal.pixels.shape == (4, 6, 3)


@pytest.mark.parametrize(
    ("cls", "kind"), [(nib.AnalyzeImage, "analyze"), (nib.Nifti1Pair, "nifti pair")]
)
def test_hdr_img_pairs_load_from_the_hdr_or_the_img(tmp_path: Path, cls, kind: str) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    nib.save(cls(data, np.eye(4)), tmp_path / "pair.hdr")
    assert (tmp_path / "pair.img").is_file()
    single = tmp_path / "single.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), single)
    for given in ("pair.hdr", "pair.img"):
        image = load_image(tmp_path / given, window=(200, 60))
        if cls is nib.Nifti1Pair:
            reference = load_image(single, window=(200, 60))
            assert np.array_equal(image.raw, reference.raw), given
        assert image.raw.shape in ((5, 4), (4, 5)) and image.meta.format == "nifti"


def test_a_pair_header_without_its_img_says_what_is_missing(tmp_path: Path) -> None:
    nib.save(nib.AnalyzeImage(np.zeros((2, 2, 2), np.uint8), np.eye(4)), tmp_path / "a.hdr")
    (tmp_path / "a.img").unlink()
    with pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / "a.hdr")
    assert "a.img" in err.value.message and "truncated or corrupt" not in str(err.value)
    with pytest.raises(ImageLoadError, match=r"\.img"):
        load_image(Path(data_path) / "nifti1.hdr")
    with pytest.raises(ImageLoadError, match="useless without"):
        load_image((Path(data_path) / "analyze.hdr").read_bytes())


def test_a_pair_whose_img_leaves_the_allowed_folder_is_denied(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    nib.save(nib.AnalyzeImage(np.zeros((2, 2, 2), np.uint8), np.eye(4)), outside / "a.hdr")
    (allowed / "a.hdr").write_bytes((outside / "a.hdr").read_bytes())
    (allowed / "a.img").symlink_to(outside / "a.img")
    resolver = ImageResolver(Settings(), allowed_dirs=[allowed], confine=True)
    with pytest.raises(AccessDeniedError, match=r"a\.img"):
        resolver.resolve(allowed / "a.hdr")
    (allowed / "a.img").unlink()
    (allowed / "a.img").write_bytes((outside / "a.img").read_bytes())
    assert resolver.resolve(allowed / "a.hdr").size == (2, 2)
    with pytest.raises(AccessDeniedError):
        resolver.resolve(outside / "a.hdr")


def test_cifti_is_named_and_refused() -> None:
    with pytest.raises(ImageLoadError) as err:
        load_image(Path(data_path) / "row_major.dconn.nii")
    assert "CIFTI-2" in err.value.message and "not supported" in err.value.message
    assert "Convert it to .nii" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("minc1_1_scale.mnc", "MINC1 volume (NetCDF)"), ("minc2_1_scale.mnc", "MINC2 volume (HDF5)")],
)
def test_minc_is_named_and_refused(name: str, kind: str) -> None:
    with pytest.raises(ImageLoadError) as err:
        load_image(Path(data_path) / name)
    assert kind in err.value.message and "not supported" in err.value.message
    assert "truncated or corrupt" not in str(err.value) and "mnc2nii" in err.value.fix
