"""Fixtures for the MCP server tests: an image folder, servers over a scripted or tiny
model, and an in-process client."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcp_helpers import make_server, png_bytes

from medmo_agent.backends.scripted import ScriptedBackend


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """An allowed folder: a 200x100 dark PNG, the pydicom CT example, and a subfolder."""
    from pydicom import examples

    root = tmp_path / "allowed"
    (root / "sub").mkdir(parents=True)
    (root / "dark.png").write_bytes(png_bytes(np.full((100, 200, 3), 20, np.uint8)))
    (root / "sub" / "small.png").write_bytes(png_bytes(np.full((64, 64, 3), 128, np.uint8)))
    shutil.copy(examples.get_path("ct"), root / "ct.dcm")
    return root


@pytest.fixture
def outside_dir(tmp_path: Path) -> Path:
    """A folder next to the allowed one, holding a readable image nobody may serve."""
    other = tmp_path / "outside"
    other.mkdir()
    (other / "secret.png").write_bytes(png_bytes(np.full((32, 32, 3), 255, np.uint8)))
    return other


@pytest.fixture
def scripted_server(image_dir: Path) -> Callable[..., Any]:
    """``scripted_server(replies, **config)``: a server answering from a script."""

    def build(replies: list[str] | None = None, *, settings=None, **config: Any):
        backend = ScriptedBackend(replies or ["yes"])
        server = make_server(backend, image_dir, settings=settings, **config)
        server.backend = backend  # for assertions on what the model was asked
        return server

    return build
