"""Scripted multi-step case reviews: many cases, unattended, resumable, with a report.

>>> from medmo_agent.review import run_review
>>> result = run_review("cases.yaml", steps="ground:nodule,vqa,report", out="review-out")
... # doctest: +SKIP

See :func:`run_review` for the Python API and ``medmo review --help`` for the command.
"""

from __future__ import annotations

from .agreement import aggregate_agreement, case_agreement
from .case_sources import load_case_file, load_cases
from .cases import Case, CaseFile, ExpectedBox, ImageSpec, Question
from .plans import AgentPlan, TaskListPlan, WorkflowPlan, resolve_plan
from .records import CaseRecord, ImageRecord, Provenance, StepRecord, prompts_hash
from .runner import ReviewResult, run_review
from .steps import TaskStep, parse_task_steps

__all__ = [
    "AgentPlan",
    "Case",
    "CaseFile",
    "CaseRecord",
    "ExpectedBox",
    "ImageRecord",
    "ImageSpec",
    "Provenance",
    "Question",
    "ReviewResult",
    "StepRecord",
    "TaskListPlan",
    "TaskStep",
    "WorkflowPlan",
    "aggregate_agreement",
    "case_agreement",
    "load_case_file",
    "load_cases",
    "parse_task_steps",
    "prompts_hash",
    "resolve_plan",
    "run_review",
]
