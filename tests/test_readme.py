"""The README's Python examples run as pasted (on an instant scripted backend, offline)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)

CASES_YAML = """\
cases:
  - id: case-001
    images: [{path: chest.png}]
    questions: ["Is there a pulmonary nodule?"]
    expected: {answer: "yes"}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with the files the README's examples name."""
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((512, 512)) * 255).astype("uint8")).save(tmp_path / "chest.png")
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct_slice.dcm")
    (tmp_path / "cases.yaml").write_text(CASES_YAML)
    return tmp_path


def test_the_readme_has_python_examples():
    assert len(PYTHON_BLOCKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_each_python_example_runs_as_pasted(index: int, workdir: Path):
    env = dict(os.environ, MEDMO_BACKEND="scripted", HF_HUB_OFFLINE="1")
    script = workdir / f"example_{index}.py"
    script.write_text(PYTHON_BLOCKS[index])
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"README example {index} failed:\n{PYTHON_BLOCKS[index]}\n{proc.stderr[-3000:]}"
    )
