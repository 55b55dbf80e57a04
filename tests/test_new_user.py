"""What a new user hit, each on the real command: one format, one-line errors with the fix,
non-zero exits for runs that did nothing, unambiguous options, no test doubles on offer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo_agent.agent.trace import Trace
from medmo_agent.cli import main
from medmo_agent.tasks.results import SummaryResult

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "chest.png"
    Image.fromarray((np.arange(64 * 96) % 251).reshape(64, 96).astype(np.uint8)).save(path)
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(err: str, *says: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Fix: " in lines[0]
    for text in says:
        assert text in lines[0], lines[0]
    return lines[0]


# ---- test doubles stay out of the user's interface -------------------------------------


@pytest.mark.parametrize(
    "command", ["ask", "ground", "summarize", "info", "agent", "review", "serve"]
)
def test_no_help_offers_the_scripted_test_double(command, monkeypatch, capsys):
    monkeypatch.delenv("MEDMO_TEST_DOUBLES")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = capsys.readouterr().out
    assert "--backend {transformers,openai}" in help_text
    assert "scripted}" not in help_text and "openai,scripted" not in help_text


def test_no_command_has_an_option_for_the_test_double(capsys):
    # what the scripted backend answers comes from the environment (medmo_agent.testing),
    # so even with test doubles enabled no command line takes a test-only option
    with pytest.raises(SystemExit) as info:
        main(["serve", "--backend", "scripted", "--scripted-reply", "yes"])
    assert info.value.code == 2
    assert "unrecognized arguments: --scripted-reply" in capsys.readouterr().err


def test_the_scripted_backend_cannot_be_chosen_outside_the_tests(png, monkeypatch, capsys):
    monkeypatch.delenv("MEDMO_TEST_DOUBLES")
    with pytest.raises(SystemExit) as info:
        main(["ask", str(png), "q", "--backend", "scripted"])
    assert info.value.code == 2 and "invalid choice: 'scripted'" in capsys.readouterr().err
    monkeypatch.setenv("MEDMO_BACKEND", "scripted")
    assert main(["ask", str(png), "q"]) == 1
    _one_error_line(capsys.readouterr().err, "Unknown backend 'scripted'", "transformers, openai")


# ---- medmo agent -----------------------------------------------------------------------


def test_agent_help_separates_the_planner_server_from_the_tools_server(capsys):
    with pytest.raises(SystemExit):
        main(["agent", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--planner-base-url", "--planner-model", "--planner-api-key", "--base-url"):
        assert flag in text
    assert "with --backend openai: the OpenAI-compatible server serving MedMO" in text
    for flag in ("--window", "--slice", "--frame", "--plane"):
        assert flag in text


@pytest.mark.parametrize("workflow", [[], ["--workflow"]])
def test_an_agent_run_on_a_missing_image_is_one_error_before_any_step(tmp_path, workflow, capsys):
    code = main(["agent", str(tmp_path / "nope.png"), "q", "--backend", "scripted", *workflow])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""  # no step ran
    _one_error_line(captured.err, "nope.png")


def test_base_url_feeds_the_tools_backend_and_a_run_whose_steps_all_fail_exits_non_zero(
    png, monkeypatch, capsys
):
    monkeypatch.setenv("MEDMO_RETRIES", "0")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    code = main(["agent", str(png), "q", "--workflow", "--backend", "openai", "--base-url", url])
    captured = capsys.readouterr()
    assert "needs the server's URL" not in captured.out + captured.err
    assert url.removesuffix("/v1") in captured.out  # the steps tried that server
    assert code == 1
    assert "medmo agent: every step failed" in captured.err


def test_base_url_without_the_openai_backend_says_which_option_is_meant(png, capsys):
    code = main(["agent", str(png), "q", "--base-url", "http://h:8000/v1"])
    assert code == 1
    _one_error_line(capsys.readouterr().err, "--backend openai", "--planner-base-url")


def test_planner_options_without_the_openai_planner_are_refused(png, capsys):
    code = main(["agent", str(png), "q", "--backend", "scripted", "--planner-model", "m"])
    assert code == 1
    _one_error_line(capsys.readouterr().err, "--planner-model", "--planner openai")


def test_an_unreachable_planner_server_is_one_line_with_the_fix(png, monkeypatch, capsys):
    monkeypatch.setenv("MEDMO_RETRIES", "0")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    args = ["agent", str(png), "q", "--backend", "scripted", "--planner", "openai"]
    code = main([*args, "--planner-base-url", url, "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    (line,) = captured.out.strip().splitlines()
    assert "cannot be reached" in line and url in line and "Fix: Start the server" in line
    assert captured.err.strip() == "medmo agent: stopped early (error)"


class _Refuses(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers every chat request as vLLM does when a
    prompt is over the context length."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(
            {
                "error": {
                    "message": "The prompt has 7177 tokens, but the model takes at most 4096",
                    "type": "BadRequestError",
                    "code": 400,
                }
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_planner_server_that_refuses_the_prompt_is_one_line_with_the_fix(png, capsys):
    server = HTTPServer(("127.0.0.1", 0), _Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        args = ["agent", str(png), "q", "--backend", "scripted", "--planner", "openai"]
        code = main([*args, "--planner-base-url", url, "--quiet"])
    finally:
        server.shutdown()
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    (line,) = captured.out.strip().splitlines()
    assert "HTTP 400: The prompt has 7177 tokens" in line
    assert "context length" in line.split("Fix:")[1]


def test_agent_window_slice_and_plane_reach_every_tool(nifti, tmp_path, capsys):
    out = tmp_path / "t.json"
    code = main(
        [
            *("agent", nifti, "q", "--workflow", "--backend", "scripted"),
            *("--plane", "coronal", "--slice", "3", "--window", "400/40"),
            *("--trace", str(out)),
        ]
    )
    assert code == 0, capsys.readouterr().err
    trace = Trace.load(out)
    assert trace.image.startswith("medmo://images/")
    metas = [s.result["image"]["meta"] for s in trace.tool_steps if s.result]
    assert metas and all((m["plane"], m["slice"]) == ("coronal", 3) for m in metas)


# ---- the task commands -----------------------------------------------------------------


def test_plane_on_a_2d_dicom_is_an_error(ct_dicom, capsys):
    code = main(["ask", ct_dicom, "q", "--plane", "coronal", "--backend", "scripted"])
    assert code == 1
    _one_error_line(capsys.readouterr().err, "single DICOM image", "no coronal plane")


def test_plane_on_a_png_is_an_error(png, capsys):
    assert main(["ask", str(png), "q", "--plane", "sagittal", "--backend", "scripted"]) == 1
    _one_error_line(capsys.readouterr().err, "2D image", "no sagittal plane")


@pytest.mark.parametrize("where", ["{tmp}/missing-folder/deeper/o.png", "{tmp}/o.txt", "{tmp}"])
def test_the_overlay_path_is_checked_before_the_model_loads(png, tmp_path, where, capsys):
    (tmp_path / "missing-folder").write_text("a file where a folder should be")
    overlay = where.format(tmp=tmp_path)
    # The model path does not exist: had the model been loaded first, that would be the error.
    args = ["ground", str(png), "--model", str(tmp_path / "no-model"), "--device", "cpu"]
    assert main([*args, "--overlay", overlay]) == 1
    _one_error_line(capsys.readouterr().err, "Cannot write the overlay")


def test_info_help_describes_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Show versions, devices, configured model and cache state" in text


def test_summarize_prints_a_standing_in_summary_once(tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("Findings: a small nodule."))
    args = ["summarize", "-", "--model", str(tiny_checkpoint), "--device", "cpu"]
    assert main([*args, "--max-new-tokens", "6"]) == 0
    lines = [ln.removeprefix("- ") for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert lines and len(lines) == len(set(lines))
    assert SummaryResult(raw_text="", summary_text="x", key_findings=["x"]).summary() == "- x"


@pytest.mark.slow
def test_no_weight_loading_bar_when_stderr_is_not_a_terminal(tiny_checkpoint, png):
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "medmo_agent.cli", "ask", str(png), "q"),
            *("--model", str(tiny_checkpoint), "--device", "cpu", "--max-new-tokens", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "Loading weights" not in done.stderr and "it/s]" not in done.stderr
