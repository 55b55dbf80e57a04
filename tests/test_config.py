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


def test_a_malformed_boolean_names_the_variable_and_the_expected_type():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"MEDMO_INCLUDE_PHI": "maybe"})
    text = str(info.value)
    assert "MEDMO_INCLUDE_PHI='maybe'" in text
    assert "a boolean (1, true, yes, on or 0, false, no, off)" in text


def test_a_value_of_the_wrong_type_in_code_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError) as info:
        Settings(max_batch_size="big")
    assert info.value.input == "max_batch_size"
    assert "whole number" in str(info.value) and "MEDMO_MAX_BATCH_SIZE" in str(info.value)
    with pytest.raises(ConfigError, match="Unknown setting"):
        Settings(modle="typo")
    with pytest.raises(ConfigError, match="temperature"):
        Settings().replace(temperature="hot")


def test_empty_variables_count_as_unset():
    s = Settings.from_env({"MEDMO_MAX_NEW_TOKENS": "", "MEDMO_BASE_URL": ""})
    assert s.max_new_tokens == Settings().max_new_tokens
    assert s.base_url is None


def test_settings_built_in_code_ignore_the_process_environment(monkeypatch):
    monkeypatch.setenv("MEDMO_MODEL", "from-env")
    assert Settings().model == DEFAULT_MODEL
    assert Settings.from_env().model == "from-env"


def test_a_dotenv_file_supplies_variables_the_environment_does_not_set(tmp_path):
    dotenv = tmp_path / "medmo.env"
    dotenv.write_text(
        "MEDMO_MODEL=MBZUAI/MedMO-4B-Next\n"
        "MEDMO_MAX_NEW_TOKENS=128\n"
        "MEDMO_AUTH_TOKEN=not-a-setting\n"  # read by the server itself, not a field
        "OPENAI_API_KEY=sk-dotenv\n"
    )
    s = Settings.from_env({"MEDMO_MAX_NEW_TOKENS": "64"}, env_file=dotenv)
    assert s.model == "MBZUAI/MedMO-4B-Next"
    assert s.max_new_tokens == 64  # the environment wins over the file
    assert s.api_key == "sk-dotenv"
    assert Settings.from_env({}, env_file=None).model == DEFAULT_MODEL
    assert Settings.from_env({}, env_file=tmp_path / "missing.env").model == DEFAULT_MODEL


def test_an_edited_dotenv_file_is_read_again(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("MEDMO_MAX_BATCH_SIZE=4\n")
    assert Settings.from_env({}, env_file=dotenv).max_batch_size == 4
    dotenv.write_text("MEDMO_MAX_BATCH_SIZE=16\n")
    assert Settings.from_env({}, env_file=dotenv).max_batch_size == 16


def test_a_malformed_value_in_a_dotenv_file_names_the_variable(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("MEDMO_TEMPERATURE=warm\n")
    with pytest.raises(ConfigError, match="MEDMO_TEMPERATURE='warm'"):
        Settings.from_env({}, env_file=dotenv)


def test_settings_compare_and_hash_by_value_and_cannot_be_changed_in_place():
    a, b = Settings(max_new_tokens=8), Settings().replace(max_new_tokens=8)
    assert a == b and hash(a) == hash(b)
    assert a.replace() is a
    with pytest.raises(ValueError):
        a.max_new_tokens = 9  # type: ignore[misc]
    assert a.replace(allowed_dirs=["/data"]).allowed_dirs == (Path("/data"),)
