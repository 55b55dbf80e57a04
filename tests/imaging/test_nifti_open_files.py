"""Kept NIfTI volumes: what they hold in memory, and a bound on their open files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmo_agent.config import Settings
from medmo_agent.errors import ImageLoadError
from medmo_agent.imaging.loader import load_image
from medmo_agent.imaging.openfiles import OPEN_VOLUMES
from medmo_agent.imaging.resolve import ImageResolver, held_nbytes

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc fds")

SHAPE = (64, 64, 64)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _volume(folder: Path, i: int, gz: bool) -> Path:
    data = (np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE) + i) % 997
    path = folder / f"vol{i}.nii{'.gz' if gz else ''}"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, -2.0, 2.0, 1.0])), path)
    return path


_kept: list = []


@pytest.fixture
def released():
    """Close every kept volume before and after, so counts start from nothing."""
    yield
    for image in list(_kept):
        image.volume.release()
    _kept.clear()


@pytest.mark.parametrize("gz", [False, True], ids=["nii", "nii.gz"])
def test_kept_volumes_hold_at_most_max_open_volumes_files(tmp_path, gz, released):
    settings = Settings(max_open_volumes=3, allowed_dirs=(tmp_path,))
    paths = [_volume(tmp_path, i, gz) for i in range(10)]
    resolver = ImageResolver(settings, confine=True)
    start = _open_fds()
    for path in paths:
        _kept.append(resolver.resolve(path.name, plane="coronal", slice=5))
    assert _open_fds() - start <= 3
    assert len(OPEN_VOLUMES) <= 3
    first = _kept[0]
    assert not first.volume.is_open  # the least recently used closed its file
    # ... and reopens it, through the allowed-folder checks, when sliced again
    again = resolver.resolve(first, plane="coronal", slice=5)
    assert np.array_equal(again.raw, first.raw)
    assert first.volume.is_open
    assert _open_fds() - start <= 3


def test_a_kept_volume_counts_what_it_holds_not_the_whole_volume(tmp_path, released):
    image = load_image(_volume(tmp_path, 0, gz=True), settings=Settings())
    _kept.append(image)
    volume_bytes = int(np.prod(SHAPE)) * 4
    # one 64 x 64 slice and its renderings, not the 1 MiB volume
    assert held_nbytes(image) < volume_bytes // 8


def test_a_released_inline_volume_asks_to_send_it_again(tmp_path, released):
    data = gzip.compress(_volume(tmp_path, 0, gz=False).read_bytes())
    image = load_image(data, settings=Settings(max_open_volumes=2))
    _kept.append(image)
    image.volume.release()
    with pytest.raises(ImageLoadError) as err:
        image.volume.render(slice=3)
    assert "MEDMO_MAX_OPEN_VOLUMES" in str(err.value) and "inline" in str(err.value)
