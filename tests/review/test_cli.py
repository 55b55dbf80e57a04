"""``medmo review`` from the command line: exit status, summary, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medmo_agent.cli import main
from medmo_agent.review.cli import EXIT_CASES_FAILED

from .conftest import write_cases, write_png


def test_importing_the_review_command_loads_nothing_heavy():
    code = (
        "import sys, json, medmo_agent.review.cli; "
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'langchain', "
        "'langchain_core', 'langgraph', 'PIL', 'numpy', 'tqdm', 'yaml') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_review_help_describes_cases_steps_outputs_and_exit_status(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["review", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--out", "--workers", "--limit", "--only", "--steps", "exit status", "3 some"):
        assert needle in text


def test_the_exit_status_says_how_many_cases_failed(tmp_path, capsys):
    write_png(tmp_path / "a.png")
    cases = write_cases(
        tmp_path / "cases.yaml",
        [{"id": "a", "image": "a.png"}, {"id": "b", "image": "gone.png"}],
    )
    args = [
        "review",
        str(cases),
        "--out",
        str(tmp_path / "out"),
        "--backend",
        "scripted",
        "--steps",
        "report",
        "--no-progress",
    ]
    assert main(args) == EXIT_CASES_FAILED == 3
    out = capsys.readouterr().out
    assert "1 ok, 1 failed" in out and "failed: b:" in out and "exit status 3" in out
    assert main([*args, "--only", "a"]) == 0
    assert "0 run now, 1 already done" in capsys.readouterr().out


def test_an_unusable_cases_file_is_one_clear_error_line(tmp_path, capsys):
    (tmp_path / "cases.yaml").write_text("cases: 3\n")
    code = main(
        [
            "review",
            str(tmp_path / "cases.yaml"),
            "--out",
            str(tmp_path / "o"),
            "--backend",
            "scripted",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("medmo: error: Cases file") and "list of cases" in err
