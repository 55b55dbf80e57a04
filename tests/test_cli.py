"""The ``medmo`` command as a user runs it: every task on the tiny checkpoint, overlays,
``info``, and errors as one clear line with a non-zero exit."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import medmo_agent.backends
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.cli import build_parser, main
from medmo_agent.imaging import PALETTE, load_image
from medmo_agent.imaging.geometry import model_input_size
from medmo_agent.tasks.results import (
    ClassificationResult,
    DetectionResult,
    GroundingResult,
    ReasoningResult,
    ReportResult,
    SummaryResult,
    TextQAResult,
    VQAResult,
)

IMAGE_COMMANDS = ("ask", "ground", "detect", "report", "classify", "reason")
TEXT_COMMANDS = ("summarize", "qa")


@pytest.fixture
def grey_png(tmp_path: Path) -> Path:
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((100, 200), 90, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def scripted(monkeypatch):
    """Make ``--backend scripted`` answer with the given replies; returns the backend."""

    def install(*replies: str) -> ScriptedBackend:
        backend = ScriptedBackend(list(replies))
        monkeypatch.setattr(medmo_agent.backends, "create_backend", lambda settings: backend)
        return backend

    return install


def _tiny(tiny_checkpoint: Path) -> list[str]:
    return ["--model", str(tiny_checkpoint), "--max-new-tokens", "8"]


def test_ground_on_a_real_ct_dicom_prints_the_result_json_and_writes_the_overlay(
    tiny_checkpoint, ct_dicom, tmp_path, capsys
):
    out = tmp_path / "sub" / "o.png"
    argv = ["ground", ct_dicom, "lung", "--json", "--overlay", str(out), *_tiny(tiny_checkpoint)]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = GroundingResult.model_validate_json(captured.out)
    assert result.targets == ["lung"]
    assert (result.backend, result.model) == ("transformers", str(tiny_checkpoint))
    assert 1 <= result.usage.completion_tokens <= 8
    assert result.image.meta.format == "dicom" and result.image.meta.modality == "CT"
    assert result.image_size == (128, 128)
    assert f"overlay written to {out}" in captured.err
    # The random model gives no readable boxes: the overlay is the CT rendering itself.
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert np.array_equal(drawn, np.asarray(load_image(ct_dicom).to_pil()))


def test_ground_on_a_nifti_slice_uses_the_slice_plane_and_window_asked_for(
    tiny_checkpoint, nifti, tmp_path, capsys
):
    out = tmp_path / "n.png"
    code = main(
        [
            "ground",
            nifti,
            "left ventricle",
            "--slice",
            "5",
            "--plane",
            "coronal",
            "--window",
            "brain",
            "--json",
            "--overlay",
            str(out),
            *_tiny(tiny_checkpoint),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    meta = GroundingResult.model_validate_json(captured.out).image.meta
    assert (meta.format, meta.slice, meta.plane) == ("nifti", 5, "coronal")
    assert meta.window.name == "brain"
    assert Image.open(out).size == tuple(meta.original_size)


@pytest.mark.slow
def test_the_installed_medmo_command_grounds_a_dicom_file_end_to_end(
    tiny_checkpoint, ct_dicom, tmp_path
):
    script = shutil.which("medmo", path=str(Path(sys.executable).parent))
    assert script, "the medmo console script is not installed beside this Python"
    out = tmp_path / "o.png"
    proc = subprocess.run(
        [
            script,
            "ground",
            ct_dicom,
            "lung",
            "--json",
            "--overlay",
            str(out),
            *_tiny(tiny_checkpoint),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["task"] == "ground"
    assert Image.open(out).format == "PNG"


def test_overlay_draws_each_box_where_the_json_puts_it_in_original_pixels(
    grey_png, tmp_path, scripted, capsys
):
    scripted("Fracture <box>[[40, 30, 120, 80]]</box>")
    out = tmp_path / "o.png"
    code = main(
        [
            "ground",
            str(grey_png),
            "fracture",
            "--backend",
            "scripted",
            "--json",
            "--overlay",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = GroundingResult.model_validate_json(captured.out)
    mw, mh = model_input_size((200, 100), 65_536, 1_048_576)
    expected = (40 * 200 / mw, 30 * 100 / mh, 120 * 200 / mw, 80 * 100 / mh)
    assert [b.label for b in result.boxes] == ["Fracture"]
    assert result.boxes[0].xyxy == pytest.approx(expected, abs=0.5)
    assert "(1 box(es))" in captured.err
    drawn = np.asarray(Image.open(out).convert("RGB"))
    x1, y1, x2, y2 = (round(v) for v in result.boxes[0].xyxy)
    assert tuple(drawn[(y1 + y2) // 2, x1]) == PALETTE[0]  # left edge, in the label colour
    assert tuple(drawn[(y1 + y2) // 2, x2]) == PALETTE[0]  # right edge
    assert tuple(drawn[(y1 + y2) // 2, (x1 + x2) // 2]) == (90, 90, 90)  # inside: untouched


def test_detect_counts_objects_per_label_and_draws_them(grey_png, tmp_path, scripted, capsys):
    scripted("cell <box>[[10, 10, 40, 40]]</box> cell <box>[[100, 50, 140, 90]]</box>")
    out = tmp_path / "d.png"
    code = main(
        ["detect", str(grey_png), "cell", "--backend", "scripted", "--json", "--overlay", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = DetectionResult.model_validate_json(captured.out)
    assert result.counts == {"cell": 2}
    assert "(2 box(es))" in captured.err
    drawn = np.asarray(Image.open(out).convert("RGB"))
    for box in result.boxes:
        x1, y1, _x2, y2 = (round(v) for v in box.xyxy)
        assert tuple(drawn[(y1 + y2) // 2, x1]) == PALETTE[0]


@pytest.mark.parametrize(
    ("argv", "model"),
    [
        (["ask", "{png}", "Is there an effusion?"], VQAResult),
        (["ask", "{png}", "Which side?", "--options", "left", "right"], VQAResult),
        (["report", "{png}", "--context", "67M, cough"], ReportResult),
        (["classify", "{png}", "--labels", "Nodule", "Mass"], ClassificationResult),
        (["reason", "{png}", "What is the most likely diagnosis?"], ReasoningResult),
        (["detect", "{png}", "cell"], DetectionResult),
        (["summarize", "{report}"], SummaryResult),
        (["qa", "Which organ makes insulin?", "--options", "liver", "pancreas"], TextQAResult),
    ],
)
def test_every_task_command_answers_from_the_tiny_checkpoint_as_its_result_json(
    tiny_checkpoint, grey_png, tmp_path, capsys, argv, model
):
    report = tmp_path / "report.txt"
    report.write_text("Findings: small left effusion. Impression: effusion.\n")
    argv = [a.format(png=grey_png, report=report) for a in argv]
    code = main([*argv, "--json", *_tiny(tiny_checkpoint)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = model.model_validate_json(captured.out)
    assert (result.backend, result.model) == ("transformers", str(tiny_checkpoint))
    assert 1 <= result.usage.completion_tokens <= 8
    assert result.raw_text
    assert (result.image is None) == (argv[0] in TEXT_COMMANDS)


def test_without_json_a_task_prints_its_short_summary(grey_png, scripted, capsys):
    scripted("B")
    code = main(
        ["ask", str(grey_png), "Which side?", "--options", "left", "right", "--backend", "scripted"]
    )
    assert code == 0
    assert capsys.readouterr().out == "B. right\n"


def test_summarize_reads_the_report_from_stdin(scripted, monkeypatch, capsys):
    backend = scripted("- Small left effusion.\nSummary: effusion.")
    monkeypatch.setattr(sys, "stdin", io.StringIO("Findings: small left effusion at the base."))
    code = main(["summarize", "-", "--backend", "scripted", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = SummaryResult.model_validate_json(captured.out)
    assert result.key_findings == ["Small left effusion."]
    assert "small left effusion at the base" in backend.requests[0].messages[-1].text


def test_summarize_refuses_binary_stdin_in_one_line(scripted, monkeypatch, capsys):
    scripted("unused")
    stdin = io.TextIOWrapper(io.BytesIO(b"\xff\xfe binary"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    code = main(["summarize", "-", "--backend", "scripted"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("medmo: error: Standard input is not UTF-8 text")


def test_qa_maps_the_chosen_letter_to_its_option(scripted, capsys):
    scripted("B")
    code = main(
        [
            "qa",
            "Which organ makes insulin?",
            "--options",
            "liver",
            "pancreas",
            "--backend",
            "scripted",
            "--json",
        ]
    )
    result = TextQAResult.model_validate_json(capsys.readouterr().out)
    assert code == 0
    assert (result.choice, result.choice_text) == ("B", "pancreas")


@pytest.mark.parametrize("command", IMAGE_COMMANDS + TEXT_COMMANDS)
def test_every_task_command_takes_the_model_and_backend_options(command):
    argv = [command, *(["img.png"] if command in IMAGE_COMMANDS else [])]
    argv += {"ask": ["q"], "reason": ["q"], "summarize": ["-"], "qa": ["q"]}.get(command, [])
    argv += ["--model", "m", "--backend", "openai", "--base-url", "http://gpu:8000/v1", "--json"]
    args = build_parser().parse_args(argv)
    assert (args.model, args.backend, args.base_url, args.json) == (
        "m",
        "openai",
        "http://gpu:8000/v1",
        True,
    )


@pytest.mark.parametrize("command", IMAGE_COMMANDS)
def test_every_image_command_takes_window_slice_frame_and_plane(command):
    argv = [command, "scan.nii.gz", *(["q"] if command in ("ask", "reason") else [])]
    argv += ["--window", "400/40", "--slice", "3", "--frame", "1", "--plane", "sagittal"]
    args = build_parser().parse_args(argv)
    assert (args.window, args.slice, args.frame, args.plane) == ("400/40", 3, 1, "sagittal")
    assert hasattr(args, "overlay") == (command in ("ground", "detect"))


def test_info_says_a_local_checkpoint_loads_offline(tiny_checkpoint, capsys):
    assert main(["info", "--model", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("medmo-agent ")
    assert f"{tiny_checkpoint} via transformers" in out
    assert "weights: cached (loads offline)" in out
    assert "torch " in out and "devices:" in out


def test_info_json_says_an_uncached_hub_model_downloads_on_first_use(capsys):
    assert main(["info", "--model", "nobody/no-such-medmo-model", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == {
        "model": "nobody/no-such-medmo-model",
        "backend": "transformers",
        "weights_cached": False,
    }
    assert info["packages"]["transformers"]
    assert isinstance(info["devices"]["cuda_available"], bool)


def test_info_names_the_server_of_the_openai_backend(capsys):
    code = main(["info", "--backend", "openai", "--base-url", "http://gpu:8000/v1", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["model"]["base_url"] == "http://gpu:8000/v1"


def _corrupt(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return str(path)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["ask", "{tmp}/missing.dcm", "q"], "No such file"),
        (["ground", "{corrupt}"], "corrupt.png"),
        (["ground", "{ct}", "--window", "sharp"], "Unknown window 'sharp'"),
        (["ground", "{ct}", "--window", "0/40"], "Window width must be positive"),
        (["report", "{nifti}", "--slice", "99"], "Slice 99 is out of range"),
        (["report", "{ct}", "--frame", "3"], "frame"),
        (["summarize", "{tmp}/missing.txt"], "Cannot read report file"),
        (["summarize", "{binary}"], "is not UTF-8 text"),
        (["ground", "{ct}", "--overlay", "{tmp}"], "Cannot write the overlay"),
        (["qa", "  "], "question"),
        (["ask", "{ct}", "q", "--backend", "openai"], "needs the server's URL"),
    ],
)
def test_errors_are_one_clear_line_with_the_fix_and_a_non_zero_exit(
    tmp_path, ct_dicom, nifti, capsys, argv, says, monkeypatch
):
    monkeypatch.delenv("MEDMO_BASE_URL", raising=False)
    monkeypatch.setenv("MEDMO_BACKEND", "scripted")  # never load a model for these
    binary = tmp_path / "report.docx"
    binary.write_bytes(b"PK\x03\x04\xff\xfe binary")
    fill = {"tmp": tmp_path, "corrupt": _corrupt(tmp_path), "ct": ct_dicom, "nifti": nifti}
    fill["binary"] = binary
    code = main([a.format(**fill) for a in argv])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("medmo: error: ")
    assert says in lines[0]
    assert "Fix: " in lines[0]


def test_no_command_prints_the_usage_and_exits_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in (*IMAGE_COMMANDS, *TEXT_COMMANDS, "info", "serve"):
        assert command in out


@pytest.mark.parametrize("include", [False, True])
def test_json_output_names_the_image_path_only_with_include_paths(
    tiny_checkpoint, tmp_path, capsys, monkeypatch, include
):
    folder = tmp_path / "Jane_Doe_1961"
    folder.mkdir()
    image = folder / "chest.png"
    Image.fromarray(np.full((64, 64), 90, dtype=np.uint8)).save(image)
    monkeypatch.delenv("MEDMO_INCLUDE_PATHS", raising=False)
    flag = ["--include-paths"] if include else []
    code = main(["ask", str(image), "Normal?", "--json", *flag, *_tiny(tiny_checkpoint)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = VQAResult.model_validate_json(captured.out)
    assert ("Jane_Doe_1961" in captured.out) is include
    assert (str(image) in captured.out) is include
    if include:
        assert result.image.meta.source == str(image)
    else:
        assert result.image.meta.source.startswith("path#")
        assert result.image.meta.source.endswith(".png")
        assert result.image.handle == result.image.meta.source


def test_the_include_paths_setting_also_comes_from_the_environment(
    grey_png, scripted, capsys, monkeypatch
):
    scripted("Yes.")
    monkeypatch.setenv("MEDMO_INCLUDE_PATHS", "1")
    assert main(["ask", str(grey_png), "Normal?", "--backend", "scripted", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["image"]["meta"]["source"] == str(grey_png)


# ---- the subcommands are imported plainly ----------------------------------------------

_HELP_WITH_BROKEN_MODULE = """
import importlib.abc, sys

class Broken(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == sys.argv[1]:
            raise ImportError(f"{name} is broken on purpose")
        return None

sys.meta_path.insert(0, Broken())
from medmo_agent.cli import main
sys.exit(main(["--help"]))
"""


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("serve", "mcp_server.cli"),
        ("agent", "medmo_agent.agent.cli"),
        ("review", "medmo_agent.review.cli"),
        ("eval", "medmo_agent.evaluation.cli"),
    ],
)
def test_a_broken_subcommand_module_fails_the_help_loudly(command, module):
    intact = subprocess.run(
        [sys.executable, "-c", _HELP_WITH_BROKEN_MODULE, "not.a.module"],
        capture_output=True,
        text=True,
    )
    assert intact.returncode == 0 and f"    {command} " in intact.stdout, intact.stderr
    broken = subprocess.run(
        [sys.executable, "-c", _HELP_WITH_BROKEN_MODULE, module],
        capture_output=True,
        text=True,
    )
    # not a help that silently lacks the command: the import error itself
    assert broken.returncode != 0
    assert f"ImportError: {module} is broken on purpose" in broken.stderr
    assert f"    {command} " not in broken.stdout


def test_the_help_with_every_subcommand_imports_nothing_heavy():
    code = (
        "import sys, json\n"
        "from medmo_agent.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('torch', 'transformers', 'langchain', 'langchain_core', 'langgraph', 'mcp',\n"
        "         'starlette', 'uvicorn', 'openai', 'PIL', 'numpy')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "serve" in out.stdout and "agent" in out.stdout and "review" in out.stdout
    assert "eval" in out.stdout
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []
