"""Settings: defaults, MEDMO_* environment variables, overrides, and bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medmo_agent.config import DEFAULT_MODEL, Settings
from medmo_agent.errors import ConfigError


def test_defaults_name_the_recommended_model_and_greedy_decoding():
    s = Settings()
    assert s.model == DEFAULT_MODEL == "MBZUAI/MedMO-8B-Next"
    assert s.backend == "transformers"
    assert s.temperature == 0.0
    assert s.max_new_tokens == 512


def test_environment_variables_override_defaults_with_their_types():
    env = {
        "MEDMO_MODEL": "/models/medmo-4b",
        "MEDMO_MAX_NEW_TOKENS": "64",
        "MEDMO_TEMPERATURE": "0.5",
        "MEDMO_INCLUDE_PHI": "yes",
        "MEDMO_ALLOWED_DIRS": os.pathsep.join(["/data/a", "/data/b"]),
    }
    s = Settings.from_env(env)
    assert s.model == "/models/medmo-4b"
    assert s.max_new_tokens == 64
    assert s.temperature == 0.5
    assert s.include_phi is True
    assert s.allowed_dirs == (Path("/data/a"), Path("/data/b"))


def test_explicit_overrides_beat_the_environment_and_none_is_ignored():
    s = Settings.from_env({"MEDMO_MODEL": "from-env"}, model="explicit", base_url=None)
    assert s.model == "explicit"
    assert s.base_url is None


def test_openai_api_key_is_picked_up_when_medmo_api_key_is_absent():
    assert Settings.from_env({"OPENAI_API_KEY": "sk-1"}).api_key == "sk-1"
    assert Settings.from_env({"OPENAI_API_KEY": "sk-1", "MEDMO_API_KEY": "m"}).api_key == "m"


def test_a_malformed_number_names_the_variable_and_the_fix():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"MEDMO_MAX_NEW_TOKENS": "lots"})
    assert "MEDMO_MAX_NEW_TOKENS" in str(info.value)
    assert "Fix:" in str(info.value)


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="Unknown setting"):
        Settings().replace(modle="typo")
