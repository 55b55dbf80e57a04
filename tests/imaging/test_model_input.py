"""The model-input path: grey images stay single-channel until after the resize, and
the pixels the model gets are byte-identical to the full-size RGB path they replace.

The references below are the earlier implementation, written out: window with
``nan_to_num`` + ``clip``, expand grey to three channels at full size, build an RGB PIL
image, resize it bicubic.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from medmo_agent.imaging import apply_window, load_image, to_png_bytes
from medmo_agent.imaging.geometry import model_input_size
from medmo_agent.types import ImageMeta, MedImage

from .conftest import png_bytes

# ----- the earlier behaviour, as reference -----


def reference_window(raw: np.ndarray, width: float, level: float) -> np.ndarray:
    """The earlier ``apply_window``."""
    low = level - width / 2.0
    out = (np.asarray(raw, dtype=np.float32) - low) * (255.0 / width)
    out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def reference_model_input(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The earlier model input: the full-size RGB rendering, resized in RGB."""
    pil = Image.fromarray(rgb, mode="RGB")
    return pil.resize(size, Image.Resampling.BICUBIC) if pil.size != size else pil


def as_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def sizes_for(width: int, height: int) -> list[tuple[int, int]]:
    """Native size, the default model budget, a downscale and an odd upscale."""
    return [
        (width, height),
        model_input_size((width, height)),
        model_input_size((width, height), min_pixels=4096, max_pixels=16384),
        (width * 2 + 3, height + 17),
    ]


def assert_same_model_input(image: MedImage, rgb: np.ndarray) -> None:
    for size in sizes_for(*image.size):
        ours = image.model_input(size)
        theirs = reference_model_input(rgb, size)
        assert ours.mode == "RGB" and ours.size == size
        assert ours.tobytes() == theirs.tobytes(), f"model input differs at {size}"


# ----- inputs -----


def write_ct(path: Path, rows: int = 200, cols: int = 300, photometric: str = "MONOCHROME2"):
    """A 16-bit CT slice with rescale slope/intercept (HU), noisy, non-square."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:rows, 0:cols] / max(rows, cols) - 0.4
    hu = np.where(np.hypot(xx, yy) < 0.3, 40.0, -1000.0) + rng.normal(0, 60, (rows, cols))
    stored = np.clip(np.rint((hu + 1024.0) / 0.5), 0, 65535).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# ----- byte-identical model inputs -----


@pytest.mark.parametrize("window", [(400.0, 40.0), (1500.0, -600.0), "auto"])
def test_grey_dicom_model_input_is_byte_identical_to_the_rgb_path(tmp_path, window) -> None:
    path = write_ct(tmp_path / "ct.dcm")
    image = load_image(path, window=window)
    assert image.gray is not None  # stored single-channel: the fast path is taken

    ds = pydicom.dcmread(path)
    from pydicom.pixels import apply_modality_lut

    raw = apply_modality_lut(ds.pixel_array, ds)
    rgb = as_rgb(reference_window(raw, image.meta.window.width, image.meta.window.level))
    assert np.array_equal(image.pixels, rgb)
    assert image.to_pil().tobytes() == Image.fromarray(rgb, mode="RGB").tobytes()
    assert_same_model_input(image, rgb)


def test_monochrome1_dicom_model_input_is_inverted_and_byte_identical(tmp_path) -> None:
    path = write_ct(tmp_path / "cr.dcm", photometric="MONOCHROME1")
    image = load_image(path, window=(400, 40))
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(path)
    rgb = as_rgb(255 - reference_window(apply_modality_lut(ds.pixel_array, ds), 400, 40))
    assert_same_model_input(image, rgb)


def test_16bit_png_model_input_is_byte_identical_to_the_rgb_path(tmp_path) -> None:
    rng = np.random.default_rng(3)
    values = (np.linspace(300, 3800, 257)[None, :] + rng.normal(0, 40, (131, 257))).astype(
        np.uint16
    )
    path = tmp_path / "xr16.png"
    Image.fromarray(values).save(path)  # mode I;16
    image = load_image(path)
    assert image.gray is not None and image.raw is not None

    raw = np.asarray(Image.open(path))
    lo, hi = float(raw.min()), float(raw.max())
    rgb = as_rgb(reference_window(raw, hi - lo, lo + (hi - lo) / 2))
    assert np.array_equal(image.pixels, rgb)
    assert_same_model_input(image, rgb)


def test_8bit_grey_png_model_input_is_byte_identical_to_the_rgb_path(tmp_path) -> None:
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (97, 211), dtype=np.uint8)
    path = tmp_path / "grey.png"
    path.write_bytes(png_bytes(grey))
    image = load_image(path)
    assert image.gray is not None and image.raw is None
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(image.pixels, rgb)
    assert_same_model_input(image, rgb)


def test_rgb_png_model_input_is_byte_identical_to_the_rgb_path(tmp_path) -> None:
    rng = np.random.default_rng(11)
    colour = rng.integers(0, 256, (89, 143, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(colour))
    image = load_image(path)
    assert image.gray is None
    assert np.array_equal(image.pixels, colour)
    assert_same_model_input(image, colour)


def test_nifti_slices_are_stored_grey_and_read_as_rgb(tmp_path) -> None:
    nib = pytest.importorskip("nibabel")
    vol = np.random.default_rng(2).normal(0, 300, (40, 30, 5)).astype(np.float32)
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    image = load_image(path, window=(400, 40))
    assert image.gray is not None and image.gray.ndim == 2
    rgb = as_rgb(reference_window(image.raw, 400, 40))
    assert np.array_equal(image.pixels, rgb)
    assert_same_model_input(image, rgb)


# ----- windowing: the in-place version gives the earlier values exactly -----


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(
        st.sampled_from([np.float64, np.float32, np.float16]),
        hnp.array_shapes(max_dims=2, max_side=12),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=16),
    ),
    width=st.floats(1e-6, 1e6),
    level=st.floats(-1e5, 1e5),
)
def test_apply_window_equals_the_earlier_nan_scrubbing_version_on_floats(
    values, width, level
) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.array_equal(
            apply_window(values, width, level), reference_window(values, width, level)
        )


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(
        st.sampled_from([np.uint8, np.int16, np.uint16, np.int32, np.int64]),
        hnp.array_shapes(max_dims=2, max_side=12),
    ),
    width=st.floats(1e-3, 1e5),
    level=st.floats(-5e4, 5e4),
)
def test_apply_window_equals_the_earlier_version_on_integers(values, width, level) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.array_equal(
            apply_window(values, width, level), reference_window(values, width, level)
        )


def test_apply_window_special_values_match_the_earlier_version() -> None:
    raw = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, -0.0, 39.5, 40.5, 240.0])
    with np.errstate(over="ignore"):  # 1e300 does not fit float32: it becomes inf
        ours, theirs = apply_window(raw, 400, 40), reference_window(raw, 400, 40)
    assert np.array_equal(ours, theirs)
    assert list(ours) == [0, 255, 0, 255, 0, 102, 127, 128, 255]


def test_apply_window_leaves_its_input_untouched() -> None:
    raw = np.array([[-1000.0, 40.0, np.nan]], dtype=np.float32)
    before = raw.copy()
    apply_window(raw, 400, 40)
    assert np.array_equal(raw, before, equal_nan=True)


# ----- MedImage with a grey rendering -----


def grey_image(gray: np.ndarray) -> MedImage:
    meta = ImageMeta(source="inline", format="png", original_size=(gray.shape[1], gray.shape[0]))
    return MedImage(gray, meta)


def test_grey_medimage_reads_as_rgb_with_equal_channels() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = grey_image(gray)
    assert image.size == (4, 3)
    assert image.pixels.shape == (3, 4, 3) and image.pixels.dtype == np.uint8
    assert all(np.array_equal(image.pixels[..., c], gray) for c in range(3))
    assert image.pixels is image.pixels  # expanded once, then cached
    pil = image.to_pil()
    assert pil.mode == "RGB" and np.array_equal(np.asarray(pil), image.pixels)


def test_assigning_rgb_pixels_replaces_the_grey_rendering() -> None:
    image = grey_image(np.zeros((2, 2), dtype=np.uint8))
    red = np.zeros((2, 2, 3), dtype=np.uint8)
    red[..., 0] = 255
    image.pixels = red
    assert image.gray is None
    assert np.array_equal(np.asarray(image.model_input((2, 2))), red)


def test_dataclass_replace_keeps_the_pixels() -> None:
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    copy = dataclasses.replace(grey_image(gray), handle="h")
    assert copy.handle == "h" and np.array_equal(copy.pixels, as_rgb(gray))


def test_png_of_a_grey_image_is_single_channel_and_lossless() -> None:
    gray = np.random.default_rng(1).integers(0, 256, (20, 30), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(to_png_bytes(grey_image(gray))))
    assert decoded.mode == "L" and np.array_equal(np.asarray(decoded), gray)
