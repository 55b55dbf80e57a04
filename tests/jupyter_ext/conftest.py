"""Fixtures for the Jupyter extension: an IPython shell with the extension loaded, and a
notebook session answered by a scripted backend whose replies are known in advance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medmo_agent.testing import SCRIPTED_REPLIES_ENV

GROUNDING_REPLY = (
    "nodule: [40, 50, 120, 130]\neffusion: [150, 160, 230, 240]\nnodule: [10, 10, 30, 30]"
)
REPLIES = {"bounding box": GROUNDING_REPLY, "*": "yes"}


@pytest.fixture
def chest_png(tmp_path: Path) -> Path:
    """A 256x200 grayscale PNG."""
    from PIL import Image

    pixels = (np.arange(256 * 200) % 251).reshape(200, 256).astype(np.uint8)
    path = tmp_path / "chest.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def scripted_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The kernel session, answered by rules: grounding prompts get three boxes."""
    from jupyter_ext.session import MedmoSession, reset_session
    from medmo_agent.config import Settings

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(REPLIES))
    monkeypatch.setenv(SCRIPTED_REPLIES_ENV, str(replies))
    session = reset_session(MedmoSession(Settings(backend="scripted", model="scripted-medmo")))
    yield session
    reset_session()


@pytest.fixture
def shell(scripted_session):
    """An IPython shell with ``%load_ext jupyter_ext`` done."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ext")
    return ip
