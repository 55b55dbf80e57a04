"""What a review writes down: one record per case with every step, and its provenance.

A :class:`CaseRecord` is the unit of resumability: it is written last, atomically, once
everything else of the case is on disk; its presence marks the case as done.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, Field

from .. import __version__

__all__ = [
    "CaseRecord",
    "ImageRecord",
    "Provenance",
    "StepRecord",
    "error_dict",
    "prompts_hash",
]

SCHEMA_VERSION = 1


class StepRecord(BaseModel):
    """One step of a case's trace: what was asked, of which image, and what came back."""

    index: int = Field(description="Position in the case's trace, from 0.")
    step: str = Field(description="The step's name (its task unless named otherwise).")
    task: str = Field(description="The toolkit task run: vqa, ground, report, ... or agent.")
    image: int | None = Field(None, description="Index of the case image the step looked at.")
    question_index: int | None = Field(None, description="Which case question it answered.")
    box_index: int | None = Field(None, description="Which earlier box it was about.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Arguments given.")
    status: Literal["ok", "failed", "skipped"] = "ok"
    result: dict[str, Any] | None = Field(None, description="The task's result, as JSON.")
    error: dict[str, Any] | None = None
    seconds: float = 0.0


class ImageRecord(BaseModel):
    """A case image: where it came from, what it is, and its overlay file."""

    index: int
    path: str = Field(description="The path as the case gave it.")
    location: str | None = Field(None, description="Where it was read from on disk.")
    options: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] | None = Field(None, description="De-identified image metadata.")
    overlay: str | None = Field(None, description="PNG file name in the case folder.")
    boxes: list[dict[str, Any]] = Field(default_factory=list, description="Boxes drawn.")


class Provenance(BaseModel):
    """Everything needed to reproduce a result."""

    package_version: str = __version__
    model: str
    revision: str | None = None
    backend: str
    backend_info: dict[str, Any] = Field(default_factory=dict)
    prompts_sha256: str
    steps: Any = Field(description="The steps as configured (workflow, agent, or task list).")
    parameters: dict[str, Any] = Field(default_factory=dict)
    python: str = Field(default_factory=platform.python_version)

    def fingerprint(self) -> str:
        """A hash of what decides a case's answer; a finished case with another one is redone.

        The package and Python versions are recorded but left out: upgrading them does
        not by itself invalidate finished work.
        """
        import json

        key = {
            "model": self.model,
            "revision": self.revision,
            "backend": self.backend,
            "prompts": self.prompts_sha256,
            "steps": self.steps,
            "parameters": self.parameters,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class CaseRecord(BaseModel):
    """The result of reviewing one case."""

    schema_version: int = SCHEMA_VERSION
    id: str
    status: Literal["ok", "failed"]
    error: dict[str, Any] | None = Field(None, description="Why the case failed.")
    case_digest: str = Field(description="Hash of the case as written.")
    fingerprint: str = Field(description="Hash of model, prompts, steps and parameters.")
    started_at: str
    finished_at: str
    seconds: float
    context: str | None = None
    images: list[ImageRecord] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list, description="The trace.")
    outputs: dict[str, Any] = Field(default_factory=dict, description="Findings, answers, ...")
    agreement: dict[str, Any] | None = Field(None, description="Against the expected values.")
    report_file: str | None = None
    provenance: Provenance


def prompts_hash() -> str:
    """SHA-256 over the names and contents of the packaged prompt files, in name order."""
    digest = hashlib.sha256()
    try:
        folder = resources.files("medmo_agent.tasks") / "prompts"
        files = sorted(
            (p for p in folder.iterdir() if p.name.endswith(".txt")), key=lambda p: p.name
        )
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        files = []
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def error_dict(exc: BaseException) -> dict[str, Any]:
    """A JSON-ready description of an error: MedMO's own fields, or type and message."""
    to_dict = getattr(exc, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return {
        "error": type(exc).__name__,
        "message": str(exc) or repr(exc),
        "input": None,
        "fix": None,
    }
