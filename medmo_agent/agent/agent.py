"""The planning agent: a LangChain ``create_agent`` graph over MedMO's tools, with a trace.

The planner is any LangChain chat model: by default :class:`ChatMedMO` on the same local
backend as the tools (no external LLM, no API key), or e.g. ``ChatOpenAI`` pointed at
vLLM or a hosted model. The tools are the in-process toolkit's, or those of any MCP server
(see :func:`medmo_agent.agent.mcp.mcp_tools`).

Example::

    agent = create_medmo_agent(toolkit=Toolkit())
    trace = agent.run("chest.png", "Is there a pneumothorax?", on_step=print)
    print(trace.conclusion)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import HumanMessage

from ..errors import MedmoError
from . import streaming
from .middleware import MedmoAgentMiddleware, RunContext
from .planner_errors import planner_error
from .prompts import SYSTEM_PROMPT, user_prompt
from .trace import StepCallback, Trace, TraceStep

__all__ = ["MedmoAgent", "create_medmo_agent"]


class MedmoAgent:
    """A ready agent: the LangGraph graph plus run helpers that keep a :class:`Trace`.

    Use :meth:`run` (or :meth:`arun`) for a whole run, :meth:`iter_steps` (or
    :meth:`astream_steps`) to consume steps as they happen, or ``agent.graph`` directly
    as any LangChain agent.

    Attributes:
        graph: The compiled ``create_agent`` graph.
        model: The planner chat model.
        tools: The LangChain tools offered to the planner.
        tools_source: ``"in-process"`` or ``"mcp:<target>"``, recorded in traces.
        max_steps: Planner turns allowed per run.
        time_limit_s: Seconds allowed per run.
    """

    def __init__(
        self,
        graph: Any,
        model: Any,
        tools: Sequence[Any],
        *,
        tools_source: str,
        max_steps: int,
        time_limit_s: float,
    ) -> None:
        self.graph = graph
        self.model = model
        self.tools = list(tools)
        self.tools_source = tools_source
        self.max_steps = max_steps
        self.time_limit_s = time_limit_s

    # ---- runs --------------------------------------------------------------------------

    def _start(
        self,
        image: str,
        question: str,
        context: Mapping[str, Any] | str | None,
        trace: Trace | None,
        on_step: StepCallback | None,
        cancel: threading.Event | None = None,
    ) -> tuple[dict[str, Any], RunContext, Trace]:
        if not isinstance(question, str) or not question.strip():
            from ..errors import InputError

            raise InputError(
                "The clinical question is empty.",
                input="question",
                fix="Ask a question, e.g. 'Is there a pneumothorax?'.",
            )
        ctx_dict = (
            dict(context)
            if isinstance(context, Mapping)
            else ({"context": context} if context else {})
        )
        trace = trace or Trace()
        trace.mode = "agent"
        trace.question = question
        trace.image = image if not str(image).startswith("data:") else "<inline image>"
        trace.context = ctx_dict
        trace.planner = _model_name(self.model)
        trace.tools_source = self.tools_source
        if on_step is not None:
            trace.on_step(on_step)
        run_ctx = RunContext(
            trace=trace, max_steps=self.max_steps, time_limit_s=self.time_limit_s, cancel=cancel
        )
        inputs = {"messages": [HumanMessage(content=user_prompt(image, question, context))]}
        return inputs, run_ctx, trace

    def _config(self) -> dict[str, Any]:
        # Each planner turn is at most a few graph steps; leave LangGraph's own recursion
        # guard well above our step limit so ours, with its clear message, fires first.
        return {"recursion_limit": max(50, 4 * self.max_steps + 10)}

    @staticmethod
    def _fail(trace: Trace, exc: BaseException) -> None:
        if trace.final is None:
            what = str(exc) if isinstance(exc, MedmoError) else f"{type(exc).__name__}: {exc}"
            trace.finish(f"Stopped: the run failed ({what}). Steps so far are kept.", "error")

    def run(
        self,
        image: str,
        question: str,
        *,
        context: Mapping[str, Any] | str | None = None,
        trace: Trace | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Trace:
        """Run the agent on one image and question; return the finished trace.

        Args:
            image: Image handle for the tools: a path, ``medmo://`` handle or URL the
                tools accept.
            question: The clinical question.
            context: Clinical context (e.g. ``{"age": 67, "sex": "M", "history": ...}``),
                de-identified.
            trace: A trace to record into (e.g. one a notebook widget already watches).
            on_step: Called with each :class:`TraceStep` as it is recorded.
            cancel: Set it to stop the run before the next planner turn
                (``trace.stopped == "cancelled"``; the steps so far are kept).

        Returns:
            The trace; ``trace.conclusion`` holds the answer, ``trace.stopped`` says why a
            run ended early. A planner failure ends the run with ``stopped="error"`` and
            the partial trace; a ``MedmoError`` is not raised again.
        """
        if _async_only(self.tools):
            return _run_sync(
                self.arun(
                    image, question, context=context, trace=trace, on_step=on_step, cancel=cancel
                )
            )
        inputs, run_ctx, trace = self._start(image, question, context, trace, on_step, cancel)
        try:
            self.graph.invoke(inputs, config=self._config(), context=run_ctx)
        except MedmoError as exc:
            self._fail(trace, exc)
        except BaseException as exc:
            translated = planner_error(exc)
            self._fail(trace, translated or exc)
            if translated is None:
                raise
        return _finalise(trace, run_ctx)

    async def arun(
        self,
        image: str,
        question: str,
        *,
        context: Mapping[str, Any] | str | None = None,
        trace: Trace | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Trace:
        """Async form of :meth:`run` (needed for MCP tools, which are async-only)."""
        inputs, run_ctx, trace = self._start(image, question, context, trace, on_step, cancel)
        try:
            await self.graph.ainvoke(inputs, config=self._config(), context=run_ctx)
        except MedmoError as exc:
            self._fail(trace, exc)
        except BaseException as exc:
            translated = planner_error(exc)
            self._fail(trace, translated or exc)
            if translated is None:
                raise
        return _finalise(trace, run_ctx)

    def iter_steps(self, image: str, question: str, **kwargs: Any) -> Iterator[TraceStep]:
        """Yield each step as it happens (the run goes on in a worker thread).

        Takes the same arguments as :meth:`run`; the last step yielded is the final one.
        """
        user_cb = kwargs.pop("on_step", None)
        return streaming.iter_steps(
            lambda cb: self.run(image, question, on_step=cb, **kwargs), user_cb, "medmo-agent-run"
        )

    def astream_steps(self, image: str, question: str, **kwargs: Any) -> AsyncIterator[TraceStep]:
        """Async iterator over the steps of a run (same arguments as :meth:`run`)."""
        user_cb = kwargs.pop("on_step", None)
        return streaming.astream_steps(
            lambda cb: self.arun(image, question, on_step=cb, **kwargs), user_cb
        )


def _finalise(trace: Trace, ctx: RunContext) -> Trace:
    if trace.final is None:  # the graph ended without a final planner turn
        trace.finish(trace.conclusion or "", stopped=None if trace.conclusion else "error")
    trace.seconds = round(time.perf_counter() - ctx.started, 4)
    return trace


def _model_name(model: Any) -> str:
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    backend = getattr(model, "backend", None)
    if backend is not None and getattr(backend, "model_id", None):
        return f"medmo:{backend.model_id}"
    return type(model).__name__


def _async_only(tools: Sequence[Any]) -> bool:
    return any(getattr(t, "func", None) is None and getattr(t, "coroutine", None) for t in tools)


def _run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even under a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def create_medmo_agent(
    model: Any = None,
    tools: Sequence[Any] | None = None,
    *,
    toolkit: Any = None,
    backend: Any = None,
    settings: Any = None,
    system_prompt: str = SYSTEM_PROMPT,
    max_steps: int = 12,
    time_limit_s: float = 600.0,
    parse_retries: int = 1,
    middleware: Sequence[Any] = (),
    tools_source: str | None = None,
    on_text: Any = None,
) -> MedmoAgent:
    """Build the diagnostic agent.

    Args:
        model: The planner: any LangChain chat model that supports ``bind_tools``.
            Defaults to :class:`ChatMedMO` on the toolkit's backend (MedMO plans its own
            tool use; no external LLM or key needed).
        tools: LangChain tools to offer; defaults to the toolkit's tools in-process. Pass
            the tools of an MCP server (:func:`medmo_agent.agent.mcp.mcp_tools`) to work
            against a remote MedMO.
        toolkit: The in-process :class:`~medmo_agent.toolkit.Toolkit`; built from
            ``backend``/``settings`` when needed.
        backend: Backend for a toolkit built here.
        settings: Settings for a toolkit built here.
        system_prompt: The planner's instructions; defaults to the clinical protocol
            (look, localise, verify, conclude, state uncertainty).
        max_steps: Planner turns allowed per run before it is stopped.
        time_limit_s: Seconds allowed per run before it is stopped (checked between steps).
        parse_retries: Extra planner turns allowed to repair an unreadable tool call.
        middleware: Further LangChain agent middleware, run inside the tracing one.
        tools_source: Label for traces; defaults to ``"in-process"`` or ``"mcp"``.
        on_text: Called with each piece of text generated inside in-process tools.
    """
    if toolkit is None and (tools is None or model is None):
        from ..toolkit import Toolkit

        toolkit = Toolkit(backend=backend, settings=settings)
    if tools is None:
        from .tools import toolkit_tools

        tools = toolkit_tools(toolkit, on_text=on_text)
        tools_source = tools_source or "in-process"
    if model is None:
        from .chat_model import ChatMedMO

        model = ChatMedMO(backend=toolkit.backend, toolkit=toolkit)
    if tools_source is None:
        tools_source = "mcp" if _async_only(tools) else "custom"
    core = MedmoAgentMiddleware(
        max_steps=max_steps, time_limit_s=time_limit_s, parse_retries=parse_retries
    )
    graph = create_agent(
        model,
        list(tools),
        system_prompt=system_prompt,
        middleware=[core, *middleware],
        context_schema=RunContext,
        name="medmo_agent",
    )
    return MedmoAgent(
        graph,
        model,
        tools,
        tools_source=tools_source,
        max_steps=max_steps,
        time_limit_s=time_limit_s,
    )
