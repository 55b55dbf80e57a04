"""``run_eval`` over fixture benchmarks with a scripted model whose verdicts are known."""

from __future__ import annotations

import json
import threading

import pytest

from medmo_agent.backends.base import GenerationRequest
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.evaluation.records import EvalStore, ItemRecord
from medmo_agent.evaluation.runner import run_eval

# Replies by a piece of the question. VQA-RAD: both closed right ("normal" counts as "no"),
# one open right of two. SLAKE: "the transverse plane" is wrong (closed needs equality),
# the Chinese closed item is right. PubMedQA: only the first (A) is right.
REPLIES = {
    "pneumothorax": "Yes.",
    "heart enlarged": "The heart is normal.",
    "organ is abnormal": "Left lung",
    "modality is this": "CT",
    "lung healthy": "no",
    "which plane": "the transverse plane",
    "diseases are included": "Pneumonia",
    "肺是否健康": "否",
    "aspirin reduce": "A",
    "test accurate": "A",
    "does it help": "A",
}


def _reply(request: GenerationRequest) -> str:
    text = request.messages[-1].text.lower()
    return next((r for key, r in REPLIES.items() if key in text), "")


def _backend(**kw) -> ScriptedBackend:
    return ScriptedBackend(responder=_reply, **kw)


def test_known_verdicts_give_exactly_the_expected_metrics_in_medevalkits_layout(
    tmp_path, bench_data
):
    out = tmp_path / "run"
    result = run_eval(
        ["vqa_rad", "slake", "pubmedqa"],
        out,
        data_dir=bench_data,
        backend=_backend(),
        settings=Settings(),
        workers=4,
    )
    rad = result.metrics["vqa_rad"]["direct"]
    assert rad["total metrics"] == {"total": 4, "right": 3, "acc": 0.75, "failed": 0, "unscored": 0}
    assert rad["close"] == {"total": 2, "right": 2, "acc": 1.0}
    assert (rad["open"]["total"], rad["open"]["right"], rad["open"]["acc"]) == (2, 1, 0.5)
    assert rad["open"]["em"] == 0.5
    slake = result.metrics["slake"]["direct"]
    assert slake["close"] == {"total": 3, "right": 2, "acc": 2 / 3}
    assert slake["open"]["right"] == 1 and slake["total metrics"]["acc"] == 0.75
    pubmed = result.metrics["pubmedqa"]["direct"]
    total = {"total": 3, "right": 1, "acc": 1 / 3, "failed": 0, "unscored": 0}
    assert pubmed == {"total metrics": total}

    # the files, in the documented layout
    store = EvalStore(out)
    assert json.loads((out / "vqa_rad/direct/metrics.json").read_text()) == rad
    total = json.loads((out / "total_results.json").read_text())
    assert set(total) == {"vqa_rad", "slake", "pubmedqa"} and total["slake"]["direct"] == slake
    lines = (out / "slake/direct/items.jsonl").read_text().splitlines()
    records = [ItemRecord.model_validate_json(line) for line in lines]
    assert [r.item_id for r in records] == ["1", "2", "3", "4"]
    plane = records[1]
    assert plane.question_type == "closed" and plane.correct is False
    assert plane.raw_answer == "the transverse plane" and plane.answer == "Transverse Plane"
    assert plane.verdict["rule"] == "closed_exact" and plane.error is None
    assert len(plane.prompt_hash) == 64 and plane.modality == "X-Ray"
    results = json.loads((out / "vqa_rad/direct/results.json").read_text())
    assert [(r["response"], r["correct"]) for r in results][:2] == [
        ("Yes.", True),
        ("The heart is normal.", True),
    ]
    assert set(results[2]["metrics"]) >= {"bleu1", "rouge1", "f1", "em"}
    run = store.read_json("run.json")
    assert run["model"] == "scripted" and run["backend"] == "scripted"
    assert run["modes"] == ["direct"] and run["compat"] == "correct"
    assert run["benchmarks"]["vqa_rad"]["items"] == 4
    assert run["benchmarks"]["vqa_rad"]["source"].startswith("flaviagiammarino/vqa-rad")
    assert {"medmo-agent", "datasets"} <= set(run["versions"])
    assert run["started_at"] <= run["finished_at"]


def test_medevalkit_compat_reproduces_the_open_accuracy_divided_twice(tmp_path, bench_data):
    kw = dict(data_dir=bench_data, backend=_backend(), settings=Settings())
    fixed = run_eval("vqa_rad", tmp_path / "a", **kw)
    bugged = run_eval("vqa_rad", tmp_path / "b", compat="medevalkit", **kw)
    assert fixed.metrics["vqa_rad"]["direct"]["open"]["acc"] == 0.5
    assert bugged.metrics["vqa_rad"]["direct"]["open"]["acc"] == 0.25
    # switching compat on an existing folder re-scores without asking the model again
    backend = _backend()
    again = run_eval("vqa_rad", tmp_path / "a", compat="medevalkit", **{**kw, "backend": backend})
    assert again.ran == 0 and backend.requests == []
    assert again.metrics["vqa_rad"]["direct"]["open"]["acc"] == 0.25


def test_direct_mode_sends_medevalkits_messages(tmp_path, bench_data):
    backend = _backend()
    run_eval("vqa_rad", None, data_dir=bench_data, backend=backend, settings=Settings(), limit=1)
    (request,) = backend.requests
    (message,) = request.messages  # no system prompt
    assert message.role == "user"
    assert [type(p).__name__ for p in message.parts] == ["ImagePart", "TextPart"]
    assert message.text == "Is there a pneumothorax?\nPlease output 'yes' or 'no'(no extra output)."
    assert request.temperature == 0.0


def test_two_modes_on_the_same_items_give_a_paired_difference(tmp_path, bench_data):
    def reply(request: GenerationRequest) -> str:
        text = request.messages[-1].text
        if "boxed" in text:  # the reason mode's prompt: always right
            for key, letter in (("aspirin", "A"), ("test accurate", "B"), ("it help", "C")):
                if key in text.lower():
                    return f"<think>weighing it</think><answer>\\boxed{{{letter}}}</answer>"
        return "A"

    result = run_eval(
        "pubmedqa",
        tmp_path / "run",
        modes=["direct", "reason"],
        data_dir=bench_data,
        backend=ScriptedBackend(responder=reply),
        settings=Settings(),
        seed=3,
    )
    assert result.accuracy("pubmedqa", "direct") == pytest.approx(1 / 3)
    assert result.accuracy("pubmedqa", "reason") == 1.0
    diff = result.paired["pubmedqa"]["direct vs reason"]
    assert (diff["n"], diff["only_a"], diff["only_b"]) == (3, 0, 2)
    assert diff["difference"] == pytest.approx(2 / 3)
    assert diff["ci_low"] <= diff["difference"] <= diff["ci_high"]
    saved = json.loads((tmp_path / "run/paired.json").read_text())
    assert saved["pubmedqa"]["direct vs reason"] == diff
    reason = EvalStore(tmp_path / "run").read_items("pubmedqa", "reason")
    assert all("boxed" in r.prompt for r in reason.values())


def test_a_failing_item_is_recorded_and_the_run_goes_on_then_is_retried(tmp_path, bench_data):
    def flaky(request: GenerationRequest) -> str:
        if "test accurate" in request.messages[-1].text.lower():
            raise RuntimeError("backend fell over")
        return _reply(request)

    out = tmp_path / "run"
    kw = dict(data_dir=bench_data, settings=Settings())
    first = run_eval("pubmedqa", out, backend=ScriptedBackend(responder=flaky), **kw)
    (failed,) = first.failed
    assert failed.item_id == "pqa1" and failed.correct is None
    assert failed.error == "RuntimeError: backend fell over"
    assert first.metrics["pubmedqa"]["direct"]["total metrics"] == {
        "total": 2,
        "right": 1,
        "acc": 0.5,
        "failed": 1,
        "unscored": 0,
    }
    backend = _backend()
    second = run_eval("pubmedqa", out, backend=backend, **kw)
    assert (second.ran, second.skipped, second.failed) == (1, 2, [])
    assert len(backend.requests) == 1


@pytest.mark.parametrize("include_paths", [False, True])
def test_a_failed_items_error_names_no_file_path_unless_paths_are_shown(
    tmp_path, bench_data, include_paths
):
    secret = "/data/Jane_Doe_1961/scan.png"

    def broken(request: GenerationRequest) -> str:
        raise OSError(f"cannot read {secret}")

    out = tmp_path / "run"
    settings = Settings(include_paths=include_paths)
    result = run_eval(
        "pubmedqa",
        out,
        backend=ScriptedBackend(responder=broken),
        data_dir=bench_data,
        settings=settings,
        limit=1,
    )
    (failed,) = result.failed
    written = (out / "pubmedqa" / "direct" / "items.jsonl").read_text()
    assert ("Jane_Doe" in failed.error) is include_paths
    assert ("Jane_Doe" in written) is include_paths
    if not include_paths:
        assert failed.error.startswith("OSError: cannot read path#")


def test_a_stopped_run_resumes_without_asking_finished_items_again(tmp_path, bench_data):
    out = tmp_path / "run"
    cancel = threading.Event()
    calls = []

    def stop_after_two(request: GenerationRequest) -> str:
        calls.append(request)
        if len(calls) == 2:
            cancel.set()  # as a Ctrl-C would, while the second item is in flight
        return _reply(request)

    kw = dict(data_dir=bench_data, settings=Settings(), workers=1)
    first = run_eval(
        ["vqa_rad", "slake"],
        out,
        backend=ScriptedBackend(responder=stop_after_two),
        cancel=cancel,
        **kw,
    )
    assert first.interrupted and first.ran == 1
    # a torn line, as a kill during a write leaves it
    with open(out / "vqa_rad/direct/items.jsonl", "a") as fh:
        fh.write('{"item_id": "000001", "benchm')
    backend = _backend()
    second = run_eval(["vqa_rad", "slake"], out, backend=backend, **kw)
    assert (second.ran, second.skipped) == (7, 1)
    assert len(backend.requests) == 7
    assert "pneumothorax" not in " ".join(r.messages[-1].text for r in backend.requests)
    assert second.metrics["vqa_rad"]["direct"]["total metrics"]["acc"] == 0.75
    lines = (out / "vqa_rad/direct/items.jsonl").read_text().splitlines()
    assert [json.loads(line)["item_id"] for line in lines] == [
        "000000",
        "000001",
        "000002",
        "000003",
    ]
    # and a third run has nothing left to do
    third = run_eval(["vqa_rad", "slake"], out, backend=_backend(), **kw)
    assert (third.ran, third.skipped) == (0, 8)


def test_another_model_or_prompt_answers_again(tmp_path, bench_data):
    out = tmp_path / "run"
    kw = dict(data_dir=bench_data, settings=Settings())
    run_eval("pubmedqa", out, backend=_backend(), **kw)
    other = run_eval("pubmedqa", out, backend=_backend(model_id="other"), **kw)
    assert (other.ran, other.skipped) == (3, 0)


def test_a_judge_scores_open_items_and_its_verdict_is_kept(tmp_path, bench_data):
    seen = []

    def judge(item, response):
        seen.append(item.item_id)
        return {"correct": True, "prompt": f"judge {item.question}", "raw": "<judge>0</judge>"}

    result = run_eval(
        "vqa_rad",
        tmp_path / "run",
        data_dir=bench_data,
        backend=_backend(),
        settings=Settings(),
        judge=judge,
    )
    assert sorted(seen) == ["000002", "000003"]  # the open items only
    rad = result.metrics["vqa_rad"]["direct"]
    assert rad["open"]["right"] == 2 and rad["total metrics"]["right"] == 4
    rec = EvalStore(tmp_path / "run").read_items("vqa_rad", "direct")["000003"]
    assert rec.correct is True and rec.verdict["rule_correct"] is False
    assert rec.verdict["judge"]["raw"] == "<judge>0</judge>"


def test_image_modes_skip_text_only_benchmarks(tmp_path, bench_data):
    result = run_eval(
        "pubmedqa",
        tmp_path / "run",
        modes="workflow",
        data_dir=bench_data,
        backend=_backend(),
        settings=Settings(),
    )
    assert result.skipped_modes == [("pubmedqa", "workflow")]
    assert result.records == {} and result.metrics == {}


def test_unknown_mode_and_compat_are_refused_before_anything_loads(bench_data):
    from medmo_agent.errors import InputError

    with pytest.raises(InputError, match="direct, reason, workflow, agent"):
        run_eval("vqa_rad", None, modes="fast", data_dir=bench_data, backend=_backend())
    with pytest.raises(ValueError, match="medevalkit"):
        run_eval("vqa_rad", None, compat="mek", data_dir=bench_data, backend=_backend())


_KILLED_RUN = """
import sys
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.evaluation.runner import run_eval

backend = ScriptedBackend(["B"], delay_s=0.2)
run_eval("mmlu_med", sys.argv[1], data_dir=sys.argv[2], backend=backend, settings=Settings(),
         workers=1)
"""


def test_a_killed_process_resumes_without_asking_finished_items_again(tmp_path, bench_data):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    items = out / "mmlu_med/direct/items.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(out), str(bench_data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (items.exists() and len(items.read_text().splitlines()) >= 3):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no items were written"
        time.sleep(0.05)  # polling the file for the condition, not waiting for an event
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = len(EvalStore(out).read_items("mmlu_med", "direct"))
    assert 3 <= finished < 9
    backend = ScriptedBackend(["B"])
    result = run_eval("mmlu_med", out, data_dir=bench_data, backend=backend, settings=Settings())
    assert (result.ran, result.skipped) == (9 - finished, finished)
    assert len(backend.requests) == 9 - finished
    assert result.metrics["mmlu_med"]["direct"]["total metrics"]["right"] == 9
    assert len(items.read_text().splitlines()) == 9


def test_a_token_cap_over_the_limit_is_refused_naming_both_settings(bench_data):
    from medmo_agent.errors import InputError

    settings = Settings(max_new_tokens_limit=100)
    with pytest.raises(InputError) as info:
        run_eval("pubmedqa", None, data_dir=bench_data, backend=_backend(), settings=settings,
                 max_new_tokens=101)  # fmt: skip
    assert "MEDMO_MAX_NEW_TOKENS_LIMIT" in str(info.value)
    assert "--eval-max-new-tokens" in str(info.value)


def test_mmmu_scores_choices_and_open_answers_and_compat_reproduces_the_character_bug(
    tmp_path, bench_data
):
    def reply(request: GenerationRequest) -> str:
        text = request.messages[-1].text
        return "(B) Trachea" if "Which structure" in text else "I count them: the answer is 2"

    kw = dict(data_dir=bench_data, settings=Settings())
    fixed = run_eval("mmmu_med", tmp_path / "a", backend=ScriptedBackend(responder=reply), **kw)
    assert fixed.metrics["mmmu_med"]["direct"]["total metrics"]["right"] == 10
    records = fixed.records["mmmu_med"]["direct"]
    assert {r.verdict["rule"] for r in records} == {"mmmu_multiple_choice", "mmmu_open"}
    bugged = run_eval(
        "mmmu_med", tmp_path / "b", backend=ScriptedBackend(responder=reply), compat="medevalkit",
        **kw,
    )  # fmt: skip
    assert bugged.metrics["mmmu_med"]["direct"]["total metrics"]["right"] == 5
