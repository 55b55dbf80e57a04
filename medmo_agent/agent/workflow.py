"""A deterministic diagnostic review as a LangGraph graph: no tool-calling planner needed.

The default steps, in order::

    identify    vqa: modality, body region and view
    localize    ground: every visible abnormality, with boxes
    verify      vqa about each finding and its box: does it hold up?
    classify    classify: disease labels
    report      report: findings and impression, with the clinical context
    impression  reason: the answer to the clinical question, a differential diagnosis,
                and the uncertainty, from everything above

Steps can be skipped, reordered or added (any function of a :class:`StepContext`). The
same workflow runs on the in-process toolkit or against an MCP server, since it calls
tools by name through LangChain tools either way::

    wf = DiagnosticWorkflow(toolkit=Toolkit())
    trace = wf.run("chest.png", "Cause of dyspnoea?", context={"age": 67, "sex": "M"})

    async with mcp_tools("http://gpu-host:8000/mcp") as tools:
        trace = await DiagnosticWorkflow(tools).arun("medmo://images/ab12", ...)
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from ..errors import InputError
from . import streaming
from .middleware import limit_message
from .trace import StepCallback, Trace, TraceStep
from .workflow_steps import BUILTIN_STEPS, StepContext, StepFn, WorkflowRun, localize
from .workflow_volume import VOLUME_STEPS, looks_like_volume, study_report, sweep

__all__ = [
    "DEFAULT_QUESTION",
    "DEFAULT_STEPS",
    "VOLUME_STEPS",
    "DiagnosticWorkflow",
    "StepContext",
]

DEFAULT_STEPS = ("identify", "localize", "verify", "classify", "report", "impression")
DEFAULT_QUESTION = "What are the findings, and what is the most likely diagnosis?"
DISCLAIMER = "For research use only; not a clinical diagnosis."


class WorkflowState(TypedDict, total=False):
    """What the steps share: each step reads earlier results and adds its own."""

    results: dict[str, Any]
    findings: list[dict[str, Any]]
    stopped: str | None


# ---- the workflow ----------------------------------------------------------------------


class DiagnosticWorkflow:
    """A reproducible multi-step review of one image, as a LangGraph graph.

    Args:
        tools: LangChain tools to call by name (``vqa``, ``ground``, ``classify``,
            ``report``, ``reason``): an MCP server's (async) or the toolkit's. Defaults to
            the in-process toolkit's tools.
        toolkit: In-process toolkit used when ``tools`` is not given.
        backend: Backend for a toolkit built here.
        settings: Settings for a toolkit built here.
        steps: Step names in order; built-ins are listed in :data:`DEFAULT_STEPS`.
        max_findings: Most findings carried from ``localize`` to ``verify``.
        time_limit_s: Stop (with a clear final message) once this many seconds have
            passed; checked between steps.
        max_new_tokens: Token cap passed to every tool call.
    """

    def __init__(
        self,
        tools: Sequence[Any] | None = None,
        *,
        toolkit: Any = None,
        backend: Any = None,
        settings: Any = None,
        steps: Sequence[str] = DEFAULT_STEPS,
        max_findings: int = 5,
        time_limit_s: float | None = None,
        max_new_tokens: int | None = None,
        tools_source: str | None = None,
    ) -> None:
        if tools is None:
            from .tools import toolkit_tools

            if toolkit is None:
                from ..toolkit import Toolkit

                toolkit = Toolkit(backend=backend, settings=settings)
            tools = toolkit_tools(toolkit)
            tools_source = tools_source or "in-process"
        self.tools = {t.name: t for t in tools}
        self.tools_source = tools_source or "mcp"
        self.max_findings = max_findings
        self.time_limit_s = time_limit_s
        self.max_new_tokens = max_new_tokens
        self._fns: dict[str, StepFn] = dict(BUILTIN_STEPS)
        self._fns["localize"] = lambda s: localize(s, self.max_findings)
        self._fns["sweep"] = lambda s: sweep(s, self.max_findings)
        self._fns["study_report"] = study_report
        self.steps: list[str] = []
        self.set_steps(steps)

    # ---- editing the steps ---------------------------------------------------------------

    def set_steps(self, steps: Sequence[str]) -> DiagnosticWorkflow:
        """Use these steps, in this order (reorders or drops); returns ``self``."""
        unknown = [s for s in steps if s not in self._fns]
        if unknown:
            raise InputError(
                f"Unknown workflow step(s): {', '.join(unknown)}.",
                input=", ".join(unknown),
                fix=f"Use {', '.join(self._fns)}, or add_step() first.",
            )
        if len(set(steps)) != len(steps):
            raise InputError("A workflow step is listed twice.", input=", ".join(steps))
        self.steps = list(steps)
        # a volume runs VOLUME_STEPS unless the caller chose the steps
        self._chosen_steps = tuple(steps) != DEFAULT_STEPS
        return self

    def skip(self, *names: str) -> DiagnosticWorkflow:
        """Leave out these steps; returns ``self``."""
        return self.set_steps([s for s in self.steps if s not in names])

    def add_step(
        self,
        name: str,
        fn: StepFn,
        *,
        after: str | None = None,
        before: str | None = None,
    ) -> DiagnosticWorkflow:
        """Add a step (sync or async ``fn(step: StepContext) -> dict | None``).

        Its return value is stored under ``results[name]`` for later steps. It goes at
        the end unless ``after`` or ``before`` names an existing step. Returns ``self``.
        """
        if name in self._fns and name in self.steps:
            raise InputError(f"Workflow step {name!r} already exists.", input=name)
        self._fns[name] = fn
        anchor = after or before
        if anchor is not None and anchor not in self.steps:
            raise InputError(f"No workflow step {anchor!r} to place {name!r} next to.")
        at = len(self.steps) if anchor is None else self.steps.index(anchor) + bool(after)
        self.steps.insert(at, name)
        self._chosen_steps = True
        return self

    # ---- the graph ----------------------------------------------------------------------

    def _node(self, name: str) -> Callable[..., Any]:
        fn = self._fns[name]

        async def node(state: WorkflowState, runtime: Runtime[WorkflowRun]) -> WorkflowState:
            run = runtime.context
            if state.get("stopped"):
                return {}
            if run.cancel is not None and run.cancel.is_set():
                run.trace.finish(limit_message("cancelled"), stopped="cancelled")
                return {"stopped": "cancelled"}
            if run.deadline is not None and time.perf_counter() >= run.deadline:
                message = limit_message("time_limit", self.time_limit_s or 0)
                run.trace.finish(message, stopped="time_limit")
                return {"stopped": "time_limit"}
            results = dict(state.get("results") or {})
            findings = [dict(f) for f in state.get("findings") or []]
            step = StepContext(
                name=name,
                image=run.image,
                question=run.question,
                context=run.context,
                results=results,
                findings=findings,
                _run=run,
            )
            value = fn(step)
            if inspect.isawaitable(value):
                value = await value
            results[name] = value
            return {"results": results, "findings": step.findings}

        return node

    def build_graph(self, steps: Sequence[str] | None = None) -> Any:
        """The steps (default: :attr:`steps`) as a compiled LangGraph graph (a straight
        line, in order)."""
        graph = StateGraph(WorkflowState, context_schema=WorkflowRun)
        previous = START
        for name in self.steps if steps is None else steps:
            graph.add_node(name, self._node(name))
            graph.add_edge(previous, name)
            previous = name
        graph.add_edge(previous, END)
        return graph.compile(name="medmo_diagnostic_workflow")

    # ---- running ------------------------------------------------------------------------

    async def arun(
        self,
        image: str,
        question: str | None = None,
        *,
        context: Mapping[str, Any] | str | None = None,
        trace: Trace | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
        volume: bool | None = None,
    ) -> Trace:
        """Review one image; return the trace (conclusion in ``trace.conclusion``).

        Args:
            image: Image handle the tools accept (path, ``medmo://`` handle, data URI).
            question: The clinical question; defaults to findings and likely diagnosis.
            context: Clinical context, e.g. ``{"age": 67, "sex": "M", "history": "smoker"}``.
            trace: A trace to record into.
            on_step: Called with each :class:`TraceStep` as it is recorded.
            cancel: Set it to stop the review before its next step
                (``trace.stopped == "cancelled"``; the steps so far are kept).
            volume: Whether ``image`` is a CT/MR volume (default: a local folder or NIfTI
                file is). A volume is swept first, each 3D finding verified on its key
                slice, then reported (:data:`VOLUME_STEPS`), unless other steps were chosen.
        """
        if volume is None:
            volume = looks_like_volume(str(image))
        steps = VOLUME_STEPS if volume and not self._chosen_steps else tuple(self.steps)
        question = (question or DEFAULT_QUESTION).strip()
        ctx = (
            dict(context)
            if isinstance(context, Mapping)
            else ({"context": context} if context else {})
        )
        trace = trace or Trace()
        trace.mode, trace.question, trace.context = "workflow", question, ctx
        trace.image = "<inline image>" if str(image).startswith("data:") else str(image)
        trace.planner, trace.tools_source = "workflow:" + ",".join(steps), self.tools_source
        if on_step is not None:
            trace.on_step(on_step)
        t0 = time.perf_counter()
        run = WorkflowRun(
            trace=trace,
            tools=self.tools,
            image=str(image),
            question=question,
            context=ctx,
            deadline=t0 + self.time_limit_s if self.time_limit_s else None,
            max_new_tokens=self.max_new_tokens,
            cancel=cancel,
        )
        try:
            state = await self.build_graph(steps).ainvoke(
                {"results": {}, "findings": []}, context=run
            )
        except BaseException as exc:
            if trace.final is None:
                trace.finish(f"Stopped: the review failed ({exc}). Steps so far are kept.", "error")
            raise
        if trace.final is None:
            trace.finish(_conclusion(state), stopped=None)
        trace.seconds = round(time.perf_counter() - t0, 4)
        return trace

    def run(self, image: str, question: str | None = None, **kwargs: Any) -> Trace:
        """Sync form of :meth:`arun` (works inside a running event loop too)."""
        from .agent import _run_sync

        return _run_sync(self.arun(image, question, **kwargs))

    def iter_steps(
        self, image: str, question: str | None = None, **kwargs: Any
    ) -> Iterator[TraceStep]:
        """Yield each step as it happens (same arguments as :meth:`run`)."""
        user_cb = kwargs.pop("on_step", None)
        return streaming.iter_steps(
            lambda cb: asyncio.run(self.arun(image, question, on_step=cb, **kwargs)),
            user_cb,
            "medmo-workflow",
        )

    def astream_steps(
        self, image: str, question: str | None = None, **kwargs: Any
    ) -> AsyncIterator[TraceStep]:
        """Async iterator over the steps of a review (same arguments as :meth:`arun`)."""
        user_cb = kwargs.pop("on_step", None)
        return streaming.astream_steps(
            lambda cb: self.arun(image, question, on_step=cb, **kwargs), user_cb
        )


def _conclusion(state: Mapping[str, Any]) -> str:
    results = state.get("results") or {}
    final = results.get("impression")
    if isinstance(final, dict) and final.get("answer"):
        text = final["answer"].strip()
    else:
        rep = results.get("report") if isinstance(results.get("report"), dict) else None
        text = (rep or {}).get("impression") or (rep or {}).get("report") or ""
        text = text.strip() or "No conclusion could be drawn: the steps that conclude failed."
    confirmed = [f["label"] for f in state.get("findings") or [] if f.get("verified")]
    if confirmed:
        text += "\nConfirmed findings: " + ", ".join(confirmed) + "."
    return f"{text}\n{DISCLAIMER}"
