"""Evaluation output folders in the runner's layout, scored by the real scoring code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medmo_agent.evaluation.aggregate import choice_metrics, score_vqa_item, vqa_metrics
from medmo_agent.evaluation.judging import judge_multiple_choice
from medmo_agent.evaluation.llm_judge import judge_prompt

# (answer, direct response, agent response, modality)
VQA_RAD = [
    ("yes", "Yes.", "yes", "CT"),
    ("no", "There is a normal heart.", "no", "CT"),  # "normal" contains "no"
    ("no", "yes", "no", "X-Ray"),
    ("yes", "no", "no", "X-Ray"),
    ("left lung", "left lung", "left lung", "X-Ray"),
    ("liver", "kidney", "liver", "CT"),
]
PUBMEDQA_OPTIONS = ["A.yes", "B.no", "C.maybe"]


def _item(bench: str, mode: str, n: int, **fields: Any) -> dict[str, Any]:
    prompt = fields.pop("prompt", f"{bench} question {n}")
    return {
        "item_id": f"{bench}-{n}",
        "benchmark": bench,
        "mode": mode,
        "question_type": fields.pop("question_type"),
        "modality": fields.pop("modality", None),
        "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest(),
        "prompt": prompt,
        "raw_answer": None,
        "extracted": None,
        "correct": None,
        "verdict": {},
        "metrics": {},
        "error": None,
        **fields,
    }


def _write(root: Path, bench: str, mode: str, items: list[dict], metrics: dict) -> None:
    folder = root / bench / mode
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    results = [{"response": i["raw_answer"], "correct": i["correct"]} for i in items]
    (folder / "results.json").write_text(json.dumps(results))


def make_run(root: Path, *, compat: str = "correct", model: str = "MBZUAI/MedMO-8B-Next") -> Path:
    """A finished two-mode run: vqa_rad (direct, agent), pubmedqa and slake (direct)."""
    root.mkdir(parents=True, exist_ok=True)
    for mode, col in (("direct", 1), ("agent", 2)):
        items, scores = [], []
        for n, row in enumerate(VQA_RAD):
            answer, response, modality = row[0], row[col], row[3]
            s = score_vqa_item("vqa_rad", answer, response, compat=compat)  # type: ignore[arg-type]
            scores.append(s)
            qtype = "yes_no" if s.kind == "close" else "open"
            items.append(
                _item(
                    "vqa_rad",
                    mode,
                    n,
                    question_type=qtype,
                    modality=modality,
                    raw_answer=response,
                    extracted=response.lower(),
                    correct=s.correct,
                    verdict={"rule": qtype},
                    metrics=s.metrics,
                )
            )
        _write(root, "vqa_rad", mode, items, vqa_metrics("vqa_rad", scores, compat=compat))  # type: ignore[arg-type]

    # pubmedqa: 40 items, 10 right, and one failed item (not counted)
    items, verdicts = [], []
    for n in range(40):
        response = "A" if n < 10 else "B"
        ok = judge_multiple_choice(PUBMEDQA_OPTIONS, "A", response)
        verdicts.append(ok)
        items.append(
            _item(
                "pubmedqa",
                "direct",
                n,
                question_type="multiple_choice",
                raw_answer=response,
                extracted=response.lower(),
                correct=ok,
            )
        )
    items.append(
        _item(
            "pubmedqa",
            "direct",
            40,
            question_type="multiple_choice",
            error="BackendError: the server closed the connection <script>alert(1)</script>",
        )
    )
    _write(root, "pubmedqa", "direct", items, choice_metrics(verdicts))

    # slake: modalities, a judged open item and a judge failure
    rows = [
        ("yes", "CLOSED", "yes", "MRI", None),
        ("brain", "OPEN", "the brain", "MRI", ("<judge>0</judge>", True, None)),
        ("lung", "OPEN", "lungs", "CT", (None, None, "BackendError: judge unreachable")),
    ]
    items, scores = [], []
    for n, (answer, atype, response, modality, judged) in enumerate(rows):
        s = score_vqa_item("slake", answer, response, answer_type=atype, compat=compat)  # type: ignore[arg-type]
        scores.append(s)
        verdict: dict[str, Any] = {"rule": s.correct}
        correct: bool | None = s.correct
        if judged:
            reply, judge_ok, error = judged
            verdict["judge"] = {
                "model": "judge-model",
                "prompt": judge_prompt("q", answer, response),
                "reply": reply,
                "correct": judge_ok,
                "error": error,
            }
            correct = judge_ok
        items.append(
            _item(
                "slake",
                "direct",
                n,
                question_type="closed" if atype == "CLOSED" else "open",
                modality=modality,
                raw_answer=response,
                correct=correct,
                verdict=verdict,
                metrics=s.metrics,
            )
        )
    _write(root, "slake", "direct", items, vqa_metrics("slake", scores, compat=compat))  # type: ignore[arg-type]

    run = {
        "model": model,
        "revision": "0123abc",
        "backend": "transformers",
        "versions": {"medmo-agent": "0.1.0", "transformers": "5.0.0", "torch": "2.9.0"},
        "python": "3.11.7",
        "seed": 7,
        "limit": None,
        "modes": ["direct", "agent"],
        "compat": compat,
        "judge_model": "judge-model",
        "max_new_tokens": 512,
        "temperature": 0.0,
        "started_at": "2026-12-04T01:00:00+00:00",
        "finished_at": "2026-12-04T01:05:00+00:00",
        "benchmarks": {
            "vqa_rad": {"hub_id": "flaviagiammarino/vqa-rad", "split": "test", "items": 6},
            "pubmedqa": {"hub_id": "openlifescienceai/pubmedqa", "split": "test", "items": 41},
            "slake": {"hub_id": "BoKelvin/SLAKE", "split": "test", "items": 3},
        },
    }
    (root / "run.json").write_text(json.dumps(run))
    return root
