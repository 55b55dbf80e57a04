"""Fixtures for the review tests: small real images, case files, and a scripted model
whose answers depend on the task and the question (so agreement figures are exact)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from medmo_agent.backends.base import GenerationRequest
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings

#: 320x256 is a multiple of 32 inside the pixel budget: the model sees it unresized, so
#: boxes the scripted model gives come back in the same pixels.
PNG_SIZE = (320, 256)


def write_png(path: Path, size: tuple[int, int] = PNG_SIZE, seed: int = 0) -> Path:
    """Write a small grayscale PNG with a bright square, and return its path."""
    w, h = size
    arr = (np.random.default_rng(seed).random((h, w)) * 60).astype(np.uint8)
    arr[40:100, 40:100] = 220
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_cases(path: Path, cases: list[dict[str, Any]], steps: Any = None) -> Path:
    """Write a YAML cases file."""
    data: Any = {"cases": cases} if steps is None else {"cases": cases, "steps": steps}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def scripted_answer(request: GenerationRequest) -> str:
    """A plausible MedMO reply for the task a request asks for."""
    text = request.messages[-1].text
    low = text.lower()
    if "bounding box" in low or "detect and localize" in low:
        return "nodule: [40, 40, 100, 100]"
    if "list all diseases" in low or "thoracic diseases" in low:
        return "Nodule | Effusion"
    if "radiology report" in low:
        return "Findings: A 6 cm nodule in the left upper zone. Impression: Lung nodule."
    if "summarize the key findings" in low:
        return "- Lung nodule\nSummary: A nodule."
    if "<think>" in low:
        return "<think>1. A bright round opacity.</think><answer>Lung nodule</answer>"
    if "yes' or 'no'" in low:
        return "yes" if "nodule" in low else "no"
    if "option's letter" in low:
        return "B"
    return "A round opacity."


class ScriptedModel(ScriptedBackend):
    """The scripted backend with an optional hook run before each answer (to fail a
    request or hold it at a barrier)."""

    def __init__(self, hook: Callable[[GenerationRequest], None] | None = None):
        super().__init__(responder=scripted_answer, model_id="scripted-medmo")
        self.hook = hook
        self.calls = 0
        self._count_lock = threading.Lock()

    def generate(self, request, on_text=None, cancel=None):
        with self._count_lock:
            self.calls += 1
        if self.hook is not None:
            self.hook(request)
        return super().generate(request, on_text=on_text, cancel=cancel)


@pytest.fixture
def scripted() -> ScriptedModel:
    """A scripted model answering every task plausibly."""
    return ScriptedModel()


@pytest.fixture
def scripted_settings() -> Settings:
    """Settings for the scripted backend."""
    return Settings(backend="scripted", model="scripted-medmo")


@pytest.fixture
def png(tmp_path: Path) -> Path:
    """A 320x256 PNG inside the test folder."""
    return write_png(tmp_path / "images" / "chest.png")
