"""Shared fixtures: a tiny random Qwen3-VL checkpoint and a real backend on it.

The default test tier needs no network: the Hugging Face hub is switched off before
anything imports ``huggingface_hub``. Set ``MEDMO_TINY_CHECKPOINT`` to a folder built
by ``python -m medmo_agent.testing.tiny DIR`` to reuse it instead of building one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
# Lets the tests (and the commands they start) choose the scripted test double as a backend;
# users never see it (medmo_agent.testing).
os.environ["MEDMO_TEST_DOUBLES"] = "1"
if shutil.which("nvidia-smi") is None and not Path("/dev/nvidiactl").exists():
    # No GPU: the engine's Triton kernels are tested in Triton's CPU interpreter, which must
    # be chosen before anything imports triton.
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random Qwen3-VL checkpoint laid out like MedMO's (seed 0)."""
    prebuilt = os.environ.get("MEDMO_TINY_CHECKPOINT")
    if prebuilt:
        path = Path(prebuilt)
        if not (path / "config.json").is_file():
            from medmo_agent.testing.tiny import build_tiny_checkpoint

            build_tiny_checkpoint(path)
        return path
    from medmo_agent.testing.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-medmo"))


@pytest.fixture(scope="session")
def tiny_settings(tiny_checkpoint: Path):
    """Settings that point the transformers backend at the tiny checkpoint, on CPU in fp32."""
    from medmo_agent.config import Settings

    return Settings(
        model=str(tiny_checkpoint),
        backend="transformers",
        device="cpu",
        dtype="float32",
        max_new_tokens=16,
    )


@pytest.fixture(scope="session")
def tiny_backend(tiny_settings):
    """A real :class:`TransformersBackend` on the tiny checkpoint (CPU, fp32), shared."""
    from medmo_agent.backends.transformers import TransformersBackend

    backend = TransformersBackend.from_settings(tiny_settings)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def ct_dicom() -> str:
    """A real CT slice shipped with pydicom."""
    from pydicom.data import get_testdata_file

    return str(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="session")
def nifti() -> str:
    """A real anatomical NIfTI volume shipped with nibabel."""
    from nibabel.testing import data_path

    return str(Path(data_path) / "anatomical.nii")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the GPU tier out unless the ``-m`` expression names it.

    ``-m`` replaces any default expression, so a default of ``-m 'not gpu'`` would let
    ``pytest -m "not slow"`` pick up the GPU tests: the rule lives here instead, and every
    documented command means what it says (``pytest -m gpu`` runs only the GPU tier).
    """
    if "gpu" in (config.option.markexpr or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if item.get_closest_marker("gpu") is None]
