"""How the transformers backend picks device, dtype and attention from the settings."""

from __future__ import annotations

import importlib.util

import pytest

from medmo_agent.config import Settings

pytest.importorskip("torch")
from medmo_agent.backends import transformers as tb


@pytest.fixture
def flash_attn_installed(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "flash_attn":
            return object()  # looks installed
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_batched_generate_on_a_gpu_uses_flash_attention_2_when_it_is_installed(
    flash_attn_installed,
):
    settings = Settings(device="cuda", engine="batched")
    assert tb._resolve_runtime(settings) == ("cuda", "bfloat16", "flash_attention_2")


def test_the_continuous_engine_keeps_sdpa_even_with_flash_attention_installed(
    flash_attn_installed,
):
    # the engine runs its own decode attention and needs SDPA for the prompt; with
    # flash-attn 2 it would fall back to batched generate
    for engine in ("auto", "continuous"):
        settings = Settings(device="cuda", engine=engine)
        assert tb._resolve_runtime(settings) == ("cuda", "bfloat16", "sdpa")


def test_a_gpu_falls_back_to_sdpa_without_flash_attention():
    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    assert tb._resolve_runtime(Settings(device="cuda:1")) == ("cuda:1", "bfloat16", "sdpa")


def test_the_cpu_uses_float32_and_sdpa_even_with_flash_attention_installed(flash_attn_installed):
    assert tb._resolve_runtime(Settings(device="cpu")) == ("cpu", "float32", "sdpa")


def test_explicit_dtype_and_attention_settings_win(flash_attn_installed):
    settings = Settings(device="cuda", dtype="float16", attn_implementation="eager")
    assert tb._resolve_runtime(settings) == ("cuda", "float16", "eager")
