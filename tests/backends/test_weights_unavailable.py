"""Without cached weights and without a reachable hub, loading fails at once with the cause
and what to do; a CUDA device that is not there is an error, not a silent CPU run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
#: Far below the 165 s the hub client spent retrying before; the command itself needs only
#: the imports (a few seconds on an idle machine).
SECONDS = 60


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


def _medmo(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    image = tmp_path / "chest.png"
    from PIL import Image

    Image.new("L", (64, 64), 100).save(image)
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "MEDMO_MODEL"}
    }
    base.update(HF_HOME=str(tmp_path / "empty-hf-home"), MEDMO_BACKEND="transformers", **env)
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "medmo_agent.cli", "ask", str(image), "Q?", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=SECONDS * 3,
        env=base,
        cwd=REPO,
    )
    return done, time.monotonic() - t0


def _assert_advice(err: str) -> None:
    assert err.startswith("medmo: error: Cannot load MBZUAI/MedMO-8B-Next: its weights are not")
    assert "huggingface-cli download MBZUAI/MedMO-8B-Next" in err
    assert "--model PATH" in err and "--backend openai" in err
    assert "HF_HUB_OFFLINE=0" not in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_offline_without_cached_weights_fails_at_once_with_what_to_do(tmp_path):
    done, seconds = _medmo(tmp_path, HF_HUB_OFFLINE="1")
    assert done.returncode == 1
    _assert_advice(done.stderr)
    assert "HF_HUB_OFFLINE=1 forbids downloading" in done.stderr
    assert seconds < SECONDS


@pytest.mark.slow
def test_an_unreachable_hub_without_cached_weights_fails_at_once_with_what_to_do(tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    done, seconds = _medmo(tmp_path, HF_ENDPOINT=endpoint)
    assert done.returncode == 1
    _assert_advice(done.stderr)
    assert f"the hub at {endpoint} cannot be reached" in done.stderr
    assert seconds < SECONDS


def test_cuda_without_a_gpu_is_a_clear_error(tiny_checkpoint):
    import torch

    from medmo_agent.backends.transformers import TransformersBackend

    if torch.cuda.is_available():
        device, match = "cuda:99", "does not exist"
    else:
        device, match = "cuda", "no CUDA GPU is visible|no CUDA support"
    with pytest.raises(ConfigError, match=match) as info:
        TransformersBackend.from_settings(Settings(model=str(tiny_checkpoint), device=device))
    assert info.value.input == "device" and "--device" in info.value.fix
