"""``medmo eval`` from the shell, and ``run_eval`` on the tiny checkpoint (transformers)."""

from __future__ import annotations

import json
import os
import sys

from servers import run_medmo

from medmo_agent.cli import main
from medmo_agent.evaluation.benchmarks import BENCHMARKS
from medmo_agent.evaluation.records import ItemRecord
from medmo_agent.evaluation.runner import run_eval

from .fixtures import SIZES


def test_list_shows_every_benchmark_with_its_size_and_source(capsys):
    assert main(["eval", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1 : 1 + len(BENCHMARKS)]}
    assert list(rows) == list(BENCHMARKS)
    assert rows["vqa_rad"][1:] == ["451", "flaviagiammarino/vqa-rad", "(test)"]
    assert rows["mmlu_med"][1:3] == ["?", "cais/mmlu"]
    assert "published count" in lines[-1]


def test_list_with_a_data_dir_counts_the_files(capsys, bench_data):
    assert main(["eval", "--list", "--data-dir", str(bench_data)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    counted = {line.split()[0]: int(line.split()[1]) for line in lines}
    assert counted == SIZES


def test_eval_without_out_or_benchmark_says_what_to_add(capsys):
    assert main(["eval", "vqa_rad"]) == 1
    assert "--out DIR" in capsys.readouterr().err
    assert main(["eval", "--out", "x"]) == 1
    assert "medmo eval --list" in capsys.readouterr().err


def test_the_documented_command_runs_offline_and_resumes(tmp_path, bench_data):
    (tmp_path / "fixtures").symlink_to(bench_data)
    rules = tmp_path / "replies.json"
    rules.write_text(json.dumps({"pneumothorax": "yes", "aspirin": "A", "*": "no"}))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MEDMO_TEST_SCRIPTED_REPLIES": str(rules),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    cmd = ["eval", "vqa_rad", "slake", "pubmedqa", "--data-dir", "fixtures", "--out", "runs/x"]
    cmd += ["--backend", "scripted", "--no-progress"]
    first = run_medmo(cmd, tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert "answered 11 item(s) now, 0 already done" in first.stdout
    # vqa_rad: "yes" right, "no" right, the two open answers wrong
    assert "vqa_rad          direct    acc 50.0% (2/4)  closed 100.0%  open 0.0%" in first.stdout
    out = tmp_path / "runs/x"
    for bench in ("vqa_rad", "slake", "pubmedqa"):
        for name in ("items.jsonl", "results.json", "metrics.json"):
            assert (out / bench / "direct" / name).is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["backend"] == "scripted" and run["data_dir"] == "fixtures"
    second = run_medmo(cmd, tmp_path, env)
    assert second.returncode == 0, second.stderr
    assert "answered 0 item(s) now, 11 already done" in second.stdout
    assert "vqa_rad          direct    acc 50.0% (2/4)" in second.stdout


def test_end_to_end_on_the_tiny_checkpoint(tmp_path, bench_data, tiny_backend, tiny_settings):
    out = tmp_path / "run"
    benches = ["vqa_rad", "mmmu_med", "medxpertqa_mm", "pubmedqa"]
    kw = dict(
        modes=["direct", "reason", "workflow"],
        data_dir=bench_data,
        backend=tiny_backend,
        settings=tiny_settings,
        limit=2,
        max_new_tokens=6,
    )
    result = run_eval(benches, out, workers=4, **kw)
    assert result.skipped_modes == [("pubmedqa", "workflow")]
    for bench in ("vqa_rad", "mmmu_med", "medxpertqa_mm"):
        for mode in ("direct", "reason", "workflow"):
            records = result.records[bench][mode]
            assert len(records) == 2
            assert [r.error for r in records] == [None, None], records
            assert all(isinstance(r.raw_answer, str) for r in records)
            total = result.metrics[bench][mode]["total metrics"]
            assert total["total"] == 2 and total["right"] == sum(bool(r.correct) for r in records)
        assert set(result.paired[bench]) == {"direct vs reason", "direct vs workflow"}
    lines = (out / "vqa_rad/reason/items.jsonl").read_text().splitlines()
    assert [ItemRecord.model_validate_json(x).mode for x in lines] == ["reason", "reason"]
    run = json.loads((out / "run.json").read_text())
    assert run["model"] == str(tiny_backend.model_id) and run["backend"] == "transformers"
    assert run["versions"]["transformers"] != "-"
    again = run_eval(benches, out, **kw)
    assert (again.ran, again.skipped) == (0, 3 * 3 * 2 + 2 * 2)


def test_agent_mode_on_the_tiny_checkpoint(tmp_path, bench_data, tiny_backend, tiny_settings):
    result = run_eval(
        ["vqa_rad", "pubmedqa"],
        tmp_path / "run",
        modes="agent",
        data_dir=bench_data,
        backend=tiny_backend,
        settings=tiny_settings,
        limit=1,
        max_new_tokens=6,
    )
    assert result.skipped_modes == [("pubmedqa", "agent")]
    (record,) = result.records["vqa_rad"]["agent"]
    assert record.error is None and isinstance(record.raw_answer, str)
    assert record.correct is not None and "boxed" in record.prompt
