"""Result models of every task. They double as MCP output schemas, LangChain tool outputs
and widget inputs, so field descriptions are written for an LLM reader. Every result keeps
the model's raw text."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..types import Box, ImageMeta

__all__ = [
    "ClassificationResult",
    "DetectionResult",
    "GroundingResult",
    "ImageRef",
    "ReasoningResult",
    "ReportResult",
    "SummaryResult",
    "TaskResult",
    "TextQAResult",
    "Usage",
    "VQAResult",
]


class Usage(BaseModel):
    """Tokens and time spent on one model call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = Field(0.0, description="Wall time from submission to the last token.")
    first_token_seconds: float | None = None


class ImageRef(BaseModel):
    """Which image a result is about: a handle to pass to later steps, and its metadata."""

    handle: str | None = Field(
        None, description="Path or URI to pass to later tool calls instead of pixels."
    )
    meta: ImageMeta


class TaskResult(BaseModel):
    """Fields every task result has."""

    task: str = Field(description="Task name: vqa, text_qa, report, ground, detect, ...")
    raw_text: str = Field(description="The model's answer, verbatim.")
    model: str = Field("", description="Model id that answered.")
    backend: str = ""
    usage: Usage = Field(default_factory=Usage)
    image: ImageRef | None = None
    notes: list[str] = Field(
        default_factory=list, description="Parser remarks, e.g. when the answer was malformed."
    )
    result_uri: str | None = Field(
        None, description="URI under which a server keeps this result for later reference."
    )

    def summary(self) -> str:
        """A short plain-text rendering for terminals and chat."""
        return self.raw_text.strip()

    def _repr_html_(self) -> str:
        """Rich display in notebooks and exported HTML (see :mod:`medmo_agent.rendering`)."""
        from ..rendering import result_html

        return result_html(self)


class VQAResult(TaskResult):
    """Answer to a question about an image."""

    task: str = "vqa"
    question: str
    question_type: Literal["open", "closed", "multiple_choice"] = "open"
    answer: str = Field(description="The answer, cleaned of reasoning tags and boilerplate.")
    yes_no: bool | None = Field(None, description="For closed questions: yes -> true, no -> false.")
    choice: str | None = Field(None, description="For multiple choice: the chosen letter.")
    choice_text: str | None = Field(None, description="For multiple choice: the chosen option.")

    def summary(self) -> str:
        if self.choice:
            return f"{self.choice}. {self.choice_text or ''}".strip()
        return self.answer


class TextQAResult(TaskResult):
    """Answer to a clinical knowledge question without an image."""

    task: str = "text_qa"
    question: str
    answer: str
    choice: str | None = None
    choice_text: str | None = None

    def summary(self) -> str:
        if self.choice:
            return f"{self.choice}. {self.choice_text or ''}".strip()
        return self.answer


class ReportResult(TaskResult):
    """A radiology report split into sections."""

    task: str = "report"
    findings: str = Field("", description="The Findings section (or the whole text if unsplit).")
    impression: str = Field("", description="The Impression section, if the model wrote one.")
    report: str = Field(description="The full report text, cleaned.")

    def summary(self) -> str:
        parts = []
        if self.findings:
            parts.append(f"Findings: {self.findings}")
        if self.impression:
            parts.append(f"Impression: {self.impression}")
        return "\n".join(parts) or self.report


class GroundingResult(TaskResult):
    """Boxes for findings or anatomy, in original-image pixels and normalised 0-1."""

    task: str = "ground"
    targets: list[str] = Field(default_factory=list, description="What was asked for.")
    boxes: list[Box] = Field(default_factory=list)
    found: bool = Field(description="Whether the model reported anything at all.")
    coordinate_space: Literal["pixel", "relative_1000", "none"] = Field(
        "none", description="How the model answered: input-image pixels or Qwen's 0-1000 grid."
    )
    image_size: tuple[int, int] | None = Field(None, description="(width, height), original.")

    def summary(self) -> str:
        if not self.boxes:
            return "No findings localised." if not self.found else self.raw_text.strip()
        lines = [f"{b.label}: [{b.x1:.0f}, {b.y1:.0f}, {b.x2:.0f}, {b.y2:.0f}]" for b in self.boxes]
        return f"{len(self.boxes)} box(es), original-image pixels (x1, y1, x2, y2):\n" + "\n".join(
            lines
        )


class DetectionResult(GroundingResult):
    """Many small objects (cells, bacteria, lesions): boxes and counts per label."""

    task: str = "detect"
    counts: dict[str, int] = Field(default_factory=dict, description="Number of boxes per label.")

    def summary(self) -> str:
        if not self.boxes:
            return "Nothing detected."
        counts = ", ".join(f"{k}: {v}" for k, v in self.counts.items())
        return f"Detected {len(self.boxes)} ({counts})."


class ClassificationResult(TaskResult):
    """Labels the model assigned, from a candidate set or free."""

    task: str = "classify"
    labels: list[str] = Field(default_factory=list, description="Labels present, canonical names.")
    candidate_labels: list[str] = Field(default_factory=list)
    no_finding: bool = Field(False, description="True when the model said there is no finding.")
    unmatched: list[str] = Field(
        default_factory=list, description="Answer terms that matched no candidate label."
    )

    def summary(self) -> str:
        if self.no_finding and not self.labels:
            return "No Finding"
        return ", ".join(self.labels) or self.raw_text.strip()


class ReasoningResult(TaskResult):
    """Step-by-step clinical reasoning and its conclusion."""

    task: str = "reason"
    question: str
    thinking: str = Field("", description="The reasoning text (inside <think> when present).")
    steps: list[str] = Field(default_factory=list, description="The reasoning split into steps.")
    answer: str = Field(description="The final answer (inside <answer> when present).")

    def summary(self) -> str:
        return self.answer


class SummaryResult(TaskResult):
    """Key findings extracted from a report text."""

    task: str = "summarize"
    key_findings: list[str] = Field(default_factory=list)
    summary_text: str = Field("", description="One- or two-sentence summary.")

    def summary(self) -> str:
        bullets = "\n".join(f"- {f}" for f in self.key_findings)
        # without a summary line the first key finding stands in: show it once, as a bullet
        head = "" if self.summary_text in self.key_findings else self.summary_text
        return (head + ("\n" + bullets if bullets else "")).strip()
