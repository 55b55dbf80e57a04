"""The pixel cap on every page of a multi-page image, and Pillow's own refusal told in
our terms."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from medmo_agent.config import Settings
from medmo_agent.errors import ImageTooLargeError
from medmo_agent.imaging import load_image

from .conftest import png_bytes


@pytest.fixture(scope="module")
def tiff_with_a_huge_second_page() -> bytes:
    """Page 0 is 8x8; page 1 is 13000x13000 (169 Mpx) but compresses to a few KB."""
    buf = io.BytesIO()
    small = Image.new("L", (8, 8), 50)
    small.save(
        buf,
        format="TIFF",
        save_all=True,
        append_images=[Image.new("1", (13000, 13000))],
        compression="tiff_deflate",
    )
    return buf.getvalue()


def test_a_later_tiff_page_over_the_pixel_cap_is_refused_before_decoding(
    tiff_with_a_huge_second_page: bytes, monkeypatch
) -> None:
    data = tiff_with_a_huge_second_page
    assert len(data) < 100_000
    assert load_image(data).size == (8, 8)  # page 0 is fine
    decoded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    assert load_image(data).size == (8, 8) and (8, 8) in decoded  # the spy sees decodes
    decoded.clear()
    with pytest.raises(ImageTooLargeError) as err:
        load_image(data, frame=1)
    assert "page 1" in err.value.message and "13000x13000" in err.value.message
    assert "max_image_pixels" in err.value.message and "MEDMO_MAX_IMAGE_PIXELS" in err.value.fix
    assert decoded == []


def test_pillows_own_bomb_error_names_our_limit(monkeypatch) -> None:
    data = png_bytes(np.zeros((100, 100), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses > 2000 pixels
    with pytest.raises(ImageTooLargeError) as err:
        load_image(data, settings=Settings(max_image_pixels=10**9))
    text = str(err.value)
    assert "Pillow" in text and "max_image_pixels" in text and "MEDMO_MAX_IMAGE_PIXELS" in text
    assert "DecompressionBomb" not in text and "could be decompression bomb DOS" not in text
