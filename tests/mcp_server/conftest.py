"""Fixtures for the MCP server tests: an image folder, servers over a scripted or tiny
model, and an in-process client."""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medmo_agent.backends.base import Backend, Completion, GenerationRequest
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings

#: What the CT example file says about its patient: none of it may leave the server.
PHI_VALUES = ("CompressedSamples^CT1", "CompressedSamples", "1CT1")


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


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


def make_server(
    backend: Backend,
    image_dir: Path | None,
    settings: Settings | None = None,
    **config: Any,
):
    """A server over ``backend`` with ``image_dir`` allowed (``None``: the default)."""
    from mcp_server import ServerConfig, create_server

    if image_dir is not None:
        config.setdefault("allowed_dirs", (image_dir,))
    return create_server(settings or Settings(), ServerConfig(**config), backend=backend)


@pytest.fixture
def scripted_server(image_dir: Path) -> Callable[..., Any]:
    """``scripted_server(replies, **config)``: a server answering from a script."""

    def build(replies: list[str] | None = None, *, settings=None, **config: Any):
        backend = ScriptedBackend(replies or ["yes"])
        server = make_server(backend, image_dir, settings=settings, **config)
        server.backend = backend  # for assertions on what the model was asked
        return server

    return build


class BlockingBackend(Backend):
    """Blocks in ``generate`` until cancelled (or released), recording what happened."""

    name = "blocking"
    model_id = "blocking"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.release = threading.Event()
        self.saw_cancel = False

    def generate(self, request: GenerationRequest, on_text=None, cancel=None) -> Completion:
        self.started.set()
        try:
            while not self.release.is_set():
                if cancel is not None and cancel.wait(0.01):
                    self.saw_cancel = True
                    return Completion(
                        text="", model=self.model_id, backend=self.name, finish_reason="cancelled"
                    )
            if on_text is not None:
                on_text("no")
            return Completion(text="no", model=self.model_id, backend=self.name)
        finally:
            self.stopped.set()


class FailingBackend(ScriptedBackend):
    """Raises the given error for requests whose text contains ``trigger``."""

    def __init__(self, error: Exception, trigger: str, replies: list[str]):
        super().__init__(replies)
        self.error = error
        self.trigger = trigger

    def generate(self, request, on_text=None, cancel=None):
        if any(self.trigger in m.text for m in request.messages):
            raise self.error
        return super().generate(request, on_text=on_text, cancel=cancel)
