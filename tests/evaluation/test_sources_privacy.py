"""A benchmark image that is missing is named by its absolute path, which the report
shows as a label: a local data set's file name may name a patient."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmo_agent.evaluation.benchmarks import BENCHMARKS
from medmo_agent.evaluation.report import _reason
from medmo_agent.evaluation.sources import _finder


def test_a_missing_image_is_named_by_a_path_the_report_can_label(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "images").mkdir(parents=True)
    spec = next(iter(BENCHMARKS.values()))
    find = _finder(spec, Path("data") / "images")  # --data-dir given as a relative path
    with pytest.raises(FileNotFoundError) as info:
        find("Jane_Doe_1961.png")
    message = f"{type(info.value).__name__}: {info.value}"
    assert str(tmp_path / "data" / "images" / "Jane_Doe_1961.png") in message
    shown = _reason({"error": message}, include_paths=False)
    assert "Jane_Doe" not in shown and "path#" in shown
    assert "Jane_Doe_1961.png" in _reason({"error": message}, include_paths=True)
