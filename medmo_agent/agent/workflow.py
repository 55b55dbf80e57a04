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
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from ..errors import ConfigError, InputError
from . import streaming
from .middleware import error_tool_message, limit_message, record_tool_message
from .prompts import format_context
from .trace import StepCallback, Trace, TraceStep

__all__ = ["DEFAULT_QUESTION", "DEFAULT_STEPS", "DiagnosticWorkflow", "StepContext"]

DEFAULT_STEPS = ("identify", "localize", "verify", "classify", "report", "impression")
DEFAULT_QUESTION = "What are the findings, and what is the most likely diagnosis?"
DISCLAIMER = "For research use only; not a clinical diagnosis."


class WorkflowState(TypedDict, total=False):
    """What the steps share: each step reads earlier results and adds its own."""

    results: dict[str, Any]
    findings: list[dict[str, Any]]
    stopped: str | None


@dataclass
class _Run:
    trace: Trace
    tools: dict[str, Any]
    image: str
    question: str
    context: dict[str, Any]
    deadline: float | None
    max_new_tokens: int | None
    cancel: threading.Event | None = None


@dataclass
class StepContext:
    """What a workflow step gets: the case, earlier results, and a way to call tools.

    Attributes:
        name: This step's name.
        image: The image handle every tool call uses.
        question: The clinical question.
        context: Clinical context (age, sex, history), de-identified.
        results: Earlier steps' results, by step name (result dicts, or lists of them).
        findings: Findings localised so far (``label``, ``box``, ``verified``, ...).
    """

    name: str
    image: str
    question: str
    context: dict[str, Any]
    results: dict[str, Any]
    findings: list[dict[str, Any]]
    _run: _Run = field(repr=False)

    async def call(
        self, tool: str, /, *, boxes: Sequence[Any] | None = None, **arguments: Any
    ) -> dict[str, Any] | None:
        """Call a tool by name and record the call and result in the trace.

        Args:
            tool: Tool name (``vqa``, ``ground``, ...).
            boxes: Boxes this call is about, shown on the result step (the result's own
                boxes otherwise).
            **arguments: The tool's arguments.

        Returns:
            The result as a dict (the result model's fields), or ``None`` when the tool
            failed; the failure (with its fix) is in the trace.
        """
        run = self._run
        if run.max_new_tokens is not None and "max_new_tokens" not in arguments:
            spec = run.tools.get(tool)
            if spec is not None and "max_new_tokens" in (spec.args or {}):
                arguments["max_new_tokens"] = run.max_new_tokens
        arguments = {k: v for k, v in arguments.items() if v is not None}
        call = {"type": "tool_call", "name": tool, "args": arguments, "id": _call_id()}
        run.trace.add(
            "tool_call",
            tool=tool,
            call_id=call["id"],
            arguments=arguments,
            image=self.image,
            workflow_step=self.name,
        )
        t0 = time.perf_counter()
        lc_tool = run.tools.get(tool)
        try:
            if lc_tool is None:
                raise ConfigError(
                    f"No tool named {tool!r} is available to the workflow.",
                    input=tool,
                    fix=f"Offer one of: {', '.join(sorted(run.tools))}, or skip this step.",
                )
            message = await lc_tool.ainvoke(call)
        except GraphBubbleUp:
            raise
        except Exception as exc:  # a failed step is recorded; the review goes on
            message = error_tool_message(call, exc)
        if not isinstance(message, ToolMessage):
            message = ToolMessage(content=str(message), tool_call_id=call["id"], name=tool)
        record_tool_message(
            run.trace, call, message, time.perf_counter() - t0, self.name, boxes=boxes
        )
        step = run.trace.steps[-1]
        return None if step.status == "error" else (step.result or {"text": step.text})

    def note(self, text: str) -> None:
        """Record a remark as a ``thought`` step."""
        self._run.trace.add("thought", text=text, workflow_step=self.name)


#: What a step returns into ``results[name]``: one tool result, or one per finding.
StepOutput = dict[str, Any] | list[dict[str, Any] | None] | None
StepFn = Callable[[StepContext], Awaitable[StepOutput] | StepOutput]


def _call_id() -> str:
    return "wf_" + uuid.uuid4().hex[:10]


# ---- the built-in steps -----------------------------------------------------------------


async def identify(step: StepContext) -> dict[str, Any] | None:
    """Modality, body region and view (vqa)."""
    return await step.call(
        "vqa",
        image=step.image,
        question="What imaging modality, body region and view is this image? Answer briefly.",
    )


async def localize(step: StepContext, max_findings: int = 5) -> dict[str, Any] | None:
    """Every visible abnormality, with boxes (ground); keeps at most ``max_findings``."""
    result = await step.call("ground", image=step.image)
    boxes = (result or {}).get("boxes") or []
    if len(boxes) > max_findings:
        step.note(f"{len(boxes)} findings localised; verifying the first {max_findings}.")
    for box in boxes[:max_findings]:
        step.findings.append({"label": box.get("label") or "finding", "box": box})
    if result is not None and not boxes:
        step.note("No abnormality was localised.")
    return result


async def verify(step: StepContext) -> list[dict[str, Any] | None]:
    """A focused yes/no question about each localised finding, with its box (vqa)."""
    out = []
    for finding in step.findings:
        b = finding["box"]
        where = f"[{b['x1']:.0f}, {b['y1']:.0f}, {b['x2']:.0f}, {b['y2']:.0f}]"
        question = (
            f"Is there {finding['label']} in the region {where} (x1, y1, x2, y2 in pixels) "
            "of this image? Answer yes or no."
        )
        result = await step.call(
            "vqa", boxes=_box_list(b), image=step.image, question=question, question_type="closed"
        )
        finding["verified"] = (result or {}).get("yes_no")
        finding["answer"] = (result or {}).get("answer")
        out.append(result)
    if not step.findings:
        step.note("Nothing to verify.")
    return out


def _box_list(box: dict[str, Any]) -> list[Any]:
    from ..types import Box

    try:
        return [Box.model_validate(box)]
    except Exception:
        return []


async def classify(step: StepContext) -> dict[str, Any] | None:
    """Disease labels (classify)."""
    return await step.call("classify", image=step.image)


async def report(step: StepContext) -> dict[str, Any] | None:
    """A report with findings and impression, given the clinical context (report)."""
    return await step.call("report", image=step.image, context=format_context(step.context) or None)


def _summary(step: StepContext) -> str:
    r = step.results
    lines = []
    if r.get("identify"):
        lines.append(f"Image: {r['identify'].get('answer', '')}".strip())
    for f in step.findings:
        status = {True: "confirmed", False: "not confirmed", None: "unverified"}[f.get("verified")]
        b = f["box"]
        lines.append(
            f"Finding: {f['label']} at [{b['x1']:.0f}, {b['y1']:.0f}, {b['x2']:.0f}, "
            f"{b['y2']:.0f}] ({status})"
        )
    if r.get("classify"):
        labels = r["classify"].get("labels") or []
        lines.append("Labels: " + (", ".join(labels) or "none"))
    if r.get("report"):
        rep = r["report"]
        text = rep.get("impression") or rep.get("findings") or rep.get("report") or ""
        if text:
            lines.append(f"Report impression: {text}")
    return "\n".join(lines)


async def impression(step: StepContext) -> dict[str, Any] | None:
    """The reasoned answer with a differential diagnosis and uncertainty (reason)."""
    ctx = format_context(step.context)
    prior = _summary(step)
    question = (
        f"{step.question}\nGive the most likely diagnosis, a short differential diagnosis, "
        "and how certain you are."
    )
    context = "\n".join(x for x in (ctx, f"Earlier findings:\n{prior}" if prior else "") if x)
    return await step.call("reason", image=step.image, question=question, context=context or None)


BUILTIN_STEPS: dict[str, StepFn] = {
    "identify": identify,
    "localize": localize,
    "verify": verify,
    "classify": classify,
    "report": report,
    "impression": impression,
}


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
        return self

    # ---- the graph ----------------------------------------------------------------------

    def _node(self, name: str) -> Callable[..., Any]:
        fn = self._fns[name]

        async def node(state: WorkflowState, runtime: Runtime[_Run]) -> WorkflowState:
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

    def build_graph(self) -> Any:
        """The steps as a compiled LangGraph graph (a straight line, in order)."""
        graph = StateGraph(WorkflowState, context_schema=_Run)
        previous = START
        for name in self.steps:
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
        """
        question = (question or DEFAULT_QUESTION).strip()
        ctx = (
            dict(context)
            if isinstance(context, Mapping)
            else ({"context": context} if context else {})
        )
        trace = trace or Trace()
        trace.mode, trace.question, trace.context = "workflow", question, ctx
        trace.image = "<inline image>" if str(image).startswith("data:") else str(image)
        trace.planner, trace.tools_source = "workflow:" + ",".join(self.steps), self.tools_source
        if on_step is not None:
            trace.on_step(on_step)
        t0 = time.perf_counter()
        run = _Run(
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
            state = await self.build_graph().ainvoke({"results": {}, "findings": []}, context=run)
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
