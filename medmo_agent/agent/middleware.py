"""Agent middleware: trace recording, failure handling and run limits.

One :class:`MedmoAgentMiddleware` sits around every model and tool call of a
``create_agent`` graph and

- records each step into the run's :class:`~medmo_agent.agent.trace.Trace` (thoughts,
  tool calls with arguments, tool results with their result model and boxes, timings and
  tokens) as it happens;
- turns tool failures into observations the planner can act on (a ``MedmoError`` becomes
  its message and fix; an unexpected exception its type and message);
- asks the planner once more when its tool call could not be parsed;
- stops the run with a clear final message when it has taken ``max_steps`` planner turns
  or run past ``time_limit_s``; the partial trace is kept.

The per-run trace and deadline travel in :class:`RunContext`, the graph's runtime context.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain.agents.middleware.types import hook_config
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphBubbleUp

from ..errors import MedmoError
from ..types import Box
from .tools import format_tool_error
from .trace import StepKind, Trace, boxes_of

__all__ = ["MedmoAgentMiddleware", "RunContext", "limit_message", "record_tool_message"]


@dataclass
class RunContext:
    """What one agent run carries besides its messages.

    Attributes:
        trace: Where steps are recorded (and streamed from, via ``trace.on_step``).
        max_steps: Planner turns allowed before the run is stopped.
        time_limit_s: Wall-clock seconds allowed before the run is stopped.
        started: ``time.perf_counter()`` at the start of the run.
        cancel: Set it to stop the run before the next planner turn.
    """

    trace: Trace | None = None
    max_steps: int | None = None
    time_limit_s: float | None = None
    started: float = field(default_factory=time.perf_counter)
    model_turns: int = 0
    cancel: threading.Event | None = None


def limit_message(kind: str, value: float = 0) -> str:
    """The final message of a run stopped by a limit (or cancelled)."""
    if kind == "cancelled":
        return (
            "Stopped: the run was cancelled before a conclusion. No diagnosis is given; "
            "the steps taken so far are kept in the trace."
        )
    if kind == "step_limit":
        what = f"the step limit ({int(value)} planner turns)"
        fix = "raise --max-steps"
    else:
        what = f"the time limit ({value:g} s)"
        fix = "raise --time-limit"
    return (
        f"Stopped: {what} was reached before a conclusion. No diagnosis is given; the "
        f"steps taken so far are kept in the trace. To continue, {fix} or ask a narrower "
        "question."
    )


_RETRY_PROMPT = (
    "Your tool call could not be read ({error}). Reply again with each call as "
    '<tool_call>\n{{"name": <tool-name>, "arguments": {{...}}}}\n</tool_call> using valid '
    "JSON, or give your final answer without a tool call."
)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for block in content or []:
        if isinstance(block, str):
            out.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            out.append(str(block.get("text", "")))
    return "".join(out)


def _tokens(message: AIMessage) -> tuple[int, int]:
    usage = getattr(message, "usage_metadata", None) or {}
    return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))


def _image_handle(args: dict[str, Any]) -> str | None:
    value = args.get("image")
    return value if isinstance(value, str) and not value.startswith("data:") else None


class MedmoAgentMiddleware(AgentMiddleware):
    """Trace recording, tool-error observations, malformed-call retry and run limits.

    Args:
        max_steps: Default planner-turn limit when the run context sets none.
        time_limit_s: Default time limit when the run context sets none.
        parse_retries: How many times to ask again after an unreadable tool call.
    """

    def __init__(
        self,
        *,
        max_steps: int = 12,
        time_limit_s: float = 600.0,
        parse_retries: int = 1,
    ) -> None:
        super().__init__()
        self.max_steps = max_steps
        self.time_limit_s = time_limit_s
        self.parse_retries = parse_retries

    # ---- context -----------------------------------------------------------------------

    @staticmethod
    def _ctx(runtime: Any) -> RunContext:
        ctx = getattr(runtime, "context", None)
        return ctx if isinstance(ctx, RunContext) else RunContext()

    def _limit(self, ctx: RunContext) -> tuple[str, float] | None:
        max_steps = ctx.max_steps or self.max_steps
        time_limit = ctx.time_limit_s or self.time_limit_s
        if ctx.cancel is not None and ctx.cancel.is_set():
            return "cancelled", 0
        if ctx.model_turns >= max_steps:
            return "step_limit", max_steps
        if time.perf_counter() - ctx.started >= time_limit:
            return "time_limit", time_limit
        return None

    # ---- limits ------------------------------------------------------------------------

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Stop the run (jump to the end with a final message) once a limit is hit or
        the run is cancelled."""
        ctx = self._ctx(runtime)
        if getattr(runtime, "context", None) is None:
            # No per-run context: count this run's planner turns from the messages.
            turns = 0
            for m in reversed(state["messages"]):
                if isinstance(m, HumanMessage):
                    break
                turns += isinstance(m, AIMessage)
            ctx.model_turns = turns
        hit = self._limit(ctx)
        if hit is None:
            return None
        message = limit_message(*hit)
        if ctx.trace is not None:
            ctx.trace.finish(message, stopped=hit[0])
        return {"jump_to": "end", "messages": [AIMessage(content=message)]}

    @hook_config(can_jump_to=["end"])
    async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Async form of :meth:`before_model`."""
        return self.before_model(state, runtime)

    # ---- model calls -------------------------------------------------------------------

    def _record_model(self, ctx: RunContext, ai: AIMessage, seconds: float) -> None:
        ctx.model_turns += 1
        trace = ctx.trace
        if trace is None:
            return
        prompt, completion = _tokens(ai)
        text = _text(ai.content).strip()
        calls = list(ai.tool_calls or [])
        if text or not calls:
            kind: StepKind = "thought" if calls else "final"
            if kind == "final":
                if not text:
                    text = "Stopped: the planner ended without a conclusion."
                    trace.stopped = "no_conclusion"
                trace.conclusion = text
                trace.seconds = round(time.perf_counter() - ctx.started, 4)
            trace.add(
                kind,
                text=text,
                seconds=round(seconds, 4),
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
            prompt = completion = 0  # counted once per turn
        for call in calls:
            trace.add(
                "tool_call",
                tool=call["name"],
                call_id=call.get("id"),
                arguments=call.get("args") or {},
                image=_image_handle(call.get("args") or {}),
                seconds=round(seconds, 4) if not text else 0.0,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
            prompt = completion = 0

    def _bad_calls(self, ai: AIMessage) -> str | None:
        if ai.tool_calls or not getattr(ai, "invalid_tool_calls", None):
            return None
        errors = [c.get("error") for c in ai.invalid_tool_calls if c.get("error")]
        errors += [e.get("error") for e in ai.response_metadata.get("tool_call_errors", [])]
        return "; ".join(dict.fromkeys(e for e in errors if e)) or "malformed call"

    def _retry_request(self, request: ModelRequest, ai: AIMessage, error: str) -> ModelRequest:
        note = HumanMessage(content=_RETRY_PROMPT.format(error=error))
        return request.override(messages=[*request.messages, ai, note])

    def _note_retry(self, ctx: RunContext, ai: AIMessage, error: str) -> None:
        if ctx.trace is not None:
            raw = ai.response_metadata.get("raw_text") or _text(ai.content)
            ctx.trace.add(
                "thought",
                status="error",
                text=f"Unreadable tool call ({error}); asking again.\n{raw}",
                error={"error": "MalformedToolCall", "message": error},
            )

    @staticmethod
    def _ai(response: Any) -> AIMessage | None:
        if isinstance(response, AIMessage):
            return response
        for m in getattr(response, "result", []) or []:
            if isinstance(m, AIMessage):
                return m
        return None

    def wrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        """Time the planner turn, retry an unreadable tool call, record the step."""
        ctx = self._ctx(request.runtime)
        t0 = time.perf_counter()
        response = handler(request)
        for _ in range(self.parse_retries):
            ai = self._ai(response)
            error = self._bad_calls(ai) if ai is not None else None
            if ai is None or error is None:
                break
            self._note_retry(ctx, ai, error)
            response = handler(self._retry_request(request, ai, error))
        ai = self._ai(response)
        if ai is not None:
            self._record_model(ctx, ai, time.perf_counter() - t0)
        return response

    async def awrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        """Async form of :meth:`wrap_model_call`."""
        ctx = self._ctx(request.runtime)
        t0 = time.perf_counter()
        response = await handler(request)
        for _ in range(self.parse_retries):
            ai = self._ai(response)
            error = self._bad_calls(ai) if ai is not None else None
            if ai is None or error is None:
                break
            self._note_retry(ctx, ai, error)
            response = await handler(self._retry_request(request, ai, error))
        ai = self._ai(response)
        if ai is not None:
            self._record_model(ctx, ai, time.perf_counter() - t0)
        return response

    # ---- tool calls --------------------------------------------------------------------

    @staticmethod
    def _error_message(request: Any, exc: BaseException) -> ToolMessage:
        return error_tool_message(request.tool_call, exc)

    def _record_tool(self, request: Any, message: Any, seconds: float) -> None:
        ctx = self._ctx(request.runtime)
        if ctx.trace is not None and isinstance(message, ToolMessage):
            call = request.tool_call
            record_tool_message(ctx.trace, call, message, seconds)

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        """Run the tool; any failure becomes an observation; record the result."""
        t0 = time.perf_counter()
        try:
            message = handler(request)
        except GraphBubbleUp:  # interrupts and graph control flow are not failures
            raise
        except Exception as exc:  # the planner reads what went wrong and can try again
            message = self._error_message(request, exc)
        self._record_tool(request, message, time.perf_counter() - t0)
        return message

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        """Async form of :meth:`wrap_tool_call`."""
        t0 = time.perf_counter()
        try:
            message = await handler(request)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            message = self._error_message(request, exc)
        self._record_tool(request, message, time.perf_counter() - t0)
        return message


def error_tool_message(call: dict[str, Any], exc: BaseException) -> ToolMessage:
    """A failed call as the observation the planner reads (message and fix)."""
    return ToolMessage(
        content=format_tool_error(exc),
        tool_call_id=call.get("id") or "",
        name=call["name"],
        status="error",
        artifact={"error": exc.to_dict()} if isinstance(exc, MedmoError) else None,
    )


def record_tool_message(
    trace: Trace,
    call: dict[str, Any],
    message: ToolMessage,
    seconds: float,
    workflow_step: str | None = None,
    boxes: Sequence[Box] | None = None,
) -> None:
    """Record a tool's answer (result model or MCP structured output, or error) as a step.

    ``boxes`` overrides the boxes shown on the step (e.g. the finding a check is about).
    """
    artifact = message.artifact
    result: dict[str, Any] | None = None
    result_type = None
    error = None
    if hasattr(artifact, "model_dump"):
        result = artifact.model_dump(mode="json")
        result_type = type(artifact).__name__
    elif isinstance(artifact, dict) and isinstance(artifact.get("structured_content"), dict):
        result = artifact["structured_content"]  # an MCP tool's structured output
    elif isinstance(artifact, dict) and "error" in artifact:
        error = artifact["error"]
    text = _text(message.content).strip()
    if message.status == "error" and error is None:
        kind = re.match(r"(?:Error \((\w+)\)|(\w+(?:Error|Exception))\b)", text)
        name = (kind.group(1) or kind.group(2)) if kind else "ToolError"
        error = {"error": name, "message": text}
    usage = (result or {}).get("usage") or {}
    args = call.get("args") or {}
    image = ((result or {}).get("image") or {}).get("handle") or _image_handle(args)
    trace.add(
        "tool_result",
        tool=call["name"],
        call_id=call.get("id"),
        text=text,
        result=result,
        result_type=result_type,
        boxes=list(boxes) if boxes else boxes_of(result or {}),
        image=image,
        status="error" if message.status == "error" else "ok",
        error=error,
        seconds=round(seconds, 4),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        workflow_step=workflow_step,
    )
