"""``medmo agent``: steps stream to the terminal, the conclusion comes last, traces are saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmo_agent.agent.trace import Trace
from medmo_agent.cli import main


def test_the_workflow_streams_steps_and_writes_the_trace(chest_png: Path, tmp_path: Path, capsys):
    out_json, out_html = tmp_path / "t.json", tmp_path / "t.html"
    code = main(
        [
            "agent",
            str(chest_png),
            "Any nodule?",
            "--workflow",
            "--backend",
            "scripted",
            "--skip",
            "verify",
            "--age",
            "70",
            "--trace",
            str(out_json),
            "--html",
            str(out_html),
        ]
    )
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("  1. -> vqa [identify]")
    assert any("-> reason [impression]" in line for line in lines)
    assert "[verify]" not in captured.out
    assert lines[-1] == "For research use only; not a clinical diagnosis."
    trace = Trace.load(out_json)
    assert trace.mode == "workflow" and trace.context == {"age": "70"}
    assert out_html.read_text().startswith("<!doctype html>")
    assert code == 0


def test_an_agent_run_without_a_conclusion_exits_non_zero_with_the_reason(chest_png, capsys):
    code = main(["agent", str(chest_png), "Q?", "--backend", "scripted", "--quiet"])
    captured = capsys.readouterr()
    # The scripted model answers with nothing: the planner ends without a conclusion.
    assert code == 1
    assert "stopped early (no_conclusion)" in captured.err
    assert captured.out.strip().startswith("Stopped:")


def test_an_unreachable_mcp_server_is_one_clear_error_line(chest_png, capsys):
    code = main(["agent", str(chest_png), "Q?", "--mcp", "http://127.0.0.1:9/mcp"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("medmo: error: Cannot connect to the MCP server")
    assert "Fix:" in err


@pytest.mark.parametrize("flag", [["--planner", "openai"]])
def test_an_openai_planner_without_a_server_or_key_says_what_to_pass(
    chest_png, capsys, flag, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["agent", str(chest_png), "Q?", "--backend", "scripted", *flag])
    assert code == 1
    assert "--planner-base-url" in capsys.readouterr().err
