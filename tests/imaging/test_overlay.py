"""Box overlays and small PNG encoding for tool results."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from medmo_agent.imaging import PALETTE, draw_boxes, label_colours, load_image, to_png_bytes
from medmo_agent.types import Box

from .conftest import png_bytes


def _gray(size=(200, 100), value=90):
    w, h = size
    return load_image(png_bytes(np.full((h, w), value, dtype=np.uint8)))


def test_each_label_gets_its_own_colour_in_order_of_appearance() -> None:
    colours = label_colours(["nodule", "mass", "nodule", "effusion"])
    assert colours == {"nodule": PALETTE[0], "mass": PALETTE[1], "effusion": PALETTE[2]}


def test_boxes_are_drawn_in_their_label_colour_on_a_copy() -> None:
    img = _gray()
    boxes = [
        Box.from_pixels("nodule", (20, 40, 60, 90), img.size),
        Box.from_pixels("mass", (120, 40, 180, 90), img.size),
    ]
    before = img.pixels.copy()
    out = draw_boxes(img, boxes)
    arr = np.asarray(out)
    assert out.size == img.size
    assert np.array_equal(img.pixels, before)  # input untouched
    assert tuple(arr[70, 20]) == PALETTE[0]  # left edge of the nodule box
    assert tuple(arr[70, 120]) == PALETTE[1]  # left edge of the mass box
    assert tuple(arr[70, 90]) == (90, 90, 90)  # between boxes: untouched


def test_label_text_sits_on_a_filled_background_above_the_box() -> None:
    img = _gray((400, 300))
    out = np.asarray(draw_boxes(img, [Box.from_pixels("lesion", (100, 150, 300, 250), img.size)]))
    band = out[136:149, 100:140]  # just above the box's top-left corner
    colour = np.array(PALETTE[0])
    assert (np.abs(band.astype(int) - colour).sum(axis=2) == 0).mean() > 0.4  # label fill
    assert (band.sum(axis=2) > 600).any() or (band.sum(axis=2) < 60).any()  # ink


def test_max_size_downscales_and_scales_boxes_with_it() -> None:
    img = _gray((1000, 500))
    out = draw_boxes(img, [Box.from_pixels("x", (500, 250, 900, 450), img.size)], max_size=200)
    assert out.size == (200, 100)
    arr = np.asarray(out)
    assert tuple(arr[70, 100]) == PALETTE[0]  # box left edge at 500 * 0.2 = 100


def test_draw_boxes_accepts_pil_images_and_no_boxes() -> None:
    pil = Image.new("L", (30, 20), 7)
    out = draw_boxes(pil, [])
    assert out.mode == "RGB" and out.size == (30, 20)


def test_overlay_png_of_a_large_noisy_image_stays_small() -> None:
    rng = np.random.default_rng(0)
    big = load_image(png_bytes(rng.integers(0, 256, (2048, 2048), dtype=np.uint8)))
    boxes = [
        Box.from_pixels(f"finding {i}", (100 * i, 100 * i, 100 * i + 300, 100 * i + 200), big.size)
        for i in range(8)
    ]
    # Noise is the worst case for PNG; the byte budget must hold anyway.
    data = to_png_bytes(draw_boxes(big, boxes), max_side=1024, max_bytes=400_000)
    assert len(data) <= 400_000
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG" and decoded.mode == "RGB"
    assert 128 < decoded.width <= 1024 and decoded.width == decoded.height


def test_grayscale_renderings_are_encoded_as_one_channel() -> None:
    img = _gray((64, 32))
    decoded = Image.open(io.BytesIO(to_png_bytes(img)))
    assert decoded.mode == "L"
    assert np.array_equal(np.asarray(decoded), img.pixels[..., 0])


def test_to_png_bytes_keeps_aspect_ratio_and_small_images_unchanged() -> None:
    img = _gray((300, 100))
    small = Image.open(io.BytesIO(to_png_bytes(img, max_side=150)))
    assert small.size == (150, 50)
    same = Image.open(io.BytesIO(to_png_bytes(img, max_side=1000)))
    assert same.size == (300, 100)
