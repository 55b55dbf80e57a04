"""Running reviews on the scripted model: files, resume, failures, selection, workers."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import pytest

from medmo_agent import __version__
from medmo_agent.errors import BackendError, InputError
from medmo_agent.privacy import path_label
from medmo_agent.review import prompts_hash, run_review

from .conftest import ScriptedModel, write_cases, write_png


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def cases_file(tmp_path: Path) -> Path:
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=1)
    return write_cases(
        tmp_path / "cases.yaml",
        [
            {"id": "a", "image": "a.png", "questions": ["Is there a nodule?"]},
            {"id": "b", "image": "b.png", "context": "67M"},
            {"id": "broken", "image": "missing.png"},
        ],
    )


def test_each_case_gets_a_record_overlays_and_a_report_and_the_run_its_summaries(
    cases_file, tmp_path, scripted, scripted_settings
):
    out = tmp_path / "out"
    result = run_review(
        cases_file,
        steps="ground,vqa,report",
        backend=scripted,
        out=out,
        settings=scripted_settings,
    )
    assert [r.status for r in result.records] == ["ok", "ok", "failed"]
    case_a = out / "cases" / "a"
    record = json.loads((case_a / "record.json").read_text())
    assert [s["task"] for s in record["steps"]] == ["load", "ground", "vqa", "report"]
    assert record["outputs"]["boxes"][0][0]["label"] == "nodule"
    assert (case_a / "overlay-0.png").read_bytes().startswith(b"\x89PNG")
    assert "Lung nodule." in (case_a / "report.md").read_text()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "broken"]
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["id"], r["status"]) for r in rows] == [
        ("a", "ok"),
        ("b", "ok"),
        ("broken", "failed"),
    ]
    # the file is named by its label (include_paths shows the path)
    assert path_label(str(tmp_path / "missing.png")) in rows[2]["error"]
    assert (out / "report.html").read_text().count("class='case'") == 3


def test_every_record_carries_its_provenance(cases_file, tmp_path, scripted, scripted_settings):
    result = run_review(
        cases_file,
        steps="report",
        backend=scripted,
        out=tmp_path / "out",
        settings=scripted_settings.replace(max_new_tokens=64),
    )
    prov = result.records[0].provenance
    assert prov.model == "scripted-medmo"
    assert prov.backend == "scripted"
    assert prov.package_version == __version__
    assert prov.prompts_sha256 == prompts_hash() and len(prov.prompts_sha256) == 64
    assert prov.parameters["max_new_tokens"] == 64
    assert prov.steps == [{"task": "report"}]
    assert all(r.provenance == prov for r in result.records)


def test_running_again_skips_finished_cases_and_leaves_their_files_untouched(
    cases_file, tmp_path, scripted_settings
):
    out = tmp_path / "out"
    first = run_review(
        cases_file,
        steps="ground,report",
        backend=ScriptedModel(),
        out=out,
        settings=scripted_settings,
    )
    before = _snapshot(out / "cases" / "a") | _snapshot(out / "cases" / "b")
    again = ScriptedModel()
    second = run_review(
        cases_file, steps="ground,report", backend=again, out=out, settings=scripted_settings
    )
    assert (first.ran, second.ran, second.skipped) == (3, 1, 2)  # only the failed one again
    assert again.calls == 0  # the broken case fails before the model is asked
    assert _snapshot(out / "cases" / "a") | _snapshot(out / "cases" / "b") == before
    ids = [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()]
    assert ids == ["a", "b", "broken"]


def test_keep_failed_leaves_failed_cases_alone(cases_file, tmp_path, scripted, scripted_settings):
    out = tmp_path / "out"
    run_review(cases_file, steps="report", backend=scripted, out=out, settings=scripted_settings)
    failed_record = (out / "cases" / "broken" / "record.json").read_bytes()
    result = run_review(
        cases_file,
        steps="report",
        backend=scripted,
        out=out,
        settings=scripted_settings,
        retry_failed=False,
    )
    assert result.ran == 0 and result.skipped == 3
    assert [r.id for r in result.failed] == ["broken"]
    assert (out / "cases" / "broken" / "record.json").read_bytes() == failed_record


def test_changing_the_steps_or_a_case_reviews_those_cases_again(
    cases_file, tmp_path, scripted, scripted_settings
):
    out = tmp_path / "out"
    run_review(cases_file, steps="report", backend=scripted, out=out, settings=scripted_settings)
    redo = run_review(
        cases_file, steps="classify", backend=scripted, out=out, settings=scripted_settings
    )
    assert redo.ran == 3
    assert redo["a"].outputs["labels"] == ["Nodule", "Effusion"]
    text = cases_file.read_text().replace("67M", "68F")
    cases_file.write_text(text)
    changed = run_review(
        cases_file,
        steps="classify",
        backend=scripted,
        out=out,
        settings=scripted_settings,
        retry_failed=False,
    )
    assert changed.ran == 1 and changed["b"].context == "68F"


def test_broken_cases_are_recorded_with_their_reason_and_the_run_goes_on(
    tmp_path, scripted_settings
):
    write_png(tmp_path / "ok.png")
    write_png(tmp_path / "model-fails.png", size=(352, 288))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")

    def hook(request):
        if request.images and request.images[0].size == (352, 288):
            raise BackendError("The model server went away.", fix="Restart it.")

    cases = write_cases(
        tmp_path / "cases.yaml",
        [
            {"id": "missing", "image": "nowhere.png"},
            {"id": "corrupt", "image": "corrupt.png"},
            {"id": "model-error", "image": "model-fails.png"},
            {"id": "fine", "image": "ok.png"},
        ],
    )
    result = run_review(
        cases,
        steps="report",
        backend=ScriptedModel(hook),
        out=tmp_path / "out",
        settings=scripted_settings,
        workers=2,
    )
    status = {r.id: (r.status, (r.error or {}).get("error")) for r in result.records}
    assert status == {
        "missing": ("failed", "ImageLoadError"),
        "corrupt": ("failed", "ImageLoadError"),
        "model-error": ("failed", "BackendError"),
        "fine": ("ok", None),
    }
    model_error = result["model-error"]
    assert model_error.error["fix"] == "Restart it."
    assert [s.status for s in model_error.steps] == ["ok", "failed"]  # load, then report
    assert "went away" in (tmp_path / "out" / "cases" / "model-error" / "report.md").read_text()


def test_only_and_limit_pick_cases_and_an_unknown_id_is_refused(
    cases_file, tmp_path, scripted, scripted_settings
):
    out = tmp_path / "out"
    only = run_review(
        cases_file,
        steps="report",
        backend=scripted,
        out=out,
        settings=scripted_settings,
        only=["b"],
    )
    assert [r.id for r in only.records] == ["b"]
    limited = run_review(
        cases_file, steps="report", backend=scripted, out=out, settings=scripted_settings, limit=2
    )
    assert [r.id for r in limited.records] == ["a", "b"] and limited.skipped == 1
    with pytest.raises(InputError, match="No case with id 'zz'"):
        run_review(
            cases_file, steps="report", backend=scripted, settings=scripted_settings, only="zz"
        )


def test_workers_review_cases_at_the_same_time(tmp_path, scripted_settings):
    write_png(tmp_path / "a.png")
    cases = write_cases(
        tmp_path / "cases.yaml", [{"id": f"c{i}", "image": "a.png"} for i in range(2)]
    )
    both_waiting = threading.Barrier(2, timeout=30)
    # Each case's only model call waits for the other's: this finishes only if the two
    # cases run at once (one worker would break the barrier after its timeout).
    result = run_review(
        cases,
        steps="report",
        backend=ScriptedModel(lambda r: both_waiting.wait()),
        settings=scripted_settings,
        workers=2,
    )
    assert [r.status for r in result.records] == ["ok", "ok"]


def test_without_an_output_folder_records_are_returned_and_nothing_is_written(
    png, tmp_path, scripted, scripted_settings, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = run_review(
        [{"id": "x", "image": str(png)}],
        steps="report",
        backend=scripted,
        settings=scripted_settings,
    )
    assert result.out is None and result.records[0].status == "ok"
    assert result.records[0].outputs["reports"][0]["impression"] == "Lung nodule."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_a_torn_record_or_leftover_temp_file_is_cleaned_up_by_the_next_run(
    cases_file, tmp_path, scripted, scripted_settings
):
    out = tmp_path / "out"
    run_review(cases_file, steps="report", backend=scripted, out=out, settings=scripted_settings)
    (out / "cases" / "a" / "record.json").write_text('{"id": "a", "stat')  # torn write
    (out / "cases" / "b" / ".tmp-record.json.xyz").write_text("partial")
    again = run_review(
        cases_file,
        steps="report",
        backend=scripted,
        out=out,
        settings=scripted_settings,
        retry_failed=False,
    )
    assert again.ran == 1 and again["a"].status == "ok"
    assert not list(out.rglob(".tmp-*"))


def test_reports_name_no_image_paths_unless_asked(tmp_path, scripted, scripted_settings):
    write_png(tmp_path / "DOE_JOHN_1957" / "chest.png")
    cases = write_cases(
        tmp_path / "c.yaml",
        [
            {"id": "c1", "image": "DOE_JOHN_1957/chest.png"},
            {"id": "c2", "image": "DOE_JOHN_1957/gone.png"},  # its error names the path
        ],
    )
    out = tmp_path / "out"
    run_review(cases, steps="ground,report", backend=scripted, out=out, settings=scripted_settings)
    html = (out / "report.html").read_text()
    assert "DOE_JOHN" not in html
    assert "No such file: [image 1]" in html
    assert "DOE_JOHN" not in (out / "cases" / "c1" / "report.md").read_text()
    assert "DOE_JOHN" not in (out / "cases" / "c2" / "report.md").read_text()
    named = tmp_path / "named"
    run_review(
        cases,
        steps="ground,report",
        backend=scripted,
        out=named,
        settings=scripted_settings,
        include_paths=True,
    )
    assert "DOE_JOHN" in (named / "cases" / "c1" / "report.md").read_text()


def test_a_relative_cases_path_still_keeps_absolute_image_paths_out_of_reports(
    tmp_path, scripted, scripted_settings, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write_cases(tmp_path / "c.yaml", [{"id": "c1", "image": "DOE_JOHN_1957/gone.png"}])
    run_review("c.yaml", steps="report", backend=scripted, out="out", settings=scripted_settings)
    html = (tmp_path / "out" / "report.html").read_text()
    markdown = (tmp_path / "out" / "cases" / "c1" / "report.md").read_text()
    assert "No such file: [image 1]" in html
    assert "DOE_JOHN" not in html and "DOE_JOHN" not in markdown
    assert str(tmp_path) not in html
    assert "Trace (1 step)<" in html  # the failed load is its only step


def test_stopping_a_run_keeps_finished_cases_and_the_next_run_completes_it(
    tmp_path, scripted_settings
):
    write_png(tmp_path / "a.png")
    cases = write_cases(tmp_path / "c.yaml", [{"id": f"c{i}", "image": "a.png"} for i in range(4)])
    stop = threading.Event()
    calls = []

    def hook(request):
        calls.append(1)
        if len(calls) == 2:  # while the second case is in flight
            stop.set()

    out = tmp_path / "out"
    first = run_review(
        cases,
        steps="report",
        backend=ScriptedModel(hook),
        out=out,
        settings=scripted_settings,
        cancel=stop,
    )
    assert first.interrupted and not first.ok
    assert [r.id for r in first.records] == ["c0"]  # the one in flight is not recorded
    assert len(calls) == 2  # nothing started after the stop
    second = run_review(
        cases, steps="report", backend=ScriptedModel(), out=out, settings=scripted_settings
    )
    assert (second.skipped, second.ran, second.ok) == (1, 3, True)


def test_the_progress_bar_counts_done_and_failed_cases(
    cases_file, tmp_path, scripted, scripted_settings, capsys
):
    run_review(
        cases_file,
        steps="report",
        backend=scripted,
        out=tmp_path / "out",
        settings=scripted_settings,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "3/3" in err and "done=3" in err and "failed=1" in err
    assert "<00:00" in err  # time left


def test_the_review_package_declares_exactly_what_it_exports():
    import medmo_agent.review as review

    assert sorted(review.__all__) == sorted(set(review.__all__))
    for name in review.__all__:
        assert hasattr(review, name), name
