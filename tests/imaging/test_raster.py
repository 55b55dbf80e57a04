"""Ordinary raster images: PNG, JPEG, TIFF, BMP, WebP, through load_image."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo_agent.config import Settings
from medmo_agent.errors import ImageLoadError, ImageTooLargeError
from medmo_agent.imaging import load_image

from .conftest import png_bytes


def test_grayscale_png_becomes_rgb_with_equal_channels(gradient_png: Path) -> None:
    img = load_image(gradient_png)
    assert img.pixels.shape == (32, 64, 3)
    assert img.pixels.dtype == np.uint8
    assert (img.pixels[..., 0] == img.pixels[..., 2]).all()
    assert img.pixels[0, 0, 0] == 0 and img.pixels[0, -1, 0] == 255
    assert img.meta.format == "png"
    assert img.meta.original_size == (64, 32)
    assert img.meta.source == str(gradient_png)
    assert img.raw is None


def test_rgba_png_is_composited_on_black() -> None:
    arr = np.zeros((2, 3, 4), dtype=np.uint8)
    arr[0, 0] = (200, 100, 50, 255)  # opaque
    arr[0, 1] = (200, 100, 50, 0)  # transparent
    arr[0, 2] = (200, 100, 50, 128)  # half
    img = load_image(png_bytes(arr, "RGBA"))
    assert tuple(img.pixels[0, 0]) == (200, 100, 50)
    assert tuple(img.pixels[0, 1]) == (0, 0, 0)
    assert tuple(img.pixels[0, 2]) == pytest.approx((100, 50, 25), abs=1)
    assert img.meta.source == "inline"


def test_palette_png_expands_to_its_colours() -> None:
    pal = Image.new("P", (4, 4))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.putpixel((1, 1), 1)
    pal.putpixel((2, 2), 2)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    img = load_image(buf.getvalue())
    assert tuple(img.pixels[1, 1]) == (255, 0, 0)
    assert tuple(img.pixels[2, 2]) == (0, 0, 255)
    assert tuple(img.pixels[0, 0]) == (0, 0, 0)


def test_16bit_tiff_keeps_raw_values_and_spans_full_8bit_range(tmp_path: Path) -> None:
    raw = np.linspace(1000, 4000, 40 * 30).reshape(30, 40).astype(np.uint16)
    path = tmp_path / "scan.tif"
    Image.fromarray(raw).save(path)
    img = load_image(path)
    assert img.raw is not None and img.raw.dtype == np.uint16
    assert int(img.raw.min()) == 1000 and int(img.raw.max()) == 4000
    assert img.pixels.min() == 0 and img.pixels.max() == 255
    assert img.meta.format == "tiff" and img.meta.bits_stored == 16
    assert img.meta.window is not None and img.meta.window.name == "range"


def test_explicit_window_applies_to_16bit_tiff(tmp_path: Path) -> None:
    raw = np.array([[1000, 2000, 3000]], dtype=np.uint16)
    path = tmp_path / "scan.tiff"
    Image.fromarray(raw).save(path)
    img = load_image(path, window=(1000, 2000))  # 1500..2500
    assert list(img.pixels[0, :, 0]) == [0, 128, 255]
    assert img.meta.window.width == 1000 and img.meta.window.level == 2000


def test_content_wins_over_a_misleading_extension(tmp_path: Path) -> None:
    path = tmp_path / "actually_jpeg.png"
    Image.new("RGB", (20, 10), (120, 30, 200)).save(path, format="JPEG", quality=95)
    img = load_image(path)
    assert img.meta.format == "jpeg"
    assert np.abs(img.pixels.astype(int) - (120, 30, 200)).max() < 8


@pytest.mark.parametrize("fmt", ["BMP", "WEBP", "TIFF"])
def test_lossless_formats_round_trip_rgb_pixels(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
    path = tmp_path / f"img.{fmt.lower()}"
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(arr).save(path, format=fmt, **kwargs)
    img = load_image(path)
    assert np.array_equal(img.pixels, arr)
    assert img.meta.format == fmt.lower()


def test_data_uri_gives_the_same_pixels_as_the_file(gradient_png: Path) -> None:
    uri = "data:image/png;base64," + base64.b64encode(gradient_png.read_bytes()).decode()
    assert np.array_equal(load_image(uri).pixels, load_image(gradient_png).pixels)


def test_malformed_data_uri_is_refused_with_a_fix() -> None:
    with pytest.raises(ImageLoadError, match="data URI") as err:
        load_image("data:image/png,notbase64")
    assert "base64" in err.value.fix


def test_multipage_tiff_frame_selection_and_range_error(tmp_path: Path) -> None:
    pages = [Image.new("L", (8, 8), v) for v in (10, 20, 30)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert load_image(path).pixels[0, 0, 0] == 10
    second = load_image(path, frame=2)
    assert second.pixels[0, 0, 0] == 30
    assert (second.meta.frame, second.meta.num_frames) == (2, 3)
    with pytest.raises(ImageLoadError, match="between 0 and 2"):
        load_image(path, frame=3)


def _png_with_header_size(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    iend = b"IEND"
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + crc
        + struct.pack(">I", 0)
        + iend
        + struct.pack(">I", zlib.crc32(iend) & 0xFFFFFFFF)
    )


def test_png_claiming_huge_dimensions_is_refused_before_decoding(tmp_path: Path) -> None:
    # The file holds no pixel data at all: decoding would fail as truncated, so only a
    # header check can raise ImageTooLargeError.
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_header_size(12_000, 12_000))  # 144 Mpx in ~60 bytes
    with pytest.raises(ImageTooLargeError, match="12000x12000"):
        load_image(path)


def test_png_beyond_pillows_own_limit_is_also_too_large(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_header_size(50_000, 50_000))
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(path, settings=Settings(max_image_pixels=10**10))


def test_pixel_cap_comes_from_settings(gradient_png: Path) -> None:
    with pytest.raises(ImageTooLargeError, match="pixel cap"):
        load_image(gradient_png, settings=Settings(max_image_pixels=1000))
    assert load_image(gradient_png, settings=Settings(max_image_pixels=64 * 32)).size == (64, 32)


def test_byte_cap_refuses_big_files_before_reading(gradient_png: Path) -> None:
    with pytest.raises(ImageTooLargeError, match="byte cap") as err:
        load_image(gradient_png, settings=Settings(max_image_bytes=10))
    assert "MEDMO_MAX_IMAGE_BYTES" in err.value.fix


def test_truncated_png_names_the_file_and_chains_the_cause(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (200, 200), dtype=np.uint8)
    data = png_bytes(arr)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert "truncated or corrupt" in err.value.message
    assert err.value.__cause__ is not None


def test_unknown_content_names_the_readers_tried(tmp_path: Path) -> None:
    path = tmp_path / "notes.xyz"
    path.write_text("this is not an image at all " * 20)
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert "dicom" in err.value.message and "nifti" in err.value.message
    assert "Pillow" in err.value.message
    assert "DICOM" in err.value.fix


def test_missing_file_is_an_image_load_error(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="No such file"):
        load_image(tmp_path / "nope.png")


def test_slice_on_a_2d_image_is_refused(gradient_png: Path) -> None:
    with pytest.raises(ImageLoadError, match="no slice 3"):
        load_image(gradient_png, slice=3)
