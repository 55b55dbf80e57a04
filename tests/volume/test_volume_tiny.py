"""The sweep on the real transformers path (the tiny random checkpoint, CPU): every slice
is a real request through the batching runner, and the study read sends several images
in one prompt. The answers are random; the plumbing is what is checked."""

from __future__ import annotations

import pytest

from medmo_agent.testing.volumes import Phantom, write_dicom_series, write_nifti
from medmo_agent.toolkit import Toolkit


def test_a_series_sweep_and_study_read_run_on_the_tiny_checkpoint(
    tiny_backend, tiny_settings, tmp_path
):
    folder = write_dicom_series(Phantom(shape=(6, 64, 64)), tmp_path / "series")
    kit = Toolkit(tiny_backend, tiny_settings)
    before = tiny_backend.stats.get("requests", 0)
    result = kit.ground_volume(
        str(folder), ["nodule"], slices="1:4", study_read=True, max_new_tokens=6
    )
    assert result.backend == "transformers"
    assert [e.slice for e in result.per_slice] == [1, 2, 3]
    assert all(e.error is None for e in result.per_slice), result.per_slice
    assert sorted(result.slice_results) == [1, 2, 3]
    for r in result.slice_results.values():
        assert 1 <= r.usage.completion_tokens <= 6
        assert r.image_size == (64, 64)
    # the study read: several slices, one prompt, all its images seen by the model
    assert len(result.study_read_slices) == 3
    assert result.study_read is not None
    assert result.usage.prompt_tokens > 3 * 64  # three slices' visual tokens and more
    if "requests" in tiny_backend.stats:
        assert tiny_backend.stats["requests"] - before == 4
    dumped = result.model_dump()
    assert type(result).model_validate(dumped).model_dump() == dumped


def test_a_nifti_sweep_in_the_coronal_plane_runs_on_the_tiny_checkpoint(
    tiny_backend, tiny_settings, tmp_path
):
    path = write_nifti(Phantom(shape=(8, 40, 48)), tmp_path / "v.nii.gz")
    result = Toolkit(tiny_backend, tiny_settings).ground_volume(
        str(path), plane="coronal", slices="::15", window="400/50", max_new_tokens=4
    )
    assert result.plane == "coronal" and result.frame == "RAS"
    # coronal: slices along y; rows along z, whose 8 slices of 2.5 mm are stretched to 25
    # rows of 0.8 mm (square pixels), the same extent
    assert result.shape == (40, 25, 48)
    assert result.spacing_mm[:2] == pytest.approx((0.8, 0.8))
    assert result.slices == [0, 15, 30]
    assert all(e.error is None for e in result.per_slice)


def test_the_diagnostic_workflow_sweeps_a_series_on_the_tiny_checkpoint(
    tiny_backend, tiny_settings, tmp_path
):
    from medmo_agent.agent.workflow import DiagnosticWorkflow

    folder = write_dicom_series(Phantom(shape=(4, 64, 64)), tmp_path / "series")
    before = tiny_backend.stats.get("requests", 0)
    trace = DiagnosticWorkflow(toolkit=Toolkit(tiny_backend, tiny_settings)).run(
        str(folder), "Is there a nodule?"
    )
    calls = [s for s in trace.steps if s.kind == "tool_call"]
    # the real model's first step is the sweep over every slice of the series
    assert (calls[0].workflow_step, calls[0].tool) == ("sweep", "ground_volume")
    sweep = next(s for s in trace.steps if s.kind == "tool_result" and s.tool == "ground_volume")
    assert sweep.error is None, sweep
    assert [e["slice"] for e in sweep.result["per_slice"]] == [0, 1, 2, 3]
    assert trace.conclusion
    if "requests" in tiny_backend.stats:
        assert tiny_backend.stats["requests"] - before >= 4 + len(calls) - 1


def test_the_command_line_sweep_runs_on_the_tiny_checkpoint(tiny_checkpoint, tmp_path, capsys):
    import json

    from medmo_agent.cli import main

    write_dicom_series(Phantom(shape=(4, 64, 64)), tmp_path / "study")
    model = ["--backend", "transformers", "--model", str(tiny_checkpoint), "--device", "cpu"]
    sweep = ["ground", str(tmp_path / "study"), "--slices", "all", "--json"]
    code = main([*sweep, *model, "--max-new-tokens", "6", "--overlay-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["task"] == "ground_volume" and data["backend"] == "transformers"
    assert [e["slice"] for e in data["per_slice"]] == [0, 1, 2, 3]
    assert (tmp_path / "out").is_dir()
