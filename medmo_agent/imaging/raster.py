"""Reader for ordinary raster images (PNG, JPEG, TIFF, BMP, WebP, GIF) through Pillow.

- 8-bit grayscale, palette, RGB and CMYK images are shown as they are (JPEG EXIF rotation
  applied, as a phone photo of a film needs). Grayscale ones stay single-channel inside
  the :class:`~medmo_agent.types.MedImage` (it reads as RGB), so no full-size RGB copy is
  made before the image is resized for the model.
- RGBA/LA are composited on black (transparent areas read as background, as on a viewer).
- 16-bit and float grayscale (TIFF, PNG) keep their values in ``MedImage.raw``; with no
  window they are scaled by their own min and max (a 12-bit image stored in 16 bits would
  look almost black if scaled by the full 16-bit range); any window argument applies.
- Multi-page TIFF/GIF: ``frame`` picks the page (default 0).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import Settings
from ..errors import ImageLoadError, ImageTooLargeError
from ..types import ImageMeta, MedImage, WindowInfo
from .sources import Source
from .windowing import WindowSpec, parse_window, render_window

__all__ = ["read_raster"]

_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
#: Pixels converted per band (see ``_strips``): 1 Mpx, a few MB of temporaries.
_STRIP_PIXELS = 1 << 20


def read_raster(
    src: Source,
    settings: Settings,
    *,
    frame: int | None = None,
    window: str | tuple[float, float] | WindowSpec | None = None,
    fmt: str | None = None,
) -> MedImage:
    """Read a raster image into a :class:`MedImage`.

    Args:
        src: The opened source.
        settings: Supplies the pixel cap.
        frame: Page of a multi-page TIFF/GIF (default 0).
        window: Window for high-bit-depth grayscale (see :mod:`.windowing`).
        fmt: The detected format name, used in metadata.

    Raises:
        ImageTooLargeError: Dimensions over ``settings.max_image_pixels`` (checked from the
            header, before decoding).
        ImageLoadError: Not an image Pillow can read, truncated, or frame out of range.
    """
    spec = parse_window(window)
    stream = src.stream()
    fp = io.BufferedReader(stream) if isinstance(stream, io.RawIOBase) else stream
    try:
        with warnings.catch_warnings():
            # Our own cap (below) decides; Pillow's warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise _pillow_bomb(src, settings) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            f"{src.label} is not an image Pillow can read (tried reader: raster/Pillow).",
            input=src.label,
            fix="Use PNG, JPEG, TIFF, BMP or WebP, or a DICOM/NIfTI file.",
        ) from exc
    except OSError as exc:
        raise _corrupt(src, exc) from exc
    with im:
        _check_pixels(src, im.size, settings, page=None)
        num_frames = int(getattr(im, "n_frames", 1) or 1)
        index = 0 if frame is None else int(frame)
        if not 0 <= index < num_frames:
            raise ImageLoadError(
                f"Frame {index} is out of range for {src.label}, which has {num_frames} frame(s).",
                input=src.label,
                fix=f"Choose a frame between 0 and {num_frames - 1}.",
            )
        try:
            if index:
                im.seek(index)
                # each page has its own size: check it before decoding it
                _check_pixels(src, im.size, settings, page=index)
            im.load()
            if im.format == "JPEG":
                im = ImageOps.exif_transpose(im)
            pixels, raw, used = _render(im, spec)
            mode, fmt_name = im.mode, (fmt or (im.format or "image").lower())
        except Image.DecompressionBombError as exc:
            raise _pillow_bomb(src, settings) from exc
        except OSError as exc:
            raise _corrupt(src, exc) from exc
    meta = ImageMeta(
        source=src.label,
        format=fmt_name,
        original_size=(int(pixels.shape[1]), int(pixels.shape[0])),
        window=used,
        frame=index if num_frames > 1 else None,
        num_frames=num_frames if num_frames > 1 else None,
        bits_stored=16 if mode.startswith("I;16") else (32 if mode in ("I", "F") else 8),
        photometric=_photometric(mode),
    )
    return MedImage(pixels=pixels, meta=meta, raw=raw)


def _check_pixels(
    src: Source, size: tuple[int, int], settings: Settings, *, page: int | None
) -> None:
    width, height = size
    if width * height > settings.max_image_pixels:
        where = f"page {page} of {src.label}" if page is not None else src.label
        raise ImageTooLargeError(
            f"{where} is {width}x{height} = {width * height:,} pixels, over the "
            f"{settings.max_image_pixels:,}-pixel cap (max_image_pixels).",
            input=src.label,
        )


def _pillow_bomb(src: Source, settings: Settings) -> ImageTooLargeError:
    """Pillow's own decompression-bomb refusal, told in our terms."""
    limit = Image.MAX_IMAGE_PIXELS
    pillow = f"{2 * limit:,}" if limit else "its"
    return ImageTooLargeError(
        f"{src.label} has more pixels than the image library (Pillow) will decode "
        f"({pillow}-pixel limit); the cap here is {settings.max_image_pixels:,} pixels "
        "(max_image_pixels).",
        input=src.label,
        fix="Downscale or crop the image. Pillow's limit applies whatever "
        "MEDMO_MAX_IMAGE_PIXELS says; a trusted program can raise PIL.Image.MAX_IMAGE_PIXELS.",
    )


def _render(im: Image.Image, spec) -> tuple[np.ndarray, np.ndarray | None, WindowInfo | None]:
    """uint8 pixels, (H, W) for grayscale or (H, W, 3), plus raw values and the window."""
    mode = im.mode
    if mode in _HIGH_BIT_MODES:
        raw = _strips(im, None, 0)
        if raw.dtype.byteorder == ">":
            raw = raw.astype(raw.dtype.newbyteorder("="))
        if spec.mode == "file":
            lo, hi = float(np.nanmin(raw)), float(np.nanmax(raw))
            width = hi - lo if hi > lo else 1.0
            gray, used = render_window(raw, parse_window((width, lo + width / 2)))
            used = WindowInfo(name="range", width=used.width, level=used.level)
        else:
            gray, used = render_window(raw, spec)
        return gray, raw, used
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        return _strips(im, "RGBA", 3, _over_black), None, None
    if mode in ("L", "1") and spec.mode != "file":
        raw = _strips(im, "L", 1)
        gray, used = render_window(raw, spec)
        return gray, raw, used
    if mode in ("L", "1"):
        return _strips(im, "L", 1), None, None
    return _strips(im, "RGB", 3), None, None


def _over_black(rgba: np.ndarray) -> np.ndarray:
    """RGBA composited on black, in integers: round(c * a / 255) (no ties can occur)."""
    rgb = rgba[:, :, :3].astype(np.uint16)
    rgb *= rgba[:, :, 3:4]
    rgb += 127
    rgb //= 255
    return rgb


def _strips(im: Image.Image, mode: str | None, channels: int, fn=None) -> np.ndarray:
    """``im`` converted to ``mode`` as a uint8 array, a band of rows at a time.

    ``mode=None, channels=0`` copies the values as they are (high-bit-depth raw values).

    Converting the whole image at once would hold Pillow's decoded image, its
    converted copy, the bytes NumPy copies out of it and (for alpha) wider
    intermediates together: several times the image. Band by band, the only
    full-size buffers are Pillow's decoded image and the result. (``np.asarray`` of a
    whole Pillow image alone takes three times the image: its chunks, their join, and
    Pillow's own copy.)
    """
    width, height = im.size
    out: np.ndarray | None = None
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        band = im.crop((0, top, width, min(height, top + rows)))
        if mode is not None and band.mode != mode:
            band = band.convert(mode)
        values = np.asarray(band)
        if fn is not None:
            values = fn(values)
        if out is None:
            # uint8 for renderings; the band's own type for raw values (I;16, I, F)
            dtype = np.uint8 if channels else values.dtype
            shape = (height, width, channels) if (channels or 1) > 1 else (height, width)
            out = np.empty(shape, dtype=dtype)
        out[top : top + rows] = values
    assert out is not None
    return out


def _photometric(mode: str) -> str:
    if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"):
        return "RGB"
    return "MONOCHROME2"


def _corrupt(src: Source, exc: BaseException) -> ImageLoadError:
    return ImageLoadError(
        f"{src.label} could not be decoded (truncated or corrupt): {exc}.",
        input=src.label,
        fix="Re-export or re-download the image; check that the whole file was copied.",
    )
