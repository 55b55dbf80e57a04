"""``medmo ground study/ --slices all --overlay-dir out/``: the per-slice command sweeps
the volume and writes an overlay per slice with boxes, plus the overview."""

from __future__ import annotations

import json

import pytest
from PIL import Image

import medmo_agent.backends
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.cli import main
from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series


@pytest.fixture
def lesion_backend(monkeypatch):
    backend = ScriptedBackend(responder=lesion_reply)
    monkeypatch.setattr(medmo_agent.backends, "create_backend", lambda settings: backend)
    return backend


def test_ground_with_slices_sweeps_the_study_and_writes_overlays(
    tmp_path, lesion_backend, capsys, monkeypatch
):
    write_dicom_series(Phantom(), tmp_path / "study")
    monkeypatch.chdir(tmp_path)
    code = main(["ground", "study/", "--slices", "all", "--overlay-dir", "out/", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["task"] == "ground_volume" and data["mode"] == "ground"
    assert len(lesion_backend.requests) == 24
    (finding,) = data["findings"]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["overview.png"] + [f"slice_{i:04d}.png" for i in range(5, 12)]
    assert Image.open(tmp_path / "out" / "slice_0008.png").size == (64, 64)
    assert "8 overlay(s) written" in captured.err
    assert finding["key_slice"] == 8


def test_without_slices_ground_still_reads_one_slice(tmp_path, lesion_backend, capsys):
    write_dicom_series(Phantom(), tmp_path / "study")
    assert main(["ground", str(tmp_path / "study"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "ground" and len(lesion_backend.requests) == 1


def test_detect_with_slices_sweeps_in_detect_mode_and_streams_a_line_per_slice(
    tmp_path, lesion_backend, capsys
):
    write_dicom_series(Phantom(), tmp_path / "study")
    code = main(["detect", str(tmp_path / "study"), "lesion", "--slices", "4:8", "--stream"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "lesions" in lesion_backend.requests[0].messages[-1].text
    assert captured.err.count(" slices)") == 4
    assert captured.out.startswith("1 finding(s) over 4 of 4 axial slice(s)")


def test_overlay_dir_without_a_sweep_is_refused_before_the_model_runs(
    tmp_path, lesion_backend, capsys
):
    write_dicom_series(Phantom(), tmp_path / "study")
    code = main(["ground", str(tmp_path / "study"), "--overlay-dir", str(tmp_path / "o")])
    assert code == 1
    assert "--slices all" in capsys.readouterr().err
    assert lesion_backend.requests == []
