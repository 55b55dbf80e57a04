"""``medmo agent IMAGE "question"``: step-by-step diagnostic reasoning from the shell.

Steps stream to the terminal as they happen; the conclusion comes last. This module
imports nothing heavy at import time (``medmo --help`` imports it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_agent_arguments", "format_step", "run_agent"]

EXIT_OK = 0
EXIT_STOPPED = 1


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``medmo agent`` arguments to ``parser``."""
    parser.add_argument("image", help="image path, DICOM series folder, NIfTI volume, or handle")
    parser.add_argument(
        "question",
        nargs="?",
        default=None,
        help="the clinical question (default: findings and most likely diagnosis)",
    )
    parser.add_argument(
        "--workflow",
        action="store_true",
        help="run the fixed review (identify, localise, verify, classify, report, impression) "
        "instead of a planning agent",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="STEP",
        help="with --workflow: leave out a step (repeatable)",
    )
    g = parser.add_argument_group("planner")
    g.add_argument(
        "--planner",
        choices=["medmo", "openai"],
        default="medmo",
        help="who plans the tool calls: MedMO itself (default, no API key) or an "
        "OpenAI-compatible chat model",
    )
    g.add_argument("--base-url", help="OpenAI-compatible planner URL, e.g. http://host:8000/v1")
    g.add_argument("--planner-model", help="planner model name on that server")
    g.add_argument("--api-key", help="planner API key (default: OPENAI_API_KEY)")
    g.add_argument("--max-steps", type=int, default=12, help="planner turns allowed (12)")
    g.add_argument("--time-limit", type=float, default=600.0, help="seconds allowed (600)")
    g = parser.add_argument_group("tools")
    g.add_argument(
        "--mcp",
        metavar="URL|COMMAND",
        help="use the tools of an MCP server: an http(s) URL, or a command that starts one "
        "over stdio (e.g. 'python -m mcp_server --model ...'); default: in-process",
    )
    g.add_argument("--model", help="MedMO hub id or local checkpoint (in-process tools)")
    g.add_argument("--backend", choices=["transformers", "openai", "scripted"])
    g.add_argument("--device", help="cuda, cuda:1 or cpu (default: auto)")
    g.add_argument(
        "--max-new-tokens",
        type=int,
        help="cap on tokens per model call (tools, and the planner with either --planner)",
    )
    g = parser.add_argument_group("case")
    g.add_argument("--age", help="patient age (de-identified context)")
    g.add_argument("--sex", help="patient sex")
    g.add_argument("--history", help="short clinical history; no names or record numbers")
    g = parser.add_argument_group("output")
    g.add_argument("--trace", type=Path, metavar="OUT.json", help="write the trace as JSON")
    g.add_argument("--html", type=Path, metavar="OUT.html", help="write the trace as HTML")
    g.add_argument("--markdown", type=Path, metavar="OUT.md", help="write the trace as Markdown")
    g.add_argument("--quiet", action="store_true", help="print only the conclusion")


def format_step(step: Any) -> str:
    """One step as terminal text."""
    where = f" [{step.workflow_step}]" if getattr(step, "workflow_step", None) else ""
    if step.kind == "tool_call":
        import json

        args = json.dumps(step.arguments, ensure_ascii=False)
        return f"{step.number:>3}. -> {step.tool}{where} {args}"
    if step.kind == "tool_result":
        mark = "!!" if step.status == "error" else "<-"
        text = step.text.strip().replace("\n", "\n       ")
        return f"{step.number:>3}. {mark} {step.tool}{where} ({step.seconds:.1f} s)\n       {text}"
    if step.kind == "thought":
        return f"{step.number:>3}. .. {step.text.strip()}"
    return f"{step.number:>3}. == conclusion"


def _context(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("age", "sex", "history") if getattr(args, k)}


def _settings(args: argparse.Namespace) -> Any:
    from ..config import Settings

    return Settings.from_env(
        model=args.model,
        backend=args.backend,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
    )


def _planner(args: argparse.Namespace) -> Any:
    if args.planner != "openai":
        return None
    from ..errors import ConfigError

    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise ConfigError(
            "--planner openai needs langchain-openai.",
            input="--planner",
            fix="pip install 'medmo-agent[openai]'",
        ) from exc
    if not args.base_url and not (args.api_key or os.environ.get("OPENAI_API_KEY")):
        raise ConfigError(
            "--planner openai needs a server or a key.",
            input="--planner",
            fix="Pass --base-url http://host:8000/v1 (vLLM, SGLang) or set OPENAI_API_KEY.",
        )
    return ChatOpenAI(
        model=args.planner_model or "gpt-4o-mini",
        base_url=args.base_url,
        api_key=args.api_key or os.environ.get("OPENAI_API_KEY") or "none",
        temperature=0,
        # as for the MedMO planner, whose backend applies --max-new-tokens; without it
        # the server's default length applies (1024 tokens for ``transformers serve``)
        max_tokens=args.max_new_tokens,
    )


async def _run(args: argparse.Namespace, on_step: Any) -> Any:
    from .agent import create_medmo_agent
    from .workflow import DEFAULT_STEPS, DiagnosticWorkflow

    context = _context(args)

    async def go(tools: Any, toolkit: Any, source: str | None) -> Any:
        if args.workflow:
            wf = DiagnosticWorkflow(
                tools,
                toolkit=toolkit,
                steps=[s for s in DEFAULT_STEPS if s not in set(args.skip)],
                time_limit_s=args.time_limit,
                tools_source=source,
            )
            return await wf.arun(args.image, args.question, context=context, on_step=on_step)
        planner = _planner(args)
        if planner is None and tools is not None and toolkit is None:
            from ..toolkit import Toolkit

            toolkit = Toolkit(settings=_settings(args))  # MedMO plans locally, tools remote
        agent = create_medmo_agent(
            planner,
            tools,
            toolkit=toolkit,
            max_steps=args.max_steps,
            time_limit_s=args.time_limit,
            tools_source=source,
        )
        question = args.question or "What are the findings, and what is the most likely diagnosis?"
        return await agent.arun(args.image, question, context=context, on_step=on_step)

    if args.mcp:
        from .mcp import describe_target, mcp_tools

        async with mcp_tools(args.mcp) as tools:
            return await go(tools, None, describe_target(args.mcp))
    from ..toolkit import Toolkit

    return await go(None, Toolkit(settings=_settings(args)), "in-process")


def run_agent(args: argparse.Namespace) -> int:
    """Run ``medmo agent``; returns the exit status (1 when the run stopped early).

    ``MedmoError`` propagates to the ``medmo`` command, which prints it in one line.
    """

    def on_step(step: Any) -> None:
        if not args.quiet and step.kind != "final":
            sys.stdout.write(format_step(step) + "\n")
            sys.stdout.flush()

    trace = asyncio.run(_run(args, on_step))
    if args.trace:
        trace.save(args.trace)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(trace.to_markdown(), encoding="utf-8")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(trace.to_html(), encoding="utf-8")
    sys.stdout.write(("\n" if not args.quiet else "") + (trace.conclusion or "") + "\n")
    if trace.stopped:
        sys.stderr.write(f"medmo agent: stopped early ({trace.stopped})\n")
        return EXIT_STOPPED
    for path in (args.trace, args.markdown, args.html):
        if path:
            sys.stderr.write(f"trace written to {path}\n")
    return EXIT_OK
