"""Single DICOM files: pydicom's bundled real examples plus synthetic edge cases."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import examples

from medmo_agent.config import Settings
from medmo_agent.errors import ImageLoadError, ImageTooLargeError, InputError
from medmo_agent.imaging import apply_window, load_image

from .conftest import pydicom_file

CT = str(examples.get_path("ct"))
MR = str(examples.get_path("mr"))


def test_ct_raw_values_are_hounsfield_units() -> None:
    img = load_image(CT)
    assert img.meta.format == "dicom" and img.meta.modality == "CT"
    assert img.raw is not None and img.raw.shape == (128, 128)
    assert img.raw[:8, :8].mean() < -700 and img.raw[:8, -8:].mean() < -700  # air at the top
    assert -200 < float(np.median(img.raw)) < 200  # mostly soft tissue
    assert img.raw.min() >= -1024 and img.raw.max() < 3100
    stored = pydicom.dcmread(CT).pixel_array
    assert np.array_equal(img.raw, stored * 1.0 - 1024)  # RescaleIntercept -1024
    assert img.meta.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert img.meta.original_size == (128, 128)
    assert img.meta.bits_stored == 16 and img.meta.photometric == "MONOCHROME2"


def test_ct_without_file_window_uses_auto_and_presets_render_differently() -> None:
    auto = load_image(CT)
    assert auto.meta.window.name == "auto"
    lung = load_image(CT, window="lung")
    bone = load_image(CT, window="bone")
    assert (lung.meta.window.width, lung.meta.window.level) == (1500, -600)
    assert (bone.meta.window.width, bone.meta.window.level) == (2000, 500)
    assert np.array_equal(lung.pixels[..., 0], apply_window(lung.raw, 1500, -600))
    assert np.array_equal(bone.pixels[..., 0], apply_window(bone.raw, 2000, 500))
    # the lung window lifts air-filled regions that the bone window leaves black
    air = lung.raw < -700
    assert lung.pixels[..., 0][air].mean() > 20 and bone.pixels[..., 0][air].max() == 0


def test_width_level_string_and_tuple_are_the_same_window() -> None:
    a = load_image(CT, window="400/40")
    b = load_image(CT, window=(400, 40))
    assert np.array_equal(a.pixels, b.pixels)
    assert a.meta.window.width == 400 and a.meta.window.level == 40


def test_unknown_window_is_an_input_error_listing_presets() -> None:
    with pytest.raises(InputError) as err:
        load_image(CT, window="lungs please")
    assert "mediastinum" in err.value.fix


def test_mr_uses_the_files_own_window() -> None:
    img = load_image(MR)
    ds = pydicom.dcmread(MR)
    assert img.meta.window.name == "file"
    assert img.meta.window.width == float(ds.WindowWidth)
    assert img.meta.window.level == float(ds.WindowCenter)
    assert img.meta.modality == "MR"


def test_monochrome1_renders_inverted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    normal, inverted = load_image(MR), load_image(path)
    assert np.array_equal(inverted.raw, normal.raw)  # values unchanged
    assert np.array_equal(inverted.pixels, 255 - normal.pixels)
    assert inverted.meta.photometric == "MONOCHROME1"


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]
)
def test_lossless_compressed_files_decode_to_the_uncompressed_values(name: str) -> None:
    img = load_image(pydicom_file(name))
    assert np.array_equal(img.raw, load_image(MR).raw)


def test_ybr_jpeg_converts_to_the_same_colours_as_rgb() -> None:
    rgb = load_image(pydicom_file("SC_rgb_rle.dcm")).pixels
    ybr = load_image(pydicom_file("SC_rgb_jpeg_dcmtk.dcm")).pixels  # YBR_FULL, lossy JPEG
    assert tuple(rgb[0, 50]) == (255, 0, 0)
    assert np.abs(rgb.astype(int) - ybr).mean() < 2


def test_rgb_and_palette_images_render_in_colour() -> None:
    for path in (examples.get_path("rgb_color"), examples.get_path("palette_color")):
        img = load_image(path)
        assert img.raw is None and img.meta.window is None
        spread = np.abs(img.pixels[..., 0].astype(int) - img.pixels[..., 1]).max()
        assert spread > 50, path


def test_multiframe_defaults_to_middle_frame_and_checks_range() -> None:
    path = examples.get_path("ybr_color")  # 30 frames, JPEG baseline, YBR_FULL_422
    img = load_image(path)
    assert (img.meta.frame, img.meta.num_frames) == (15, 30)
    first = load_image(path, frame=0)
    assert not np.array_equal(first.pixels, img.pixels)
    with pytest.raises(ImageLoadError, match="between 0 and 29"):
        load_image(path, frame=30)


def test_the_volume_handle_renders_other_frames_and_windows_without_rereading() -> None:
    img = load_image(pydicom_file("SC_rgb_rle_2frame.dcm"))
    assert (img.meta.frame, img.meta.num_frames) == (1, 2)
    other = img.volume.render(frame=0)
    assert other.meta.frame == 0 and other.volume is img.volume
    ct = load_image(CT)
    lung = ct.volume.render(window="lung")
    assert lung.meta.window.name == "lung" and np.array_equal(lung.raw, ct.raw)


def test_undecodable_compressed_file_names_syntax_and_package() -> None:
    # pydicom's own example of a JPEG Extended file that only GDCM decodes
    with pytest.raises(ImageLoadError) as err:
        load_image(pydicom_file("JPEG-lossy.dcm"))
    assert "JPEG Extended" in err.value.message
    assert "pip install" in err.value.fix
    assert err.value.__cause__ is not None


def test_missing_jpeg2000_plugin_tells_which_package_to_install() -> None:
    script = (
        "from pydicom.pixels.decoders import JPEG2000LosslessDecoder as D\n"
        "for p in list(D.available_plugins): D.remove_plugin(p)\n"
        "from medmo_agent.errors import ImageLoadError\n"
        "from medmo_agent.imaging import load_image\n"
        "from pydicom.data import get_testdata_file\n"
        "try:\n"
        "    load_image(get_testdata_file('MR_small_jp2klossless.dcm'))\n"
        "except ImageLoadError as e:\n"
        "    print(e.fix)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "pylibjpeg-openjpeg" in out.stdout


def test_truncated_pixel_data_is_reported_as_corrupt() -> None:
    with pytest.raises(ImageLoadError, match="truncated or corrupt") as err:
        load_image(pydicom_file("MR_truncated.dcm"))
    assert "MR_truncated.dcm" in str(err.value)
    assert "incorrect. Fix: Re-export" in str(err.value)  # the decoder's words end a sentence
    assert err.value.__cause__ is not None


def test_file_cut_inside_its_header_is_an_image_load_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.dcm"
    path.write_bytes(Path(CT).read_bytes()[:300])
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert "cut short" in str(err.value)


def test_dicom_without_pixels_says_so() -> None:
    with pytest.raises(ImageLoadError, match="no image pixels"):
        load_image(examples.get_path("rt_plan"))


def test_header_dimensions_are_checked_before_decoding(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    ds.Rows, ds.Columns = 40_000, 40_000  # pixel data stays 128x128: decoding would fail
    path = tmp_path / "bomb.dcm"
    ds.save_as(path)
    with pytest.raises(ImageTooLargeError, match="40000x40000"):
        load_image(path)
    with pytest.raises(ImageTooLargeError):
        load_image(CT, settings=Settings(max_image_pixels=128 * 127))


def test_dicom_is_detected_by_content_from_bytes_uri_or_misnamed_file(tmp_path: Path) -> None:
    data = Path(CT).read_bytes()
    misnamed = tmp_path / "scan.png"
    misnamed.write_bytes(data)
    uri = "data:application/dicom;base64," + base64.b64encode(data).decode()
    for source in (data, uri, misnamed):
        img = load_image(source)
        assert img.meta.format == "dicom" and img.meta.modality == "CT"
    assert load_image(data).meta.source == "inline"


def test_slice_on_a_single_file_points_to_frame() -> None:
    with pytest.raises(ImageLoadError, match="frame="):
        load_image(CT, slice=2)


def test_voi_lut_sequence_is_used_when_the_file_has_no_window(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset

    ds = pydicom.dcmread(MR)
    del ds.WindowCenter
    del ds.WindowWidth
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    inverting = (4095 - np.arange(4096)).astype("<u2").tobytes()
    item.add_new(0x00283006, "OW", inverting)  # LUTData
    ds.VOILUTSequence = [item]
    path = tmp_path / "voilut.dcm"
    ds.save_as(path)
    img = load_image(path)
    assert img.meta.window.name == "file"
    raw = img.raw.astype(float)
    gray = img.pixels[..., 0].astype(float)
    # inverted: the brightest stored value is now the darkest pixel and vice versa
    assert gray[raw == raw.max()].max() < gray[raw == raw.min()].min()
