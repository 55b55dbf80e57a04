"""Traces: every step of an agent or workflow run, as data.

A :class:`Trace` is a list of :class:`TraceStep` (thoughts, tool calls, tool results and
the final conclusion) with timings and token counts. It is JSON-serialisable
(:meth:`Trace.save`, :meth:`Trace.load`), renders as Markdown and HTML
(:meth:`Trace.to_markdown`, :meth:`Trace.to_html`, with box overlays), and streams while
the run goes: register a callback with :meth:`Trace.on_step` and it is called with each
step the moment it is recorded::

    trace = Trace(question="Is there a pneumothorax?", image="chest.png")
    trace.on_step(lambda step: print(step.number, step.kind, step.tool or ""))
    agent.run("chest.png", "Is there a pneumothorax?", trace=trace)

Privacy: images appear by handle (path, ``medmo://`` URI) only. Pixels are never stored;
an inline ``data:`` URI argument is replaced by a digest and its length. The trace keeps
paths in memory (to draw overlays), but its JSON, Markdown and HTML show each path as a
label (:mod:`medmo_agent.privacy`) unless ``include_paths`` (``MEDMO_INCLUDE_PATHS``) is on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..types import Box
from .render import result_model

__all__ = ["StepCallback", "StepKind", "Trace", "TraceStep", "redact_arguments", "result_model"]

log = logging.getLogger(__name__)

StepKind = Literal["thought", "tool_call", "tool_result", "final"]
#: Called with each step as it is recorded.
StepCallback = Callable[["TraceStep"], None]

TRACE_VERSION = 1


class TraceStep(BaseModel):
    """One step of a run.

    ``kind`` is ``thought`` (planner text between tool calls, or a workflow note),
    ``tool_call`` (a tool and its arguments), ``tool_result`` (what the tool returned:
    the result model as a dict, its boxes, or an error) or ``final`` (the conclusion,
    or why the run stopped).
    """

    model_config = ConfigDict(extra="ignore")

    number: int = Field(description="1-based position in the trace.")
    kind: StepKind
    text: str = Field("", description="Thought, conclusion, summary of a result, or error.")
    tool: str | None = None
    call_id: str | None = Field(None, description="Links a tool_result to its tool_call.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Images by handle.")
    result: dict[str, Any] | None = Field(None, description="The result model, as a dict.")
    result_type: str | None = Field(None, description="Result model class, e.g. VQAResult.")
    boxes: list[Box] = Field(default_factory=list)
    image: str | None = Field(None, description="Handle of the image this step concerns.")
    status: Literal["ok", "error"] = "ok"
    error: dict[str, Any] | None = None
    started_at: float = Field(default_factory=time.time, description="Unix time.")
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    workflow_step: str | None = Field(None, description="Workflow step name, if any.")

    def shown(self, include_paths: bool | None = None, paths: tuple[str, ...] = ()) -> TraceStep:
        """A copy fit to show: image paths replaced by labels unless ``include_paths``.

        Args:
            include_paths: Keep paths; ``None`` follows ``MEDMO_INCLUDE_PATHS``.
            paths: Further paths to hide wherever they are mentioned (e.g. the run's image).
        """
        from ..privacy import include_paths_or_env, scrub_data

        shown = include_paths_or_env(include_paths)
        return TraceStep.model_validate(scrub_data(self.model_dump(mode="json"), shown, paths))


class Trace(BaseModel):
    """A run's steps plus what it was about and how it ended.

    ``stopped`` is ``None`` for a run that concluded, otherwise why it stopped early
    (``"step_limit"``, ``"time_limit"``, ``"error"``, ``"cancelled"``); the steps taken
    until then are kept.
    """

    model_config = ConfigDict(extra="ignore")

    version: int = TRACE_VERSION
    mode: Literal["agent", "workflow"] = "agent"
    question: str = ""
    image: str | None = None
    context: dict[str, Any] = Field(default_factory=dict, description="Age, sex, history.")
    planner: str | None = None
    tools_source: str | None = Field(None, description="'in-process' or 'mcp:<target>'.")
    steps: list[TraceStep] = Field(default_factory=list)
    conclusion: str | None = None
    stopped: str | None = None
    started_at: float = Field(default_factory=time.time)
    seconds: float = 0.0

    _listeners: list[StepCallback] = PrivateAttr(default_factory=list)
    _t0: float = PrivateAttr(default_factory=time.perf_counter)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    # ---- live events -------------------------------------------------------------------

    def on_step(self, callback: StepCallback) -> StepCallback:
        """Call ``callback(step)`` for every step recorded from now on; returns it.

        Callbacks run in the thread that records the step; an exception in one is
        logged and does not stop the run.
        """
        self._listeners.append(callback)
        return callback

    def add(self, kind: StepKind, **fields: Any) -> TraceStep:
        """Record a step (numbered automatically) and tell the listeners."""
        if "arguments" in fields:
            fields["arguments"] = redact_arguments(fields["arguments"] or {})
        with self._lock:  # parallel tool calls record from several threads
            step = TraceStep(number=len(self.steps) + 1, kind=kind, **fields)
            self.steps.append(step)
        for callback in list(self._listeners):
            try:
                callback(step)
            except Exception:  # a broken display must not end a clinical review
                log.exception("trace step callback failed")
        return step

    def finish(self, conclusion: str | None, stopped: str | None = None) -> TraceStep:
        """Record the final step and the run's total time."""
        self.conclusion = conclusion
        self.stopped = stopped
        self.seconds = round(time.perf_counter() - self._t0, 4)
        return self.add("final", text=conclusion or "", status="error" if stopped else "ok")

    # ---- views -------------------------------------------------------------------------

    @property
    def tool_steps(self) -> list[TraceStep]:
        """The tool results, in order."""
        return [s for s in self.steps if s.kind == "tool_result"]

    @property
    def final(self) -> TraceStep | None:
        """The final step, once the run has ended."""
        return next((s for s in reversed(self.steps) if s.kind == "final"), None)

    @property
    def tokens(self) -> tuple[int, int]:
        """(prompt, completion) tokens over all steps."""
        return (
            sum(s.prompt_tokens for s in self.steps),
            sum(s.completion_tokens for s in self.steps),
        )

    # ---- persistence -------------------------------------------------------------------

    def shown(self, include_paths: bool | None = None) -> Trace:
        """A copy fit to show: image paths replaced by labels unless ``include_paths``.

        Args:
            include_paths: Keep paths; ``None`` follows ``MEDMO_INCLUDE_PATHS``.
        """
        from ..privacy import include_paths_or_env, scrub_data

        data = scrub_data(self.model_dump(mode="json"), include_paths_or_env(include_paths))
        return Trace.model_validate(data)

    def to_json(self, indent: int | None = 2, *, include_paths: bool | None = None) -> str:
        """The trace as JSON text (image paths as :meth:`shown` decides)."""
        return self.shown(include_paths).model_dump_json(indent=indent)

    def save(self, path: str | Path, *, include_paths: bool | None = None) -> Path:
        """Write the trace as JSON (image paths as :meth:`shown` decides); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(include_paths=include_paths), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, text: str) -> Trace:
        """Rebuild a trace from :meth:`to_json` output."""
        return cls.model_validate_json(text)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace written by :meth:`save`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def to_markdown(
        self,
        *,
        load_image: Callable[[str], Any] | None = None,
        include_paths: bool | None = None,
    ) -> str:
        """The trace as Markdown (steps, results, boxes, conclusion; image paths as
        :meth:`shown` decides). A volume step shows its findings table and its overview
        strip (embedded as a ``data:`` image) when its volume can be read.

        Args:
            load_image: Loads an image handle (e.g. ``Toolkit.load``); by default local
                paths are read.
            include_paths: Name image paths; ``None`` follows ``MEDMO_INCLUDE_PATHS``.
        """
        from .render import trace_to_markdown

        return trace_to_markdown(
            self.shown(include_paths), load_image=self._real_loader(load_image)
        )

    def to_html(
        self,
        *,
        load_image: Callable[[str], Any] | None = None,
        include_paths: bool | None = None,
    ) -> str:
        """The trace as a self-contained HTML page, with boxes drawn on small thumbnails.

        Args:
            load_image: Loads an image handle (e.g. ``Toolkit.load``) for overlays; by
                default local paths are read, and steps whose image cannot be read are
                shown without an overlay.
            include_paths: Name image paths; ``None`` follows ``MEDMO_INCLUDE_PATHS``.
        """
        from .render import trace_to_html

        return trace_to_html(self.shown(include_paths), load_image=self._real_loader(load_image))

    def _real_loader(self, load_image: Callable[[str], Any] | None) -> Callable[[str], Any]:
        """A loader of the handles a shown copy names: labels stand for the real paths, so
        overlays are still drawn from the real images."""
        from ..privacy import is_path, path_label
        from .render import _default_loader

        real = {path_label(h): h for h in self._handles() if is_path(h)}
        load = load_image or _default_loader

        def load_real(handle: str) -> Any:
            return load(real.get(handle, handle))

        return load_real

    def _handles(self) -> set[str]:
        handles = {self.image} if self.image else set()
        return handles | {s.image for s in self.steps if s.image}

    def _repr_html_(self) -> str:
        """Rich display in notebooks: collapsible steps, the conclusion highlighted; image
        paths as :meth:`shown` decides (a notebook's outputs are saved and shared with it)."""
        from .render import trace_html

        return trace_html(self.shown())


def _redact(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("data:"):
        digest = hashlib.sha256(value.encode()).hexdigest()[:12]
        return f"<inline image sha256:{digest}, {len(value)} chars>"
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    if hasattr(value, "pixels") and hasattr(value, "meta"):  # a MedImage
        return getattr(value, "handle", None) or f"<image {value.meta.source}>"
    return value


def redact_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments fit for a trace: JSON-ready, images by handle, no pixels."""
    out = _redact(dict(arguments))
    return json.loads(json.dumps(out, default=str))


def boxes_of(result: Any) -> list[Box]:
    """Boxes inside a result model or a result dict."""
    raw = getattr(result, "boxes", None)
    if raw is None and isinstance(result, dict):
        raw = result.get("boxes")
    out = []
    for b in raw or []:
        try:
            out.append(b if isinstance(b, Box) else Box.model_validate(b))
        except Exception:
            continue
    return out
