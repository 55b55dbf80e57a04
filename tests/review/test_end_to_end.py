"""End to end on the tiny random checkpoint: real DICOM, NIfTI and PNG cases, a broken
one, and a real ``medmo review`` process killed mid-run and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from medmo_agent.review import run_review

from .conftest import write_cases, write_png


def _bundled_files() -> tuple[str, str]:
    from nibabel.testing import data_path
    from pydicom.data import get_testdata_file

    return get_testdata_file("CT_small.dcm"), os.path.join(data_path, "anatomical.nii")


def test_the_workflow_reviews_dicom_nifti_and_png_cases_on_the_tiny_model(
    tmp_path, tiny_backend, tiny_settings
):
    ct, nifti = _bundled_files()
    write_png(tmp_path / "chest.png")
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    cases = write_cases(
        tmp_path / "cases.yaml",
        [
            {
                "id": "ct",
                "images": [{"path": ct, "window": "lung"}],
                "questions": [{"question": "Is there a nodule?", "expected": "no"}],
            },
            {"id": "mr", "images": [{"path": nifti, "plane": "coronal"}], "context": "headache"},
            {"id": "png", "image": "chest.png", "expected_labels": ["No Finding"]},
            {"id": "broken", "image": "broken.dcm"},
        ],
    )
    out = tmp_path / "out"
    result = run_review(cases, backend=tiny_backend, settings=tiny_settings, out=out, workers=2)
    status = {r.id: r.status for r in result.records}
    assert status == {"ct": "ok", "mr": "ok", "png": "ok", "broken": "failed"}
    assert result["broken"].error["error"] == "ImageLoadError"
    assert result["ct"].images[0].meta["modality"] == "CT"
    assert result["ct"].images[0].meta["window"]["name"] == "lung"
    assert result["mr"].images[0].meta["plane"] == "coronal"
    workflow = [s.step for s in result["png"].steps if s.task not in ("load", "thought")]
    assert workflow[:2] == ["identify", "localize"] and workflow[-1] == "workflow"
    for rec in result.records:
        assert rec.provenance.model == str(tiny_backend.model_id)
        assert rec.provenance.backend == "transformers"
        if rec.status == "ok":
            overlay = out / "cases" / rec.id / "overlay-0.png"
            with Image.open(overlay) as im:
                assert im.format == "PNG" and max(im.size) <= 1024
            assert (out / "cases" / rec.id / "report.md").read_text().startswith(f"# Case {rec.id}")
    assert result.agreement["answers"]["n"] == 1
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == ["broken", "ct", "mr", "png"]
    # the bundled CT names its (fictional) patient; no output may repeat it
    from pydicom import dcmread

    patient = str(dcmread(ct).PatientName)
    assert patient
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".html", ".csv"):
            assert patient not in path.read_text(), path


@pytest.mark.slow
def test_a_review_killed_mid_run_resumes_without_losing_or_changing_finished_cases(
    tmp_path, tiny_checkpoint
):
    write_png(tmp_path / "chest.png")
    n = 24
    cases = write_cases(
        tmp_path / "cases.yaml", [{"id": f"case-{i:02d}", "image": "chest.png"} for i in range(n)]
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "medmo_agent.cli",
        "review",
        str(cases),
        "--out",
        str(out),
        "--steps",
        "report,vqa:Is this normal?",
        "--workers",
        "2",
        "--no-progress",
        "--model",
        str(tiny_checkpoint),
        "--backend",
        "transformers",
        "--device",
        "cpu",
        "--max-new-tokens",
        "8",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDMO_DTYPE": "float32"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        # wait until at least one case is finished (its record is written last)
        while not list(out.glob("cases/*/record.json")):
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no case finished in time"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    finished = sorted(out.glob("cases/*/record.json"))
    assert 1 <= len(finished) < n, "the kill should land mid-run"
    snapshot = {}
    for record in finished:
        assert json.loads(record.read_text())["status"] == "ok"  # complete, parseable
        for f in record.parent.iterdir():
            snapshot[f] = f.read_bytes()

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{len(finished)} already done" in again.stdout
    assert {f: f.read_bytes() for f in snapshot} == snapshot
    ids = [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()]
    assert ids == [f"case-{i:02d}" for i in range(n)]  # each case exactly once, in order
    assert len(list(out.glob("cases/*/record.json"))) == n
    assert not list(out.rglob(".tmp-*"))


@pytest.mark.parametrize("include", [False, True])
def test_review_files_name_image_paths_only_with_include_paths(
    tmp_path, tiny_backend, tiny_settings, include
):
    import csv

    folder = tmp_path / "Jane_Doe_1961"
    folder.mkdir()
    write_png(folder / "chest.png")
    cases = write_cases(
        tmp_path / "cases.yaml",
        [
            {"id": "seen", "image": "Jane_Doe_1961/chest.png"},
            {"id": "missing", "image": "Jane_Doe_1961/gone.png"},
        ],
    )
    out = tmp_path / "out"
    settings = tiny_settings.replace(include_paths=include)
    result = run_review(cases, "vqa", backend=tiny_backend, settings=settings, out=out)
    assert {r.id: r.status for r in result.records} == {"seen": "ok", "missing": "failed"}
    assert "Jane_Doe_1961" in json.dumps(result["missing"].error), "returned records keep it"
    with open(out / "summary.csv", newline="") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    assert rows["missing"]["error"]
    assert ("Jane_Doe_1961" in rows["missing"]["error"]) is include
    if not include:  # the relative path as given and the file read share one label
        from medmo_agent.privacy import path_label

        record = json.loads((out / "cases" / "missing" / "record.json").read_text())
        label = path_label(str(folder / "gone.png"))
        assert record["images"][0]["path"] == label and label in rows["missing"]["error"]
    written = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert {p.name for p in written} >= {"summary.csv", "results.jsonl", "report.html"}
    assert {"record.json", "report.md"} <= {p.name for p in written}
    naming = {"summary.csv", "results.jsonl", "report.html", "record.json", "report.md"}
    for path in written:
        text = path.read_text(encoding="utf-8")
        if include and path.name in naming and path.parent.name != "seen":
            assert "Jane_Doe_1961" in text, path
        elif not include:
            assert "Jane_Doe_1961" not in text, path
