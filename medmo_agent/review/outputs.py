"""A case's outputs, gathered from its trace: reports, answers, labels, boxes, conclusions.

Works on the JSON form of the steps, so task lists, the diagnostic workflow and the agent
all feed the same reports and agreement figures.
"""

from __future__ import annotations

from typing import Any

from ..tasks.registry import canonical_name
from .records import StepRecord

__all__ = ["collect_outputs"]


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(item.strip())
    return out


def collect_outputs(steps: list[StepRecord], n_images: int) -> dict[str, Any]:
    """Reports, answers, labels, boxes (per image), reasoning, summaries and volume sweeps
    (``volumes``: each sweep's 3D findings) of a trace.

    Later answers to the same case question replace earlier ones; ``final_answer`` is
    the last answer the steps produced (the agent's, the workflow's conclusion, or the
    last vqa/reason step).
    """
    reports: list[dict[str, Any]] = []
    answers: dict[int, dict[str, Any]] = {}
    box_answers: list[dict[str, Any]] = []
    labels: list[str] = []
    no_finding = False
    classified = False
    grounded = False
    boxes: list[list[dict[str, Any]]] = [[] for _ in range(n_images)]
    reasoning: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    final_answer: str | None = None
    conclusions: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []

    for rec in steps:
        res = rec.result or {}
        if rec.status != "ok" or not isinstance(res, dict):
            continue
        kind = canonical_name(rec.task)  # steps record the task as the case file names it
        if kind == "report":
            reports.append(
                {
                    "image": rec.image,
                    "findings": res.get("findings", ""),
                    "impression": res.get("impression", ""),
                    "report": res.get("report", ""),
                }
            )
        elif kind in ("ground", "detect") and rec.image is not None and rec.image < n_images:
            grounded = True
            boxes[rec.image].extend(res.get("boxes", []))
        elif kind == "classify":
            classified = True
            labels.extend(res.get("labels", []))
            no_finding = no_finding or bool(res.get("no_finding"))
        elif kind in ("vqa", "reason", "text_qa", "agent", "workflow"):
            answer = {
                "step": rec.step,
                "task": rec.task,
                "image": rec.image,
                "question": res.get("question", rec.inputs.get("question")),
                "answer": res.get("answer", ""),
                "yes_no": res.get("yes_no"),
                "choice": res.get("choice"),
                "choice_text": res.get("choice_text"),
            }
            if rec.task in ("workflow", "agent"):
                conclusions.append(
                    {
                        "image": rec.image,
                        "question": answer["question"],
                        "conclusion": res.get("conclusion") or answer["answer"],
                    }
                )
            if rec.task == "reason":
                reasoning.append({**answer, "thinking": res.get("thinking", "")})
            if rec.question_index is not None:
                answers[rec.question_index] = {**answer, "question_index": rec.question_index}
            elif rec.box_index is not None:
                box_answers.append({**answer, "box_index": rec.box_index})
            final_answer = answer["answer"] or final_answer
        elif kind == "ground_volume":
            volumes.append(_volume(rec, res))
        elif kind == "summarize_report":
            summaries.append(
                {
                    "summary": res.get("summary_text", ""),
                    "key_findings": res.get("key_findings", []),
                }
            )

    return {
        "reports": reports,
        "answers": [answers[k] for k in sorted(answers)],
        "box_answers": box_answers,
        "labels": _dedupe(labels),
        "no_finding": no_finding and not labels,
        "classified": classified,
        "boxes": boxes,
        "grounded": grounded,
        "reasoning": reasoning,
        "summaries": summaries,
        "conclusions": conclusions,
        "final_answer": final_answer,
        "volumes": volumes,
    }


#: What a report shows of a volume sweep (its per-slice answers stay in the step's record).
_VOLUME_KEYS = (
    "plane",
    "shape",
    "slices",
    "spacing_mm",
    "frame",
    "time_point",
    "findings",
    "study_read",
)


def _volume(rec: StepRecord, res: dict[str, Any]) -> dict[str, Any]:
    """A volume sweep step as the reports show it: its 3D findings, geometry and warnings,
    and each swept slice only as whether it failed."""
    return {
        "step": rec.step,
        "index": rec.index,
        "image": rec.image,
        **{k: res.get(k) for k in _VOLUME_KEYS},
        "per_slice": [
            {"slice": e.get("slice"), "error": e.get("error")} for e in res.get("per_slice", [])
        ],
        "warnings": res.get("warnings", []),
        "overview": None,
    }
