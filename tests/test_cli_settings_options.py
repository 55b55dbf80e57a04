"""The model and limit options of every command come from Settings, declared once."""

from __future__ import annotations

import argparse

import pytest

from medmo_agent.config import Settings


def _subparser(command: str) -> argparse.ArgumentParser:
    from medmo_agent.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[command]


def _magic_parser() -> argparse.ArgumentParser:
    from jupyter_ext.magics import _model_parser

    return _model_parser()


def _surfaces():
    from jupyter_ext import magics
    from mcp_server import cli as serve_cli
    from medmo_agent import cli
    from medmo_agent.agent import cli as agent_cli
    from medmo_agent.evaluation import cli as eval_cli
    from medmo_agent.review import cli as review_cli

    return [
        ("ask", lambda: _subparser("ask"), cli.MODEL_SETTINGS),
        ("info", lambda: _subparser("info"), cli.MODEL_SETTINGS),
        (
            "serve",
            lambda: _subparser("serve"),
            serve_cli.MODEL_SETTINGS + serve_cli.LIMIT_SETTINGS + serve_cli.AUTH_SETTINGS,
        ),
        ("agent", lambda: _subparser("agent"), agent_cli.MODEL_SETTINGS),
        ("review", lambda: _subparser("review"), review_cli.MODEL_SETTINGS),
        ("eval", lambda: _subparser("eval"), eval_cli.MODEL_SETTINGS),
        ("%medmo_model", _magic_parser, magics.MODEL_SETTINGS),
    ]


@pytest.mark.parametrize("surface", _surfaces(), ids=lambda s: s[0])
def test_each_setting_option_shows_the_fields_default_and_variable_once(surface):
    _, build, names = surface
    actions = {a.dest: a for a in build()._actions}
    for name in names:
        field = Settings.model_fields[name]
        action = actions[name]
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert action.default is None, "not given: the environment, then the default apply"
        env = "MEDMO_" + name.upper()
        note = f" (default: {field.default}; {env})" if field.default is not None else f" ({env})"
        assert action.help.endswith(note)
        assert "default" not in action.help.removesuffix(note), "a default written by hand"


def test_serve_options_reach_the_settings_and_unset_ones_keep_the_environment(monkeypatch):
    from mcp_server.cli import build_settings

    monkeypatch.setenv("MEDMO_MAX_IMAGE_PIXELS", "1234567")
    args = _subparser("serve").parse_args(["--max-new-tokens-limit", "99", "--dtype", "float32"])
    settings = build_settings(args)
    assert (settings.max_new_tokens_limit, settings.dtype) == (99, "float32")
    assert settings.max_image_pixels == 1234567
    assert settings.max_new_tokens == Settings().max_new_tokens
