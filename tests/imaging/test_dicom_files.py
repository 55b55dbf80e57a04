"""DICOM files that used to be misdiagnosed or over-read: a missing Transfer Syntax UID,
a malformed Number of Frames, big-endian palettes, deflated datasets and huge private
elements."""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.filewriter import dcmwrite
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from medmo_agent.config import Settings
from medmo_agent.errors import ImageLoadError, ImageTooLargeError
from medmo_agent.imaging import load_image

from .conftest import pydicom_file


def _without_transfer_syntax(name: str, tmp_path: Path) -> Path:
    """The file as Explicit VR Little Endian, its (0002,0010) element cut out of the bytes
    (and the meta group length fixed), as some writers leave it."""
    ds = pydicom.dcmread(pydicom_file(name))
    buf = io.BytesIO()
    dcmwrite(buf, ds, implicit_vr=False, little_endian=True)
    data = buf.getvalue()
    at = data.index(b"\x02\x00\x10\x00UI")
    length = 8 + struct.unpack("<H", data[at + 6 : at + 8])[0]
    data = data[:at] + data[at + length :]
    group = data.index(b"\x02\x00\x00\x00UL")
    (old,) = struct.unpack("<I", data[group + 8 : group + 12])
    data = data[: group + 8] + struct.pack("<I", old - length) + data[group + 12 :]
    out = tmp_path / f"nosyntax-{name}"
    out.write_bytes(data)
    return out


def test_a_file_missing_only_its_transfer_syntax_loads(tmp_path: Path) -> None:
    for name in ("examples_palette.dcm", "CT_small.dcm"):
        reference = load_image(pydicom_file(name))
        path = _without_transfer_syntax(name, tmp_path)
        assert "TransferSyntaxUID" not in pydicom.dcmread(path, force=True).file_meta
        image = load_image(path)
        assert np.array_equal(image.pixels, reference.pixels), name


def test_a_file_missing_its_transfer_syntax_and_pixel_attributes_says_which() -> None:
    with pytest.raises(ImageLoadError) as err:
        load_image(pydicom_file("meta_missing_tsyntax.dcm"))
    text = err.value.message
    assert "Rows (0028,0010)" in text and "truncated or corrupt" not in text


def test_a_malformed_number_of_frames_is_worked_out_from_the_pixel_data() -> None:
    path = pydicom_file("badVR.dcm")
    assert str(pydicom.dcmread(path)["NumberOfFrames"].value) == "1A"
    ds = pydicom.dcmread(path)
    frames = len(ds.PixelData) // (10 * 10 * ds.BitsAllocated // 8)
    assert frames == 15
    image = load_image(path)
    assert image.meta.num_frames == 15 and image.meta.frame == 7 and image.size == (10, 10)


def test_a_malformed_number_of_frames_that_the_data_cannot_explain_is_named(
    tmp_path: Path,
) -> None:
    ds = pydicom.dcmread(pydicom_file("badVR.dcm"))
    ds.PixelData = ds.PixelData[:-7]  # no whole number of frames any more
    path = tmp_path / "bad.dcm"
    ds.save_as(path)
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert "Number of Frames (0028,0008)" in err.value.message
    assert "invalid literal" not in str(err.value)


def _big_endian_palette(tmp_path: Path) -> Path:
    """examples_palette.dcm as Explicit VR Big Endian: OW LUT words swapped, as a
    big-endian writer stores them (the 8-bit pixels are written as OB)."""
    ds = pydicom.dcmread(pydicom_file("examples_palette.dcm"))
    for colour in ("Red", "Green", "Blue"):
        key = f"{colour}PaletteColorLookupTableData"
        ds[key].value = np.frombuffer(ds[key].value, "<u2").astype(">u2").tobytes()
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    path = tmp_path / "palette_be.dcm"
    dcmwrite(path, ds, implicit_vr=False, little_endian=False)
    return path


def test_a_big_endian_palette_file_renders_like_its_little_endian_original(
    tmp_path: Path,
) -> None:
    reference = load_image(pydicom_file("examples_palette.dcm"))
    path = _big_endian_palette(tmp_path)
    assert pydicom.dcmread(path).original_encoding == (False, False)
    image = load_image(path)
    assert image.pixels.mean() > 10  # it used to come out nearly black
    assert np.array_equal(image.pixels, reference.pixels)


def _ct_with_private_blob(size: int) -> pydicom.Dataset:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.add_new(0x00110010, "LO", "BLOB CREATOR")
    ds.add_new(0x00111001, "OB", bytes(size))
    return ds


def test_a_huge_private_element_is_never_read_into_memory(tmp_path: Path) -> None:
    path = tmp_path / "blob.dcm"
    _ct_with_private_blob(64 << 20).save_as(path)
    reference = load_image(pydicom_file("CT_small.dcm"))
    tracemalloc.start()
    try:
        image = load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(image.pixels, reference.pixels)
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB while loading"


def _deflated(ds: pydicom.Dataset, path: Path) -> Path:
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dcmwrite(path, ds, implicit_vr=False, little_endian=True)
    return path


def test_a_deflated_file_is_inflated_only_up_to_the_byte_cap(tmp_path: Path) -> None:
    path = _deflated(_ct_with_private_blob(48 << 20), tmp_path / "bomb.dcm")
    assert path.stat().st_size < 1 << 20  # a small file that expands 50-fold
    small = Settings(max_image_bytes=8 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError) as err:
            load_image(path, settings=small)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "deflated" in err.value.message and "max_image_bytes" in err.value.message
    assert "MEDMO_MAX_IMAGE_BYTES" in err.value.fix
    assert peak < 4 << 20, f"peak {peak / 2**20:.0f} MiB while inflating"


def test_a_deflated_file_with_a_large_private_element_loads_without_holding_it(
    tmp_path: Path,
) -> None:
    path = _deflated(_ct_with_private_blob(48 << 20), tmp_path / "dfl.dcm")
    reference = load_image(pydicom_file("CT_small.dcm"))
    tracemalloc.start()
    try:
        image = load_image(path)  # the default cap (512 MiB) lets it expand
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(image.pixels, reference.pixels)
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB while loading"


def test_pydicoms_deflated_example_still_loads() -> None:
    image = load_image(pydicom_file("image_dfl.dcm"))
    assert image.size == (512, 512)
    assert pydicom.dcmread(pydicom_file("image_dfl.dcm")).file_meta.TransferSyntaxUID == (
        DeflatedExplicitVRLittleEndian
    )


def test_an_explicit_little_endian_copy_matches_the_deflated_original(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("image_dfl.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "plain.dcm"
    dcmwrite(path, ds, implicit_vr=False, little_endian=True)
    assert np.array_equal(load_image(path).pixels, load_image(pydicom_file("image_dfl.dcm")).pixels)
