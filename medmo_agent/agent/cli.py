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

from ..cli_options import add_settings_options, add_view_options, settings_values

__all__ = ["add_agent_arguments", "format_step", "run_agent"]

EXIT_OK = 0
EXIT_STOPPED = 1
EXIT_FAILED = 1

_IMAGE_OPTIONS = ("window", "slice", "frame", "plane")

#: The settings ``medmo agent`` takes as options, and what each means here: they
#: configure MedMO for the in-process tools and the MedMO planner, not an OpenAI planner.
MODEL_SETTINGS = ("model", "backend", "base_url", "device", "max_new_tokens")
_MODEL_HELP = {
    "model": "MedMO hub id or local checkpoint, for in-process tools and the MedMO planner",
    "backend": "where in-process MedMO answers come from: transformers (local) or openai "
    "(a vLLM/SGLang server at --base-url)",
    "base_url": "with --backend openai: the OpenAI-compatible server serving MedMO to the "
    "tools and the MedMO planner, e.g. http://gpu-host:8000/v1 (an OpenAI planner's "
    "server is --planner-base-url)",
    "max_new_tokens": "cap on tokens per model call (tools, and the planner with either --planner)",
}


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
    g = parser.add_argument_group(
        "planner", "who decides which tool to call next (not used with --workflow)"
    )
    g.add_argument(
        "--planner",
        choices=["medmo", "openai"],
        default="medmo",
        help="MedMO itself through the tools' backend (default, no API key), or a chat model "
        "on an OpenAI-compatible server (--planner-base-url, --planner-model)",
    )
    g.add_argument(
        "--planner-base-url",
        metavar="URL",
        help="with --planner openai: the planner's server, e.g. http://host:8000/v1 "
        "(default: OpenAI's API, with OPENAI_API_KEY)",
    )
    g.add_argument(
        "--planner-model",
        metavar="NAME",
        help="with --planner openai: the model name that server serves (default: gpt-4o-mini)",
    )
    g.add_argument(
        "--planner-api-key",
        metavar="KEY",
        help="with --planner openai: the planner server's key (default: OPENAI_API_KEY)",
    )
    g.add_argument("--max-steps", type=int, default=12, help="planner turns allowed (12)")
    g.add_argument("--time-limit", type=float, default=600.0, help="seconds allowed (600)")
    g = parser.add_argument_group(
        "tools", "the tools (vqa, ground, report, ...) and MedMO in this process"
    )
    g.add_argument(
        "--mcp",
        metavar="URL|COMMAND",
        help="use the tools of an MCP server: an http(s) URL, or a command that starts one "
        "over stdio (e.g. 'python -m mcp_server --model ...'); default: in-process",
    )
    add_settings_options(g, MODEL_SETTINGS, help=_MODEL_HELP)
    add_view_options(
        parser.add_argument_group("clinical images", "how the image is shown to every tool")
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

    return Settings.from_env(**settings_values(args, MODEL_SETTINGS))


def _image_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in _IMAGE_OPTIONS if getattr(args, k) is not None}


def _check_options(args: argparse.Namespace) -> None:
    """Refuse option combinations that would be silently ignored."""
    from ..config import Settings
    from ..errors import ConfigError

    if args.planner != "openai":
        given = [
            flag
            for flag, value in (
                ("--planner-base-url", args.planner_base_url),
                ("--planner-model", args.planner_model),
                ("--planner-api-key", args.planner_api_key),
            )
            if value
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)} only apply to --planner openai.",
                input=given[0],
                fix="Add --planner openai, or drop the option (the MedMO planner uses the "
                "tools' backend: --backend, --base-url).",
            )
    local_model = [
        flag
        for flag, value in (
            ("--model", args.model),
            ("--backend", args.backend),
            ("--base-url", args.base_url),
            ("--device", args.device),
        )
        if value
    ]
    if args.mcp and (args.workflow or args.planner == "openai") and local_model:
        raise ConfigError(
            f"{', '.join(local_model)} configure MedMO in this process, which this run does "
            "not use: the MCP server's tools answer, and the planner is not MedMO.",
            input=local_model[0],
            fix="Drop those options, or drop --mcp to run the tools in this process.",
        )
    if args.base_url and (args.backend or Settings.from_env().backend) != "openai":
        raise ConfigError(
            "--base-url is the tools' OpenAI-compatible server, used with --backend openai.",
            input="--base-url",
            fix="Add --backend openai, or pass the planner's server as --planner-base-url "
            "(with --planner openai).",
        )
    if args.mcp and _image_options(args):
        raise ConfigError(
            "--window, --slice, --frame and --plane apply to in-process tools.",
            input="--mcp",
            fix="Drop --mcp, or leave the image options out (the MCP server's defaults apply).",
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
    key = args.planner_api_key or os.environ.get("OPENAI_API_KEY")
    if not args.planner_base_url and not key:
        raise ConfigError(
            "--planner openai needs a server or a key.",
            input="--planner",
            fix="Pass --planner-base-url http://host:8000/v1 (vLLM, SGLang) or set OPENAI_API_KEY.",
        )
    from ..config import Settings

    settings = Settings.from_env()
    return ChatOpenAI(
        model=args.planner_model or "gpt-4o-mini",
        base_url=args.planner_base_url,
        api_key=key or "none",
        temperature=0,
        # as for the MedMO planner, whose backend applies --max-new-tokens; without it
        # the server's default length applies (1024 tokens for ``transformers serve``)
        max_tokens=args.max_new_tokens,
        timeout=settings.request_timeout_s,
        max_retries=settings.retries,
    )


async def _run(args: argparse.Namespace, on_step: Any) -> Any:
    from .agent import create_medmo_agent
    from .workflow import DEFAULT_STEPS, DiagnosticWorkflow

    context = _context(args)
    image = args.image

    async def go(tools: Any, toolkit: Any, source: str | None) -> Any:
        if args.workflow:
            wf = DiagnosticWorkflow(
                tools,
                toolkit=toolkit,
                steps=[s for s in DEFAULT_STEPS if s not in set(args.skip)],
                time_limit_s=args.time_limit,
                tools_source=source,
            )
            return await wf.arun(image, args.question, context=context, on_step=on_step)
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
        return await agent.arun(image, question, context=context, on_step=on_step)

    if args.mcp:
        from .mcp import describe_target, mcp_tools

        async with mcp_tools(args.mcp) as tools:
            return await go(tools, None, describe_target(args.mcp))
    from ..toolkit import Toolkit

    toolkit = Toolkit(settings=_settings(args))
    # Read the image before any step runs: an unreadable image (or a --plane that does not
    # apply to it) is one clear error, not a failure repeated at every step.
    loaded = toolkit.load(args.image, **_image_options(args))
    if _image_options(args):
        # a handle to the image as rendered: every tool sees this window, slice and plane
        image = toolkit.resolver.register(loaded)
    return await go(None, toolkit, "in-process")


def run_agent(args: argparse.Namespace) -> int:
    """Run ``medmo agent``; returns the exit status (1 when the run stopped early or every
    step failed).

    ``MedmoError`` propagates to the ``medmo`` command, which prints it in one line.
    """

    def on_step(step: Any) -> None:
        if not args.quiet and step.kind != "final":
            sys.stdout.write(format_step(step) + "\n")
            sys.stdout.flush()

    _check_options(args)
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
    for path in (args.trace, args.markdown, args.html):
        if path:
            sys.stderr.write(f"trace written to {path}\n")
    if trace.stopped:
        sys.stderr.write(f"medmo agent: stopped early ({trace.stopped})\n")
        return EXIT_STOPPED
    results = trace.tool_steps
    failed = [s for s in results if s.status == "error"]
    if results and len(failed) == len(results):
        first = (failed[0].text.strip().splitlines() or ["no reason given"])[0]
        sys.stderr.write(
            f"medmo agent: every step failed ({len(failed)} of {len(results)}); "
            f"the first: {first}\n"
        )
        return EXIT_FAILED
    return EXIT_OK
