"""The local backend names the [local] extra when torch or transformers is missing.

The real light install (no torch at all) is tested in ``tests/test_light_install.py``;
here one package is hidden from the import system to check the wording fast.
"""

from __future__ import annotations

import importlib.util

import pytest

from medmo_agent.backends import create_backend
from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError
from medmo_agent.extras import LOCAL_EXTRA_INSTALL, missing_local_packages


@pytest.fixture
def without_transformers(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "transformers" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_nothing_is_missing_in_the_full_install():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    assert missing_local_packages() == []


def test_the_transformers_backend_without_transformers_names_the_extra(without_transformers):
    with pytest.raises(ConfigError) as info:
        create_backend(Settings(backend="transformers", device="cpu", model="/nowhere"))
    text = str(info.value)
    assert "needs the [local] extra: transformers is not installed" in text
    assert LOCAL_EXTRA_INSTALL == 'pip install "medmo-agent[local]"'
    assert LOCAL_EXTRA_INSTALL in text and "\n" not in text


def test_building_the_tiny_checkpoint_without_transformers_names_the_extra(
    without_transformers, tmp_path, capsys
):
    from medmo_agent.testing.tiny import main

    assert main([str(tmp_path / "tiny")]) == 1
    err = capsys.readouterr().err
    assert "Building the tiny checkpoint needs the [local] extra" in err
    assert not (tmp_path / "tiny").exists()
