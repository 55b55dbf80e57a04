"""The LLM judge: MedEvalKit's prompt and verdict rule, and its counting in both compat modes,
against a real OpenAI-compatible server process that answers scripted verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import transformers_serve

from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError
from medmo_agent.evaluation.aggregate import score_vqa_item, vqa_metrics
from medmo_agent.evaluation.llm_judge import (
    JUDGE_SETTINGS,
    JudgeVerdict,
    LlmJudge,
    item_correct,
    judge_prompt,
    judged_response,
    needs_judge,
    parse_verdict,
    verdicts_for_metrics,
)

from .judge_server import running

RIGHT = "<think>same meaning</think>\n<judge>0</judge>"
WRONG = "<think>different</think>\n<judge>1</judge>"


# ----- the prompt and the verdict rule -----


def test_the_prompt_carries_question_standard_answer_and_user_answer_in_medevalkits_words():
    prompt = judge_prompt("Which lobe?", "right frontal lobe", "the right frontal lobe")
    assert prompt.startswith(
        "\nYour task is to determine whether the user's answer is correct based on the "
        "provided questions and standard answers"
    )
    assert "\nThe question is: Which lobe?\n" in prompt
    assert "\nThe standard answer: right frontal lobe\n" in prompt
    assert "\nThe user's answer: the right frontal lobe\n" in prompt
    assert "(0 represents correct, 1 represents incorrect):\n<think>{your concise think step}" in (
        prompt
    )
    assert prompt.rstrip().endswith("<judge>0</judge>")


@pytest.mark.parametrize(
    ("reply", "correct"),
    [
        (RIGHT, True),
        (WRONG, False),
        ("<judge> 0 </judge>", True),  # tag content is stripped
        ("0", True),  # no tag: the whole reply is compared
        ("0.", False),
        ("<judge>0</judge> and again <judge>0</judge>", False),  # joined: "0 0"
        ("<JUDGE>0</JUDGE>", False),  # tags are case-sensitive
        ("<judge>0", False),  # unclosed tag: whole reply compared
        ("", False),
        (None, False),  # a failed call
    ],
)
def test_verdict_is_correct_only_when_the_judge_tag_says_zero(reply, correct):
    assert parse_verdict(reply) is correct


@given(st.text(max_size=30).filter(lambda t: "judge>" not in t))
def test_the_tag_content_alone_decides(text):
    assert parse_verdict(f"<judge>{text}</judge>") is (text.strip() == "0")
    assert parse_verdict(f"<think>{text}</think>\n<judge>0</judge>") is True


def test_the_judged_answer_is_the_first_pass_lowercased_except_for_slake():
    assert judged_response("vqa_rad", "  The \\boxed{Liver} ") == "liver"
    assert judged_response("path_vqa", "<answer> Liver </answer>") == "liver"
    assert judged_response("slake", "<answer> Liver </answer>") == "Liver"
    assert judged_response("slake", "The Liver") == "The Liver"


def test_open_items_are_always_judged_slake_closed_ones_only_in_compat():
    assert needs_judge("vqa_rad", "open", "correct")
    assert not needs_judge("vqa_rad", "close", "medevalkit")
    assert not needs_judge("path_vqa", "close", "medevalkit")
    assert not needs_judge("slake", "close", "correct")
    assert needs_judge("slake", "close", "medevalkit")
    assert not needs_judge("mmmu_med", "open", "correct")  # MMMU keeps its own open rule
    with pytest.raises(ValueError, match="unknown scoring compat"):
        needs_judge("slake", "open", "strict")  # type: ignore[arg-type]


def test_item_verdicts_with_a_judge_in_both_modes():
    yes = JudgeVerdict("j", "p", RIGHT, True)
    no = JudgeVerdict("j", "p", WRONG, False)
    failed = JudgeVerdict("j", "p", None, None, "BackendError: down")
    # correct: closed items keep the rule, open ones take the judge, a failed call is unscored
    assert item_correct("slake", "close", False, yes) is False
    assert item_correct("slake", "open", False, yes) is True
    assert item_correct("vqa_rad", "open", True, no) is False
    assert item_correct("vqa_rad", "open", True, failed) is None
    assert item_correct("vqa_rad", "open", True, None) is True  # not judged
    # MedEvalKit: the judge overrides every judged item; a failed call is wrong
    assert item_correct("slake", "close", False, yes, "medevalkit") is True
    assert item_correct("vqa_rad", "open", True, failed, "medevalkit") is False
    assert verdicts_for_metrics([yes, no, failed, None]) == [True, False, False, False]


def test_settings_offer_the_judge_options_and_read_openai_api_key():
    for name in JUDGE_SETTINGS:
        assert name in Settings.model_fields
    env = {"MEDMO_JUDGE_MODEL": "gpt-4.1", "OPENAI_API_KEY": "sk-judge"}
    settings = Settings.from_env(env, env_file=None)
    assert (settings.judge_model, settings.judge_api_key, settings.api_key) == (
        "gpt-4.1",
        "sk-judge",
        "sk-judge",
    )
    assert settings.judge_max_new_tokens == 4096 and settings.judge_base_url is None


def test_no_judge_model_means_no_judge_and_a_model_without_a_server_is_a_clear_error():
    assert LlmJudge.from_settings(Settings()) is None
    with pytest.raises(ConfigError) as info:
        LlmJudge.from_settings(Settings(judge_model="gpt-4.1"))
    assert "gpt-4.1" in str(info.value) and "--judge-base-url" in str(info.value)
    with pytest.raises(ConfigError, match="judge_concurrency"):
        LlmJudge(object(), "j", concurrency=0)  # type: ignore[arg-type]


# ----- against a real server process -----


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge")
    script = {
        "The liver": RIGHT,
        "the liver": RIGHT,
        "yes": RIGHT,
        "MRI": RIGHT,
        "left lung": RIGHT,  # the judge calls a wrong closed answer right (SLAKE compat counts it)
        "Kidney": WRONG,
        "kidney": WRONG,
        "LUNGS fail": "HTTP 500",
        "no tag": "I think it is correct.",
    }
    with running(folder, script) as server:
        yield server


def _judge(url: str, **kw) -> LlmJudge:
    settings = Settings(
        judge_model="judge-model", judge_base_url=url, judge_api_key="sk-judge", retries=0, **kw
    )
    judge = LlmJudge.from_settings(settings)
    assert judge is not None
    return judge


def _requests(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_judge_sends_medevalkits_request_and_keeps_prompt_and_reply(judge_server):
    url, log = judge_server
    judge = _judge(url)
    before = len(_requests(log))

    verdict = judge.judge("Which organ?", "liver", "the liver")

    assert verdict == JudgeVerdict(
        "judge-model", judge_prompt("Which organ?", "liver", "the liver"), RIGHT, True
    )
    (sent,) = _requests(log)[before:]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer sk-judge"
    body = sent["body"]
    assert body["model"] == "judge-model"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 4096
    (message,) = body["messages"]  # one user turn, no system prompt
    assert message["role"] == "user"
    assert message["content"] == [{"type": "text", "text": verdict.prompt}]
    assert json.loads(json.dumps(verdict.to_dict()))["reply"] == RIGHT
    judge.close()


def test_a_failed_call_is_recorded_and_the_others_are_judged(judge_server):
    url, _ = judge_server
    judge = _judge(url, judge_concurrency=3)

    verdicts = judge.judge_many(
        [("q", "lung", "LUNGS fail"), ("q", "brain", "kidney"), ("q", "x", "no tag")]
    )

    failed, wrong, untagged = verdicts
    assert failed.correct is None and failed.reply is None
    assert failed.error is not None and "500" in failed.error
    assert (wrong.correct, wrong.reply) == (False, WRONG)
    assert (untagged.correct, untagged.reply) == (False, "I think it is correct.")
    assert judge.judge_many([]) == []
    judge.close()


SLAKE = [  # (answer, answer_type, raw response)
    ("liver", "OPEN", "The liver"),
    ("brain", "OPEN", "Kidney"),
    ("yes", "CLOSED", "yes"),
    ("CT", "CLOSED", "MRI"),
    ("lung", "OPEN", "LUNGS fail"),
]


@pytest.mark.parametrize("compat", ["correct", "medevalkit"])
def test_slake_with_the_judge_counts_as_hand_worked(judge_server, compat):
    url, _ = judge_server
    judge = _judge(url)
    scores = [score_vqa_item("slake", a, r, answer_type=t) for a, t, r in SLAKE]
    asked = [needs_judge("slake", s.kind, compat) for s in scores]
    triples = [
        ("What is shown?", a, judged_response("slake", r))
        for (a, _, r), ask in zip(SLAKE, asked, strict=True)
        if ask
    ]
    answers = iter(judge.judge_many(triples))
    verdicts = [next(answers) if ask else None for ask in asked]
    # the runner's one-call path gives the same verdicts
    one_by_one = [
        judge.judge_item("slake", s.kind, "What is shown?", a, r, compat)
        for (a, _, r), s in zip(SLAKE, scores, strict=True)
    ]
    assert one_by_one == verdicts

    metrics = vqa_metrics("slake", scores, judge=verdicts_for_metrics(verdicts), compat=compat)
    per_item = [
        item_correct("slake", s.kind, s.correct, v, compat)
        for s, v in zip(scores, verdicts, strict=True)
    ]

    if compat == "correct":
        assert asked == [True, True, False, False, True]
        assert per_item == [True, False, True, False, None]
        assert metrics["close"] == {"total": 2, "right": 1, "acc": 0.5}
        assert (metrics["open"]["right"], metrics["open"]["acc"]) == (1, 1 / 3)
        assert metrics["total metrics"] == {"total": 5, "right": 2, "acc": 0.4}
    else:  # closed verdicts added to the rule's count; open acc divided twice
        assert asked == [True] * 5
        assert per_item == [True, False, True, True, False]
        assert metrics["close"] == {"total": 2, "right": 3, "acc": 1.5}
        assert (metrics["open"]["right"], metrics["open"]["acc"]) == (1, 1 / 9)
        assert metrics["total metrics"] == {"total": 5, "right": 4, "acc": 0.8}
    judge.close()


@pytest.mark.parametrize("compat", ["correct", "medevalkit"])
def test_pathvqa_with_the_judge_loses_its_closed_count_only_in_compat(judge_server, compat):
    url, _ = judge_server
    judge = _judge(url)
    rows = [("yes", "Yes."), ("liver", "The liver"), ("brain", "Kidney")]
    scores = [score_vqa_item("path_vqa", a, r) for a, r in rows]
    verdicts = [
        judge.judge("q", a, judged_response("path_vqa", r)) if s.kind == "open" else None
        for (a, r), s in zip(rows, scores, strict=True)
    ]

    metrics = vqa_metrics("path_vqa", scores, judge=verdicts_for_metrics(verdicts), compat=compat)

    assert [v.correct if v else None for v in verdicts] == [None, True, False]
    if compat == "correct":
        assert metrics["close"] == {"total": 1, "right": 1, "acc": 1.0}
        assert metrics["total metrics"] == {"total": 3, "right": 2, "acc": 2 / 3}
        assert metrics["open"]["acc"] == 0.5
    else:
        assert metrics["close"] == {"total": 1, "right": 0, "acc": 0.0}
        assert metrics["total metrics"] == {"total": 3, "right": 1, "acc": 1 / 3}
        assert metrics["open"]["acc"] == 0.25
    judge.close()


@pytest.mark.slow
def test_a_real_model_server_judges_and_its_reply_is_kept_whatever_it_says(tiny_checkpoint):
    base_url, ctx = transformers_serve(tiny_checkpoint)
    with ctx:
        settings = Settings(
            judge_model=str(tiny_checkpoint), judge_base_url=base_url, judge_max_new_tokens=8
        )
        judge = LlmJudge.from_settings(settings)
        assert judge is not None
        verdict = judge.judge("Which organ?", "liver", "the liver")
        judge.close()
    assert verdict.error is None and verdict.reply is not None
    assert verdict.prompt == judge_prompt("Which organ?", "liver", "the liver")
    assert verdict.correct is parse_verdict(verdict.reply)  # random weights: whatever it said


def test_the_runner_asks_the_judge_keeps_its_verdicts_and_reports_them(
    judge_server, tmp_path, bench_data
):
    from medmo_agent.backends.scripted import ScriptedBackend
    from medmo_agent.evaluation.records import EvalStore
    from medmo_agent.evaluation.runner import run_eval

    replies = {"pneumothorax": "Yes.", "heart": "no", "organ": "Left lung", "modality": "CT"}

    def reply(request) -> str:
        text = request.messages[-1].text.lower()
        return next(r for key, r in replies.items() if key in text)

    url, _ = judge_server
    judge = _judge(url)
    out = tmp_path / "run"
    result = run_eval(
        "vqa_rad",
        out,
        data_dir=bench_data,
        backend=ScriptedBackend(responder=reply),
        settings=Settings(),
        judge=judge.runner_judge("correct"),
    )
    judge.close()

    records = EvalStore(out).read_items("vqa_rad", "direct")
    judged = {k: r.verdict["judge"] for k, r in records.items() if "judge" in r.verdict}
    assert len(judged) == 2  # the two open items
    by_answer = {
        v["prompt"].split("The standard answer: ")[1].split("\n")[0]: v for v in judged.values()
    }
    assert by_answer["left lung"]["reply"] == RIGHT and by_answer["left lung"]["correct"] is True
    assert "The user's answer: left lung\n" in by_answer["left lung"]["prompt"]
    assert by_answer["x-ray"]["correct"] is False and by_answer["x-ray"]["model"] == "judge-model"
    rad = result.metrics["vqa_rad"]["direct"]
    assert rad["open"]["right"] == 1 and rad["total metrics"]["right"] == 3
    html = (out / "report.html").read_text()
    assert "judged by an LLM (judge-model)" in html
