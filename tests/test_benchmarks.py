"""The CPU benchmarks run end to end with tiny parameters and write complete JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MACHINE_KEYS = {"cpu", "nproc", "platform", "python"}


def _run(script: str, out: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


def test_server_benchmark_reports_latencies_and_loses_no_call(tmp_path):
    res = _run(
        "server.py",
        tmp_path / "server.json",
        *("--calls", "20", "--concurrent", "20", "--sessions", "4", "--max-seconds", "180"),
    )
    assert res["benchmark"] == "server"
    assert set(res["machine"]) >= MACHINE_KEYS
    assert res["versions"]["mcp"] != "-"
    seq, con = res["sequential"], res["concurrent"]
    assert (seq["calls"], seq["ok"], seq["lost"]) == (20, 20, 0)
    assert (con["calls"], con["ok"], con["lost"], con["sessions"]) == (20, 20, 0, 4)
    for figures in (seq, con, res["in_process"]):
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    assert {"overhead_p50_ms", "calls_per_s"} <= set(seq)
    assert con["wall_s"] > 0
    assert res["server_alive_after"] is True
    assert res["failures"] == []


def test_image_pipeline_benchmark_times_every_input_with_matching_outputs(tmp_path):
    res = _run("image_pipeline.py", tmp_path / "images.json", "--repeats", "2")
    assert res["benchmark"] == "image_pipeline"
    assert set(res["machine"]) >= MACHINE_KEYS
    rows = {r["input"]: r for r in res["results"]}
    assert set(rows) == {"ct512", "ct_small", "dx3000", "png3000"}
    assert rows["ct512"]["model_size"] == [512, 512]
    assert rows["ct_small"]["model_size"] == [256, 256]  # upscaled to the minimum budget
    assert rows["dx3000"]["original_size"] == [3000, 3000]
    assert rows["dx3000"]["model_size"] == rows["png3000"]["model_size"] == [1024, 1024]
    for row in rows.values():
        assert row["project_ms"] > 0 and row["plain_ms"] > 0
        assert row["max_pixel_diff"] <= 1  # both ways did the same work
        assert row["repeats"] == 2


def test_parser_worst_case_benchmark_times_every_family_and_reports_the_bound(tmp_path):
    from medmo_agent.testing.adversarial import FAMILIES

    res = _run(
        "parser_worst_case.py",
        tmp_path / "parsers.json",
        *("--sizes", "2000", "8000", "--repeats", "1", "--max-exponent", "100"),
    )
    assert res["benchmark"] == "parser_worst_case"
    assert set(res["machine"]) >= MACHINE_KEYS
    assert [r["family"] for r in res["results"]] == [f.name for f in FAMILIES]
    for row in res["results"]:
        assert len(row["seconds"]) == len(row["us_per_kb"]) == 2
        assert row["chars"][0] < row["chars"][1]
    assert res["bound_us_per_kb"] == max(v for r in res["results"] for v in r["us_per_kb"])


def test_eval_throughput_benchmark_runs_every_item_one_at_a_time_and_concurrently(tmp_path):
    res = _run(
        "eval_throughput.py",
        tmp_path / "eval.json",
        *("--shape", "tiny", "--items", "6", "--workers", "1", "--workers", "3"),
        *("--max-new-tokens", "3"),
    )
    assert res["benchmark"] == "eval_throughput"
    assert set(res["machine"]) >= MACHINE_KEYS
    assert (res["shape"], res["items"], res["max_new_tokens"]) == ("tiny", 6, 3)
    assert [r["workers"] for r in res["runs"]] == [1, 3]
    for run in res["runs"]:
        assert (run["items"], run["failed"]) == (6, 0)
        assert run["items_per_s"] > 0 and run["seconds"] > 0
    assert res["speedup"] == round(res["runs"][1]["items_per_s"] / res["runs"][0]["items_per_s"], 2)


def test_volume_sweep_benchmark_sweeps_a_small_study_batched_and_one_at_a_time(tmp_path):
    res = _run(
        "volume_sweep.py",
        tmp_path / "volume.json",
        *("--shape", "tiny", "--device", "cpu", "--slices", "6", "--side", "64"),
        *("--serial-slices", "2", "--warmup", "2", "--new-tokens", "4"),
    )
    assert res["benchmark"] == "volume_sweep"
    assert set(res["machine"]) >= MACHINE_KEYS
    assert res["study"] == {"slices": 6, "side": 64, "new_tokens": 4}
    tiny = res["shapes"]["tiny"]
    batched, serial = tiny["batched"], tiny["one_at_a_time"]
    assert batched["slices"] == 6 and batched["failed_slices"] == []
    assert batched["completion_tokens_per_slice"] == 4
    assert batched["engine_stats"]["requests"] == 6
    assert serial["slices"] == 2
    assert batched["slices_per_s"] > 0 and serial["slices_per_s"] > 0
    assert batched["seconds_per_study"] == pytest.approx(6 / batched["slices_per_s"])
    assert tiny["peak_memory_gib"] > 0
