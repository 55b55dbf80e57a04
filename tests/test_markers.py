"""The documented test commands select what the README says they select."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each check collects in a fresh interpreter

ROOT = Path(__file__).resolve().parents[1]
GPU_FILE = "tests/backends/test_transformers_gpu.py"


def _collected(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode in (0, 5), out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("args", [(), ("-m", "not slow and not browser")])
def test_gpu_tests_are_left_out_unless_the_marker_expression_names_them(args):
    assert _collected(GPU_FILE, *args) == []


def test_pytest_m_gpu_selects_the_gpu_tier():
    collected = _collected(GPU_FILE, "-m", "gpu")
    assert collected
    assert all(line.startswith(GPU_FILE) for line in collected)
