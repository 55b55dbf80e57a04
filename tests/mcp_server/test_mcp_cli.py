"""``medmo serve`` options as the server receives them: defaults, the token from the
environment, repeatable folders, model options."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_server.cli import build_config, build_settings
from medmo_agent.cli import build_parser
from medmo_agent.errors import ConfigError

TOKEN = "t" * 32


def _serve(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_serve_defaults_to_stdio_and_http_to_loopback_port_8000(monkeypatch):
    monkeypatch.delenv("MEDMO_AUTH_TOKEN", raising=False)
    assert build_config(_serve()).transport == "stdio"
    config = build_config(_serve("--http"))
    assert (config.transport, config.host, config.port, config.path) == (
        "http",
        "127.0.0.1",
        8000,
        "/mcp",
    )
    assert config.auth_token is None and config.allowed_dirs is None


def test_the_token_comes_from_the_environment_and_the_option_wins(monkeypatch):
    monkeypatch.setenv("MEDMO_AUTH_TOKEN", TOKEN)
    config = build_config(_serve("--http", "--host", "0.0.0.0"))
    assert config.auth_token == TOKEN
    other = "o" * 32
    assert build_config(_serve("--http", "--auth-token", other)).auth_token == other


def test_a_public_bind_without_any_token_is_refused_naming_both_ways_to_give_one(monkeypatch):
    monkeypatch.delenv("MEDMO_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError) as err:
        build_config(_serve("--http", "--host", "0.0.0.0"))
    assert "--auth-token" in str(err.value) and "MEDMO_AUTH_TOKEN" in str(err.value)


def test_allow_dir_repeats_and_limits_reach_the_config(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("MEDMO_AUTH_TOKEN", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    args = _serve(
        "--allow-dir",
        str(a),
        "--allow-dir",
        str(b),
        "--stateless",
        "--max-request-bytes",
        "1000",
        "--max-results",
        "3",
    )
    config = build_config(args)
    assert config.allowed_dirs == (a, b)
    assert (config.stateless, config.max_request_bytes, config.max_result_store) == (
        True,
        1000,
        3,
    )


def test_model_options_override_the_environment(monkeypatch):
    monkeypatch.setenv("MEDMO_MODEL", "MBZUAI/MedMO-4B-Next")
    monkeypatch.setenv("MEDMO_BACKEND", "transformers")
    settings = build_settings(
        _serve("--backend", "openai", "--base-url", "http://gpu:8000/v1", "--max-new-tokens", "64")
    )
    assert settings.model == "MBZUAI/MedMO-4B-Next"
    assert (settings.backend, settings.base_url, settings.max_new_tokens) == (
        "openai",
        "http://gpu:8000/v1",
        64,
    )
