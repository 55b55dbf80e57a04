"""Every example in the README runs here, so the docs cannot drift from the code.

Each fenced block is read by its language. ``medmo`` commands run as pasted (in the folder
of the files they name, answered by the scripted test double); Python examples run as
scripts; the ``%medmo`` magics run in an IPython shell; the YAML cases load and are
reviewed; the JSON client configurations start ``medmo`` with arguments it accepts.
A command that cannot run here is excused by a narrow rule with its reason (it needs a
GPU, a server or another program), and is still parsed: ``medmo`` arguments by the real
parser, ``pip`` extras against ``pyproject.toml``, ``pytest -m`` against its markers.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tomllib
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.S | re.M)
PYTHON_BLOCKS = [body for lang, body in BLOCKS if lang == "python"]
IPYTHON_BLOCKS = [body for lang, body in BLOCKS if lang == "ipython"]
YAML_BLOCKS = [body for lang, body in BLOCKS if lang == "yaml"]
JSON_BLOCKS = [body for lang, body in BLOCKS if lang == "json"]
#: MCP client configurations (each starts ``medmo``); the other JSON block is the example
#: access token, which tests/mcp_server/test_oauth_checks.py has the server accept.
CLIENT_BLOCKS = [body for body in JSON_BLOCKS if '"mcpServers"' in body or '"servers"' in body]
TOKEN_BLOCKS = [body for body in JSON_BLOCKS if '"iss"' in body]
HANDLED = {"bash", "python", "ipython", "yaml", "json"}

#: What the scripted test double answers: a plain conclusion, so a planning agent ends.
REPLY = "No acute abnormality."

# ---- commands that cannot run here: each rule, its reason ------------------------------

#: Programs other than ``medmo``, by the first word(s) of the command.
EXTERNAL = {
    "pip": "installs packages (CI installs them this way); the extras named are checked",
    "pytest": "is this test suite; the -m marker expressions are checked",
    "ruff": "the linter, run by CI",
    "mypy": "the type checker, run by CI",
    "vllm": "needs GPUs and vLLM's own environment",
    "python -m sglang.launch_server": "needs GPUs and SGLang's own environment",
    "claude": "Claude Code's CLI, not installed here; the medmo command it adds is parsed",
    "jupyter": "starts JupyterLab; notebooks and widgets are tested in tests/notebooks and "
    "tests/jupyter_ext",
}
#: ``medmo`` commands that are parsed, not run: (what matches, reason).
PARSE_ONLY = [
    (lambda a: a[1] == "serve", "runs until stopped; tests/mcp_server serves over stdio and HTTP"),
    (
        lambda a: a[1] == "agent" and "--mcp" in a,
        "needs a running MCP server (tests/agent/test_agent.py starts one)",
    ),
    (
        lambda a: a[1] == "agent" and "openai" in a,
        "needs the planner's server (tests/agent/test_openai_planner.py starts one)",
    ),
]
SERVER_EXPORT = (
    "needs the OpenAI-compatible server its MEDMO_BASE_URL names (tests/test_scale_out.py "
    "runs this recipe against transformers serve)"
)
_PLACEHOLDER = re.compile(r"\b(?:IMAGE|REPORT\.txt|ID_OR_PATH)\b|\[")


@dataclass
class Command:
    """One command of a bash block, as the README writes it."""

    line: str
    argv: list[str]
    env: dict[str, str]
    verdict: str  # run | parse | synopsis | external | tiny
    reason: str = ""

    def __str__(self) -> str:
        return self.line


def _logical_lines(body: str) -> list[str]:
    return [ln.strip() for ln in body.replace("\\\n", " ").splitlines() if ln.strip()]


def _commands() -> list[Command]:
    commands = []
    for lang, body in BLOCKS:
        if lang != "bash":
            continue
        env: dict[str, str] = {}
        for line in _logical_lines(body):
            if line.startswith("#"):
                continue
            if line.startswith("export "):
                words = shlex.split(line.split("#")[0], posix=True)[1:]
                env.update(w.split("=", 1) for w in words if "=" in w and "$(" not in w)
                continue
            argv = shlex.split(line, comments=True)
            commands.append(_classify(line, argv, dict(env)))
    return commands


def _classify(line: str, argv: list[str], env: dict[str, str]) -> Command:
    if argv[:3] == ["python", "-m", "medmo_agent.testing.tiny"]:
        return Command(line, argv, env, "tiny", "run by its own test, into a temporary folder")
    for prefix, reason in EXTERNAL.items():
        if argv[: len(prefix.split())] == prefix.split():
            return Command(line, argv, env, "external", reason)
    assert argv[0] == "medmo", f"README command of an unknown program: {line}"
    if _PLACEHOLDER.search(line):
        return Command(line, argv, env, "synopsis", "a synopsis with placeholders")
    if env.get("MEDMO_BACKEND") == "openai":
        return Command(line, argv, env, "parse", SERVER_EXPORT)
    for matches, reason in PARSE_ONLY:
        if matches(argv):
            return Command(line, argv, env, "parse", reason)
    return Command(line, argv, env, "run")


COMMANDS = _commands()


# ---- the files the examples name -------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the files the README's examples name; the scripted model answers."""
    from nibabel.testing import data_path
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(0)
    chest = Image.fromarray((rng.random((512, 512)) * 255).astype("uint8"))
    chest.save(tmp_path / "chest.png")
    ct = Path(get_testdata_file("CT_small.dcm"))
    for name in ("ct_slice.dcm", "scan.dcm", "scans/001.dcm"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ct, tmp_path / name)
    (tmp_path / "data").mkdir()
    chest.save(tmp_path / "data" / "chest.png")
    (tmp_path / "studies" / "case-017").mkdir(parents=True)
    chest.save(tmp_path / "studies" / "case-017" / "image.png")
    nii = (Path(data_path) / "anatomical.nii").read_bytes()
    (tmp_path / "ct.nii.gz").write_bytes(gzip.compress(nii))
    (tmp_path / "cases.yaml").write_text(YAML_BLOCKS[0])
    from evaluation.fixtures import write_fixtures  # benchmark copies for `medmo eval`

    write_fixtures(tmp_path / "fixtures", ["vqa_rad", "slake", "pubmedqa"])
    from medmo_agent.testing.volumes import Phantom, write_dicom_series

    write_dicom_series(Phantom(shape=(8, 32, 32)), tmp_path / "study")  # a CT series folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDMO_BACKEND", "scripted")
    monkeypatch.setenv("MEDMO_TEST_SCRIPTED_REPLY", REPLY)
    monkeypatch.delenv("MEDMO_BASE_URL", raising=False)
    return tmp_path


# ---- coverage of the README ------------------------------------------------------------


def test_every_fenced_block_is_of_a_kind_these_tests_run():
    assert {lang for lang, _ in BLOCKS} <= HANDLED
    assert len(PYTHON_BLOCKS) >= 3 and IPYTHON_BLOCKS and YAML_BLOCKS and JSON_BLOCKS


def test_every_excuse_is_still_needed_and_most_commands_run():
    used = {c.reason for c in COMMANDS if c.verdict in ("external", "parse")}
    assert set(EXTERNAL.values()) <= used
    assert {reason for _, reason in PARSE_ONLY} | {SERVER_EXPORT} <= used
    runs = [c for c in COMMANDS if c.verdict == "run"]
    assert len(runs) >= 8, runs


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_whole_study_example_runs():
    section = _section("Whole studies (CT/MR volumes)")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", section, flags=re.S | re.M)
    lines = [ln for lang, body in blocks if lang == "bash" for ln in _logical_lines(body)]
    commands = [c for c in COMMANDS if c.line in lines]
    assert len(commands) == len(lines) >= 3
    assert all(c.verdict == "run" for c in commands), [c.line for c in commands]
    assert {"ground", "detect", "ground_volume"} <= {c.argv[1] for c in commands}
    # its Python example, and the notebook's VolumeViewer one, are among those run
    python = [body for lang, body in blocks if lang == "python"]
    viewer = [body for body in PYTHON_BLOCKS if "VolumeViewer(" in body]
    assert python and viewer and set(python + viewer) <= set(PYTHON_BLOCKS)
    assert any("--slices" in body for body in IPYTHON_BLOCKS)


# ---- medmo commands --------------------------------------------------------------------


def _parse(argv: list[str]) -> None:
    from medmo_agent.cli import build_parser

    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"medmo does not accept {shlex.join(argv)} (exit {exc.code})")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.verdict == "run"], ids=str)
def test_each_medmo_command_runs_as_pasted(command: Command, workdir: Path, capsys):
    from medmo_agent.cli import main

    code = main(command.argv[1:])
    captured = capsys.readouterr()
    assert code == 0, f"{command.line}\n{captured.out[-2000:]}\n{captured.err[-2000:]}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.verdict == "parse"], ids=str)
def test_each_medmo_command_that_needs_a_server_is_accepted(command: Command):
    _parse(command.argv)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.verdict == "synopsis"], ids=str)
def test_each_synopsis_names_only_options_its_command_has(command: Command):
    from medmo_agent.cli import build_parser

    sub = next(
        a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"
    ).choices[command.argv[1]]
    known = {s for action in sub._actions for s in action.option_strings}
    named = set(re.findall(r"--[a-z][a-z-]*", command.line))
    assert named <= known, named - known


def test_the_claude_code_line_starts_medmo_with_arguments_it_accepts():
    (claude,) = [c for c in COMMANDS if c.argv[:3] == ["claude", "mcp", "add"] and "--" in c.argv]
    _parse(claude.argv[claude.argv.index("--") + 1 :])


def test_pip_installs_name_extras_the_package_has():
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    for c in COMMANDS:
        if c.argv[0] == "pip":
            for target in c.argv[2:]:
                named = re.findall(r"\[([\w,-]+)\]", target)
                assert all(set(n.split(",")) <= extras for n in named), c.line


def test_pytest_marker_expressions_use_registered_markers():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    markers = {m.split(":")[0] for m in config["markers"]}
    for c in COMMANDS:
        if c.argv[0] == "pytest" and "-m" in c.argv:
            expression = c.argv[c.argv.index("-m") + 1]
            words = set(re.findall(r"\w+", expression)) - {"and", "or", "not"}
            assert words <= markers, c.line


def test_the_tiny_checkpoint_command_builds_one(tmp_path):
    (line,) = [c for c in COMMANDS if c.argv[:3] == ["python", "-m", "medmo_agent.testing.tiny"]]
    done = subprocess.run(
        [sys.executable, *line.argv[1:-1], str(tmp_path / "tiny")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "tiny" / "config.json").is_file()


# ---- YAML, JSON, IPython and Python examples -------------------------------------------


def test_the_yaml_cases_load_in_the_format_review_help_shows(workdir: Path, capsys):
    from medmo_agent.cli import main
    from medmo_agent.review import load_cases
    from medmo_agent.review.cli import _EPILOG

    (case,) = load_cases(workdir / "cases.yaml")
    assert case.expected_boxes[0].x1 == 210 and case.questions[0].expected == "yes"
    # the case `medmo review --help` shows is written the same way
    shown = _EPILOG.split("A YAML case:\n", 1)[1].split("A YAML file", 1)[0]
    shown = re.sub(r"#.*", "", shown)
    (workdir / "shown.yaml").write_text(shown)
    assert load_cases(workdir / "shown.yaml")[0].expected_boxes[0].label == "nodule"
    # and a box in another shape gets a fix that shows this one
    (workdir / "bad.yaml").write_text(
        YAML_BLOCKS[0].replace("x1: 210, y1: 188, x2: 260, y2: 236", "box: [1, 2, 3, 4]")
    )
    assert main(["review", "bad.yaml", "--out", "runs/bad"]) == 1
    err = capsys.readouterr().err
    assert "expected_boxes.0.box" in err and "{label, x1, y1, x2, y2}" in err


def test_each_json_block_is_a_client_configuration_or_the_access_token_example():
    assert len(CLIENT_BLOCKS) + len(TOKEN_BLOCKS) == len(JSON_BLOCKS)
    assert len(TOKEN_BLOCKS) == 1


@pytest.mark.parametrize("index", range(len(CLIENT_BLOCKS)))
def test_each_client_configuration_starts_medmo_with_arguments_it_accepts(index: int):
    config = json.loads(CLIENT_BLOCKS[index])
    # Claude Desktop and Cursor say mcpServers; VS Code says servers, with a type
    servers = config.get("mcpServers") or config["servers"]
    for server in servers.values():
        assert server.get("type", "stdio") == "stdio"
        assert server["command"] == "medmo"
        _parse(["medmo", *server["args"]])


@pytest.mark.slow
def test_the_ipython_magics_run_as_pasted(workdir: Path):
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_ext.session import reset_session

    reset_session()
    shell = InteractiveShell.instance()
    try:
        panels = []
        for block in IPYTHON_BLOCKS:
            cells = [block] if block.startswith("%%") else block.splitlines()
            for cell in cells:
                outcome = shell.run_cell(cell)
                assert outcome.success, (
                    f"{cell}: {outcome.error_in_exec or outcome.error_before_exec}"
                )
                if outcome.result is not None and hasattr(outcome.result, "wait"):
                    panels.append(outcome.result)
        assert len(panels) == 4
        for panel in panels:
            panel.wait(120)
            assert panel.job.error is None, panel.job.error
    finally:
        reset_session()


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_each_python_example_runs_as_pasted(index: int, workdir: Path):
    script = workdir / f"example_{index}.py"
    script.write_text(PYTHON_BLOCKS[index])
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"README example {index} failed:\n{PYTHON_BLOCKS[index]}\n{proc.stderr[-3000:]}"
    )
