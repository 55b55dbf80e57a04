"""Every notebook runs top to bottom on the tiny checkpoint, through a real kernel (nbclient).

Model calls in notebooks run in background threads, so after the last cell the test runs
one more cell in the same kernel that waits for every job the notebook started and fails
with their messages if any failed: an error shown in red in a widget fails the test too.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from medmo_agent.testing import SCRIPTED_REPLIES_ENV

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

_CHECK = """\
from jupyter_ext.jobs import describe_error, wait_all
_failed = wait_all(240)
assert not _failed, [f"{j.name}: {describe_error(j.error)}" for j in _failed]
"""


def test_the_five_notebooks_exist_and_are_stored_without_outputs():
    assert ALL[:5] == [
        "01_quickstart.ipynb",
        "02_clinical_images.ipynb",
        "03_agent_trace.ipynb",
        "04_case_review.ipynb",
        "05_remote_mcp.ipynb",
    ]
    for name in ALL:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@pytest.mark.parametrize("name", ALL)
def test_notebook_runs_top_to_bottom_on_the_tiny_checkpoint(
    name, tiny_checkpoint, tmp_path, monkeypatch
):
    from nbclient import NotebookClient

    monkeypatch.setenv("MEDMO_MODEL", str(tiny_checkpoint))
    monkeypatch.setenv("MEDMO_BACKEND", "transformers")
    monkeypatch.setenv("MEDMO_DEVICE", "cpu")
    monkeypatch.setenv("MEDMO_DTYPE", "float32")
    monkeypatch.setenv("MEDMO_MAX_NEW_TOKENS", "12")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(SCRIPTED_REPLIES_ENV, raising=False)
    # run a copy, so outputs the notebook writes (review folders) land in tmp_path
    work = tmp_path / "notebooks"
    work.mkdir()
    (work / "data").symlink_to(NOTEBOOKS / "data")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_CHECK))
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any failure
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert errors == []
