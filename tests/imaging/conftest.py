"""Fixtures for the imaging tests: synthetic files for edge cases nobody ships."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    """Encode an array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def gradient_png(tmp_path: Path) -> Path:
    """A 64x32 grayscale PNG whose value grows left to right."""
    arr = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (32, 1))
    path = tmp_path / "gradient.png"
    path.write_bytes(png_bytes(arr))
    return path


def pydicom_file(name: str) -> str:
    """Path of a file bundled with pydicom (skip the test if this install lacks it)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:  # only files shipped inside the pydicom package are used
        pytest.skip(f"pydicom test file {name} is not installed")
    return str(path)
