"""IPython magics: ``%medmo_model``, ``%medmo TASK IMAGE ...`` and ``%%medmo agent IMAGE``.

Usage (after ``%load_ext jupyter_ext``)::

    %medmo_model --model MBZUAI/MedMO-4B-Next        # once per kernel
    %medmo ask chest.png Is there a pneumothorax?
    %medmo ground ct_series/ "pleural effusion" nodule --window lung --slice 40
    %%medmo agent chest.png --workflow
    What is the most likely diagnosis?

Each task runs in the background and returns a widget that fills in as the model answers;
``--wait`` blocks until it is done (for scripts). Mistyped commands raise ``UsageError``
with the usage line; failures of the task itself appear in the widget in red.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from medmo_agent.cli_options import (
    add_parameter,
    add_settings_options,
    add_view_options,
    settings_values,
)
from medmo_agent.tasks.registry import TASKS as REGISTRY

from .panels import TASKS

__all__ = ["MedmoMagics"]

#: The settings ``%medmo_model`` takes as options.
MODEL_SETTINGS = (
    "model",
    "backend",
    "base_url",
    "api_key",
    "served_model",
    "device",
    "dtype",
    "max_new_tokens",
)


def _task_help() -> str:
    lines = [
        "%medmo TASK IMAGE [ARGS ...] [--window W] [--slice N] [--frame N] [--plane P]",
        "       [--slices SLICES] [--max-new-tokens N] [--wait]",
        "",
        "TASK is one of:",
    ]
    for task in REGISTRY.values():
        if not task.takes_image:
            continue
        main = task.parameter(task.main) if task.main else None
        shape = ""
        if main is not None:
            word = main.name.upper().rstrip("S")
            shape = f"{word} ..." if main.is_list else word
            shape = shape if main.required else f"[{shape}]"
        names = "/".join((task.name, *task.aliases))
        lines.append(f"  {f'{names} IMAGE {shape}'.rstrip():<30}{task.summary}")
    lines += [
        f"  {'agent IMAGE [QUESTION]':<30}the agent, with a live trace (--workflow: the fixed "
        "workflow)",
        'Quote multi-word targets: %medmo ground img.png "pleural effusion" nodule',
        "--slices all|40:120|::2 makes ground or detect sweep every chosen slice of a "
        "volume (ground_volume).",
    ]
    return "\n".join(lines)


_TASK_HELP = _task_help()


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as IPython usage errors instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise UsageError(message or self.format_help())


def _model_parser() -> _Parser:
    p = _Parser(prog="%medmo_model", description="Choose the model once per kernel.")
    add_settings_options(p, MODEL_SETTINGS)
    p.add_argument("--mcp", help="use the tools of this MCP server (streamable HTTP URL)")
    p.add_argument("--token", help="bearer token for the MCP server")
    p.add_argument("--local", action="store_true", help="switch back from an MCP server")
    p.add_argument("--load", action="store_true", help="load the model now, not on first use")
    return p


def _task_parser() -> _Parser:
    p = _Parser(prog="%medmo", usage=_TASK_HELP.replace("%", "%%"), add_help=False)
    p.add_argument("task")
    p.add_argument("image")
    p.add_argument("args", nargs="*")
    add_view_options(p)
    p.add_argument("--workflow", action="store_true")
    add_parameter(p, REGISTRY["vqa"].parameter("max_new_tokens"))
    add_parameter(p, REGISTRY["ground_volume"].parameter("slices"), positional=False)
    p.set_defaults(slices=None)  # given or not: `ground`/`detect` with it sweep the volume
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=None)
    return p


def _split(line: str) -> list[str]:
    try:
        # comments=True: a "# ..." note after the arguments (as the README's examples have)
        # is not an argument
        return shlex.split(line, comments=True)
    except ValueError as exc:  # an unbalanced quote
        raise UsageError(f"Cannot read the command line: {exc}.") from exc


def _sweep_options(
    task: str, args: argparse.Namespace, question: str
) -> tuple[str, Any, dict[str, Any]]:
    """(task, main argument, other arguments): with ``--slices``, ``ground`` and ``detect``
    become the volume sweep in that mode, as on the command line."""
    spec = TASKS[task]
    listed = spec.main is not None and spec.parameter(spec.main).is_list
    argument: Any = args.args if listed else question
    if args.slices is None:
        return task, argument, {}
    if spec.name == "ground_volume":
        return task, argument, {"slices": args.slices}
    if spec.name == "ground":
        return "ground_volume", argument, {"slices": args.slices}
    if spec.name == "detect":
        options = {"slices": args.slices, "mode": "detect", "label": question or None}
        return "ground_volume", None, options
    raise UsageError(
        f"--slices sweeps a volume: it applies to ground, detect and ground_volume, not "
        f"{task}. Leave it out, or use --slice N to pick one slice."
    )


@magics_class
class MedmoMagics(Magics):
    """The ``%medmo_model`` and ``%medmo`` magics."""

    @line_magic
    def medmo_model(self, line: str = "") -> Any:
        """Choose the model (or remote MCP server) for this kernel; no arguments: show it.

        Examples::

            %medmo_model --model MBZUAI/MedMO-4B-Next
            %medmo_model --backend openai --base-url http://gpu-box:8000/v1
            %medmo_model --mcp http://127.0.0.1:8000/mcp --token $TOKEN
        """
        from .session import get_session

        args = _model_parser().parse_args(_split(line))
        session = get_session()
        overrides = settings_values(args, MODEL_SETTINGS)
        changed = any(v is not None for v in overrides.values()) or args.mcp or args.local
        if changed:
            mcp_url = "" if args.local else args.mcp
            session.configure(mcp_url=mcp_url, mcp_token=args.token, **overrides)
        if args.load:
            from .panels import ModelLoadPanel

            return ModelLoadPanel(session)
        print(f"MedMO: {session.describe()}")
        return None

    @line_cell_magic
    def medmo(self, line: str = "", cell: str | None = None) -> Any:
        """Run a MedMO task on an image and show the result; ``%medmo`` alone shows help.

        As a cell magic (``%%medmo agent IMAGE``) the cell body is the question.
        """
        if not line.strip():
            print(_TASK_HELP)
            return None
        args = _task_parser().parse_args(_split(line))
        task = args.task.lower()
        question = " ".join(args.args)
        if cell is not None:
            if task != "agent":
                cell_text = cell.strip()
                args.args = [*args.args, cell_text] if cell_text else args.args
            question = " ".join([question, cell.strip()]).strip()
        image_opts = {
            "window": args.window,
            "slice": args.slice,
            "frame": args.frame,
            "plane": args.plane,
        }
        if task == "agent":
            from .agent_panel import AgentPanel

            if args.max_new_tokens is not None:
                raise UsageError(
                    "--max-new-tokens applies to single tasks; for the agent choose it once "
                    "with %medmo_model --max-new-tokens N."
                )
            image: Any = args.image
            if any(v is not None for v in image_opts.values()):
                from .session import get_session

                image = get_session().load(args.image, **image_opts).handle
            panel: Any = AgentPanel(image, question, workflow=args.workflow)
        elif task in TASKS:
            from .panels import TaskPanel

            task, argument, options = _sweep_options(task, args, question)
            panel = TaskPanel(
                task,
                args.image,
                argument,
                image_opts=image_opts,
                max_new_tokens=args.max_new_tokens,
                options=options,
            )
        else:
            raise UsageError(f"Unknown task {args.task!r}.\n\n{_TASK_HELP}")
        if args.wait:
            try:
                panel.wait(args.timeout)
            except TimeoutError as exc:
                raise UsageError(str(exc)) from exc
            except Exception:  # already shown in red in the widget
                pass
        return panel
