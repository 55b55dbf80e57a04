"""A review step that sweeps a whole CT series: the case's record keeps the 3D findings,
its Markdown and HTML reports show the findings table and the overview strip, a re-run
resumes, and the reports name no patient and no path unless asked to."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.review import run_review
from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series

from .conftest import write_cases

PATIENT = ("Doe^Jane", "MRN-77123")


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    study = write_dicom_series(Phantom(), tmp_path / "Doe_Jane" / "ct-chest")
    for path in study.iterdir():  # a series as it comes: the patient named in every file
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID = PATIENT
        ds.save_as(path, enforce_file_format=True)
    return write_cases(
        tmp_path / "cases.yaml",
        [{"id": "ct-001", "images": [{"path": str(study)}], "targets": ["nodule"]}],
        steps=[{"ground_volume": "nodule", "name": "sweep"}],
    )


def _review(cases: Path, out: Path, backend: ScriptedBackend, **kwargs):
    return run_review(
        cases, out=out, backend=backend, settings=Settings(), progress=False, **kwargs
    )


def _overview_bytes(folder: Path) -> bytes:
    (png,) = folder.glob("overview-*.png")
    return png.read_bytes()


def test_a_volume_step_reports_its_findings_and_overview_and_resumes(cases, tmp_path):
    out = tmp_path / "run"
    backend = ScriptedBackend(responder=lesion_reply)
    results = _review(cases, out, backend)
    record = results["ct-001"]
    assert record.status == "ok", record.error
    (sweep,) = [s for s in record.steps if s.task == "ground_volume"]
    assert sweep.step == "sweep" and sweep.result["findings"][0]["slice_range"] == [5, 11]
    (volume,) = record.outputs["volumes"]
    assert volume["findings"][0]["key_slice"] == 8 and volume["overview"]
    case_dir = next(out.glob("cases/*ct-001*"))
    overview = _overview_bytes(case_dir)
    assert overview.startswith(b"\x89PNG")

    markdown = (case_dir / "report.md").read_text()
    assert "### 3D findings (sweep)" in markdown
    assert f"![Key slices with boxes]({volume['overview']})" in markdown
    assert "| 1 | nodule | 5–11 | 8 | 16.0 × 16.0 × 17.5 mm |" in markdown
    page = (out / "report.html").read_text()
    assert "3D findings, image 1 (sweep)" in page
    assert "<td>5–11</td>" in page and "<td>16.0 × 16.0 × 17.5 mm</td>" in page
    strip = re.search(r"<img class='overview'[^>]*src='data:image/png;base64,", page)
    assert strip is not None

    # a re-run skips the finished case and asks the model nothing; the report still shows it
    calls = len(backend.requests)
    again = _review(cases, out, backend)
    assert len(backend.requests) == calls
    assert again["ct-001"].outputs["volumes"][0]["overview"] == volume["overview"]
    assert "<td>5–11</td>" in (out / "report.html").read_text()
    assert _overview_bytes(case_dir) == overview


def test_volume_reports_name_no_patient_and_no_path_unless_asked(cases, tmp_path):
    out = tmp_path / "private"
    _review(cases, out, ScriptedBackend(responder=lesion_reply))
    written = [p for p in out.rglob("*") if p.suffix in (".md", ".html", ".json", ".jsonl")]
    assert len(written) >= 4
    for path in written:
        text = path.read_text()
        for secret in (*PATIENT, "Doe", "Doe_Jane", "ct-chest", str(tmp_path)):
            assert secret not in text, (path.name, secret)

    shown = tmp_path / "with-paths"
    _review(cases, shown, ScriptedBackend(responder=lesion_reply), include_paths=True)
    assert "Doe_Jane" in next(shown.glob("cases/*ct-001*/report.md")).read_text()


def test_a_volume_step_runs_on_the_tiny_checkpoint(cases, tmp_path, tiny_backend, tiny_settings):
    results = run_review(
        cases, out=tmp_path / "run", backend=tiny_backend, settings=tiny_settings, progress=False
    )
    record = results["ct-001"]
    assert record.status == "ok", record.error
    (sweep,) = [s for s in record.steps if s.task == "ground_volume"]
    assert sweep.result["backend"] == "transformers"
    assert len(sweep.result["per_slice"]) == sweep.result["shape"][0]
    assert all(e["error"] is None for e in sweep.result["per_slice"])


def test_a_4d_case_is_swept_and_drawn_at_the_frame_the_case_names(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from medmo_agent.testing.volumes import write_perfusion

    study = write_perfusion(tmp_path / "perfusion.nii.gz")
    cases = write_cases(
        tmp_path / "cases.yaml",
        [{"id": "p-1", "images": [{"path": str(study), "frame": 2}], "targets": ["nodule"]}],
        steps=["ground_volume: nodule"],
    )
    out = tmp_path / "run"
    record = _review(cases, out, ScriptedBackend(responder=lesion_reply))["p-1"]
    assert record.status == "ok", record.error
    (sweep,) = [s for s in record.steps if s.task == "ground_volume"]
    assert sweep.result["time_point"] == 2 and len(sweep.result["findings"]) == 1
    # the overview in the case's folder is drawn from time point 2, where the lesion is:
    # about 1,900 white pixels there against about 100 (the label) for another time point
    strip = np.asarray(Image.open(io.BytesIO(_overview_bytes(next(out.glob("cases/*p-1*"))))))
    white = strip.reshape(-1, strip.shape[-1])[:, :3].min(axis=1) > 200
    assert white.sum() > 500
