"""A small image for prompt-building tests."""

from __future__ import annotations

import numpy as np
import pytest

from medmo_agent.types import ImageMeta, MedImage


def make_image(modality: str | None = None, size: tuple[int, int] = (64, 48)) -> MedImage:
    w, h = size
    meta = ImageMeta(source="inline", format="png", modality=modality, original_size=size)
    return MedImage(pixels=np.zeros((h, w, 3), dtype=np.uint8), meta=meta)


@pytest.fixture
def image() -> MedImage:
    return make_image()
