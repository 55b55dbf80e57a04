"""The LLM judge wired into ``medmo eval``/``run_eval``: which items it is asked about, what a
failed call does, and re-scoring without the model, through the command line against a
real judge server process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from servers import run_medmo

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.evaluation.benchmarks import find_benchmark
from medmo_agent.evaluation.items import EvalItem
from medmo_agent.evaluation.records import EvalStore
from medmo_agent.evaluation.runner import run_eval
from medmo_agent.evaluation.scoring import score_item

from .judge_server import running

RIGHT = "<think>same meaning</think>\n<judge>0</judge>"


def _asked(log: Path) -> list[str]:
    """The user answers the judge was asked about, in order."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        prompt = json.loads(line)["body"]["messages"][-1]["content"]
        if isinstance(prompt, list):
            prompt = "".join(p.get("text", "") for p in prompt)
        out.append(prompt.split("The user's answer: ")[1].split("\n")[0])
    return out


def _item(bench: str, qtype: str, answer: str, answer_type: str | None = None) -> EvalItem:
    return EvalItem(
        item_id="1",
        benchmark=bench,
        question_type=qtype,  # type: ignore[arg-type]
        prompt="q",
        reason_prompt="q",
        question="q",
        answer=answer,
        answer_type=answer_type,
        options=("A. yes", "B. no") if qtype == "multiple_choice" else (),
        gold=(answer,),
    )


@pytest.mark.parametrize(
    ("bench", "qtype", "answer", "atype", "asked_correct", "asked_compat"),
    [
        ("vqa_rad", "open", "liver", None, True, True),
        ("vqa_rad", "yes_no", "yes", None, False, False),
        ("path_vqa", "open", "liver", None, True, True),
        ("path_vqa", "yes_no", "no", None, False, False),
        ("slake", "open", "liver", "OPEN", True, True),
        ("slake", "closed", "Transverse Plane", "CLOSED", False, True),  # counted twice
        ("mmmu_med", "open", "liver", None, False, False),  # MMMU keeps its own rule
        ("pubmedqa", "multiple_choice", "A", None, False, False),
    ],
)
def test_the_judge_is_asked_only_what_medevalkit_judges(
    bench, qtype, answer, atype, asked_correct, asked_compat
):
    for compat, expected in (("correct", asked_correct), ("medevalkit", asked_compat)):
        asked = []

        def judge(item, response, asked=asked):
            asked.append(item.benchmark)
            return {"correct": True}

        item = _item(bench, qtype, answer, atype)
        score_item(find_benchmark(bench), item, "kidney", compat=compat, judge=judge)
        assert bool(asked) is expected, (bench, compat)


def test_a_failed_judge_call_leaves_the_item_unscored_not_wrong():
    spec, item = find_benchmark("vqa_rad"), _item("vqa_rad", "open", "liver")
    failed = {"correct": None, "error": "BackendError: down", "reply": None}
    for compat in ("correct", "medevalkit"):
        score = score_item(spec, item, "liver", compat=compat, judge=lambda i, r: failed)
        assert score.correct is None and score.verdict["judge"]["error"] == "BackendError: down"
        assert score.verdict["rule_correct"] is True


def test_slake_closed_items_keep_the_rule_but_the_judge_counts_them_again_in_compat(
    tmp_path, bench_data
):
    def judge(item, response):
        return {"correct": True, "model": "j"}

    kw = dict(data_dir=bench_data, settings=Settings(), judge=judge)
    fixed = run_eval("slake", tmp_path / "a", backend=ScriptedBackend(["no"]), **kw)
    compat = run_eval(
        "slake", tmp_path / "b", compat="medevalkit", backend=ScriptedBackend(["no"]), **kw
    )
    # "no": closed item 1 right, closed 2 wrong, open 3 judged right, Chinese closed 4 wrong
    f, c = fixed.metrics["slake"]["direct"], compat.metrics["slake"]["direct"]
    assert (f["close"]["right"], f["open"]["right"], f["total metrics"]["right"]) == (1, 1, 2)
    assert (c["close"]["right"], c["open"]["right"], c["total metrics"]["right"]) == (4, 1, 5)
    recs = {r.item_id: r for r in compat.records["slake"]["direct"]}
    assert sorted(k for k, r in recs.items() if "judge" in r.verdict) == sorted(recs)
    fixed_recs = fixed.records["slake"]["direct"]
    assert [r.item_id for r in fixed_recs if "judge" in r.verdict] == ["3"]


def test_rescoring_never_creates_the_backend(tmp_path, bench_data, monkeypatch):
    out = tmp_path / "run"
    kw = dict(data_dir=bench_data, settings=Settings())
    first = run_eval("vqa_rad", out, backend=ScriptedBackend(["kidney"]), limit=3, **kw)
    assert first.metrics["vqa_rad"]["direct"]["total metrics"]["right"] == 0

    import medmo_agent.backends as backends

    def no_model(*args, **kwargs):
        raise AssertionError("the backend was created")

    monkeypatch.setattr(backends, "create_backend", no_model)
    again = run_eval("vqa_rad", out, rescore=True, compat="medevalkit", **kw)
    assert (again.ran, again.skipped, again.missing) == (0, 3, 1)
    assert [r.raw_answer for r in again.records["vqa_rad"]["direct"]] == ["kidney"] * 3
    run = json.loads((out / "run.json").read_text())
    assert run["rescored"] is True and run["compat"] == "medevalkit"
    assert run["model"] == "scripted" and run["backend"] == "scripted"
    with pytest.raises(Exception, match="the backend was created"):
        run_eval("vqa_rad", tmp_path / "other", **kw)


def test_judge_options_judge_open_items_and_a_failed_call_is_judged_again_not_answered(
    tmp_path, bench_data
):
    (tmp_path / "fixtures").symlink_to(bench_data)
    rules = tmp_path / "replies.json"
    replies = {"pneumothorax": "Yes.", "heart": "no", "organ": "Left lung", "*": "CT"}
    rules.write_text(json.dumps(replies))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MEDMO_TEST_SCRIPTED_REPLIES": str(rules),
        "MEDMO_RETRIES": "0",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    base = ["eval", "vqa_rad", "--data-dir", "fixtures", "--out", "runs/j", "--no-progress"]
    base += ["--backend", "scripted", "--judge-model", "judge-model"]
    out = tmp_path / "runs/j"
    with running(tmp_path / "j1", {"left lung": RIGHT, "ct": "HTTP 500"}) as (url, log):
        first = run_medmo([*base, "--judge-base-url", url], tmp_path, env)
    assert first.returncode == 3, first.stderr
    assert sorted(_asked(log)) == ["ct", "left lung"]  # the open items only
    assert "acc 100.0% (3/3)  closed 100.0%  open 100.0%  unscored 1" in first.stdout
    recs = EvalStore(out).read_items("vqa_rad", "direct")
    failed = next(r for r in recs.values() if r.raw_answer == "CT")
    assert failed.correct is None and failed.error is None
    assert "500" in failed.verdict["judge"]["error"]
    right = next(r for r in recs.values() if r.raw_answer == "Left lung")
    assert right.correct is True and right.verdict["judge"]["reply"] == RIGHT

    # the model now answers otherwise: a re-run must only ask the judge again
    rules.write_text(json.dumps({"*": "something else"}))
    with running(tmp_path / "j2", {"ct": RIGHT}) as (url, log2):
        second = run_medmo([*base, "--judge-base-url", url], tmp_path, env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "answered 0 item(s) now, 4 already done" in second.stdout
        assert _asked(log2) == ["ct"]
        assert "acc 100.0% (4/4)  closed 100.0%  open 100.0%" in second.stdout

        # re-scoring under MedEvalKit's rules with a model that cannot load
        third = ["eval", "vqa_rad", "--data-dir", "fixtures", "--out", "runs/j", "--rescore"]
        third += ["--compat", "medevalkit", "--backend", "transformers", "--no-progress"]
        third += ["--model", str(tmp_path / "no-such-model"), "--judge-model", "judge-model"]
        rescored = run_medmo([*third, "--judge-base-url", url], tmp_path, env)
        assert rescored.returncode == 0, rescored.stdout + rescored.stderr
        assert _asked(log2) == ["ct"]  # verdicts kept, nothing asked again
    # MedEvalKit divides the open accuracy by the open count twice: 2/2/2
    assert "acc 100.0% (4/4)  closed 100.0%  open 50.0%" in rescored.stdout
    run = json.loads((out / "run.json").read_text())
    # the earlier run's backend is recorded, not the one that could not load
    assert run["backend"] == "scripted"
    assert (run["judge_model"], run["rescored"]) == ("judge-model", True)
