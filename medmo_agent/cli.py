"""The ``medmo`` command: every MedMO task from the shell, plus ``serve``, ``info`` and more.

Errors are translated here, in one place: one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mcp_server.cli import add_serve_arguments, run_serve

from . import __version__
from .agent.cli import add_agent_arguments, run_agent
from .cli_options import (
    add_parameter,
    add_settings_options,
    add_task_arguments,
    cli_values,
    settings_values,
)
from .config import Settings
from .errors import InputError, MedmoError
from .evaluation.cli import add_eval_arguments, run_eval_command
from .review.cli import add_review_arguments, run_review_command
from .tasks.registry import TASKS, find_task
from .tasks.volume import MODES as VOLUME_MODES
from .tasks.volume import ground_volume as VOLUME_TASK

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

Runner = Callable[[argparse.Namespace], Any]

#: The subcommands beyond the tasks and ``info``: name -> (add options, run, help). Their
#: modules import nothing heavy at import time, so ``medmo --help`` stays fast.
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Runner, str]] = {
    "serve": (
        add_serve_arguments,
        run_serve,
        "run the MCP server (stdio by default, --http for streamable HTTP)",
    ),
    "agent": (
        add_agent_arguments,
        run_agent,
        "step-by-step diagnostic reasoning over an image, with a trace",
    ),
    "review": (
        add_review_arguments,
        run_review_command,
        "run scripted multi-step reviews over many cases, resumably",
    ),
    "eval": (
        add_eval_arguments,
        run_eval_command,
        "evaluate the model on the benchmarks of MedMO's card, scored MedEvalKit's way",
    ),
}


#: The settings the task commands and ``medmo info`` take as options.
MODEL_SETTINGS = ("model", "backend", "base_url", "device")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    add_settings_options(g, MODEL_SETTINGS)
    # a per-call task argument (the registry's), not the setting's default cap
    add_parameter(g, TASKS["vqa"].parameter("max_new_tokens"))


def _add_overlay_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overlay",
        metavar="OUT.png",
        type=Path,
        help="write the image with labelled boxes drawn on it",
    )


def _add_volume_options(p: argparse.ArgumentParser, task: Any) -> None:
    """``--overlay-dir``; on ``ground``/``detect`` also ``--slices`` and ``--study-read``,
    which sweep the whole volume (the ``ground_volume`` task) instead of one slice."""
    g = p.add_argument_group("whole volume")
    if task is not VOLUME_TASK:
        for name in ("slices", "study_read"):
            param = VOLUME_TASK.parameter(name)
            kwargs: dict[str, Any] = {"dest": name, "help": param.description}
            if param.value_type is bool:
                kwargs.update(action="store_true", default=None)
            else:
                # not given: one slice, as before; given: the sweep over those slices
                kwargs.update(default=None, metavar=param.cli.metavar)
            g.add_argument("--" + name.replace("_", "-"), **kwargs)
    g.add_argument(
        "--overlay-dir",
        metavar="DIR",
        type=Path,
        help="with a volume sweep: write slice_NNNN.png (boxes drawn) for each slice with "
        "boxes, and overview.png (the key slices of the findings)",
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", action="store_true", help="print the full result as JSON on stdout (for scripts)"
    )
    p.add_argument(
        "--stream", action="store_true", help="show the model's text on stderr as it is generated"
    )
    p.add_argument(
        "--include-paths",
        action="store_true",
        default=None,
        help="name the image path in --json output (default: a label; MEDMO_INCLUDE_PATHS)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``medmo`` command."""
    parser = argparse.ArgumentParser(
        prog="medmo",
        description="MedMO, the open medical vision-language model, from the command line. "
        "For research use only; not for clinical decisions.",
    )
    parser.add_argument("--version", action="version", version=f"medmo-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for task in TASKS.values():  # every task of the registry, with its older names
        p = sub.add_parser(
            task.name, aliases=list(task.aliases), help=task.summary, description=task.summary
        )
        add_task_arguments(p, task)
        if task.boxes:
            _add_overlay_option(p)
        if task.name in VOLUME_MODES or task is VOLUME_TASK:
            _add_volume_options(p, task)
        _add_model_options(p)
        _add_output_options(p)

    info_help = "versions, devices, configured model and cache state"
    p = sub.add_parser(
        "info",
        help=info_help,
        description=f"Show {info_help}: what to check before the first run (is the GPU "
        "visible, are the weights cached) and what to quote in a bug report.",
    )
    _add_model_options(p)
    p.add_argument("--json", action="store_true", help="print as JSON")

    for name, (add, _run, help_) in _COMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_))
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the model options given."""
    return Settings.from_env(
        **settings_values(args, MODEL_SETTINGS),
        include_paths=getattr(args, "include_paths", None),
    )


def _image_opts(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("window", "slice", "frame", "plane")}


def _run_task(args: argparse.Namespace) -> int:
    from .toolkit import Toolkit

    settings = settings_from_args(args)
    toolkit = Toolkit(settings=settings)
    common: dict[str, Any] = {}  # max_new_tokens comes with the task's arguments
    if args.stream:
        common["on_text"] = lambda piece: (sys.stderr.write(piece), sys.stderr.flush())

    if getattr(args, "overlay", None):
        _check_overlay_path(args.overlay)  # before the model runs, not after
    task = find_task(args.command)
    if task.name in VOLUME_MODES and (args.slices is not None or args.study_read):
        # `ground study/ --slices all`: the same per-slice task over the whole volume
        mode, task = task.name, VOLUME_TASK
        arguments = {**cli_values(task, args), "mode": mode}
        arguments.setdefault("slices", "all")
    else:
        arguments = cli_values(task, args)
    if task is not VOLUME_TASK and getattr(args, "overlay_dir", None):
        raise InputError(
            "--overlay-dir writes the slices of a volume sweep.",
            input="--overlay-dir",
            fix="Add --slices all (or a range such as 40:120) to sweep the volume, or use "
            "--overlay OUT.png for one image.",
        )
    for param in task.parameters:
        if param.cli.read_file and param.name in arguments:
            arguments[param.name] = _read_text(arguments[param.name])
    if task is VOLUME_TASK:
        result = _run_volume(toolkit, args, arguments, common)
    else:
        result = task.run(toolkit, **arguments, **common)
    if args.stream:
        sys.stderr.write("\n")

    if getattr(args, "overlay", None):
        _write_overlay(toolkit, args, result)
    if args.json:
        from .privacy import scrub_data

        data = result.model_dump(mode="json")
        image = getattr(args, "image", None)
        data = scrub_data(data, settings.include_paths, [str(image)] if image else ())
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(result.summary() + "\n")
    return EXIT_OK


def _run_volume(
    toolkit: Any, args: argparse.Namespace, arguments: dict[str, Any], common: dict[str, Any]
) -> Any:
    """The sweep, with a line per slice on stderr under --stream, then --overlay-dir."""
    from .volume import VolumeResult, slice_progress

    def report(done: int, total: int, message: str) -> None:
        if args.stream:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    with slice_progress(report):
        result = VOLUME_TASK.run(toolkit, **arguments, **common)
    assert isinstance(result, VolumeResult)
    if getattr(args, "overlay_dir", None):
        from .volume.overview import write_overlay_dir
        from .volume.pipeline import volume_renderer

        _, render, _, _ = volume_renderer(
            toolkit,
            args.image,
            window=arguments.get("window"),
            plane=arguments.get("plane"),
            frame=arguments.get("frame"),
        )
        try:
            written = write_overlay_dir(result, render, args.overlay_dir)
        except OSError as exc:
            raise InputError(
                f"Cannot write overlays to {str(args.overlay_dir)!r}: {exc.strerror or exc}.",
                input=str(args.overlay_dir),
                fix="Pass --overlay-dir a writable folder.",
            ) from exc
        sys.stderr.write(f"{len(written)} overlay(s) written to {args.overlay_dir}\n")
    return result


def _check_overlay_path(out: Path) -> None:
    """Fail before inference when the overlay cannot be written where asked."""
    problem = None
    if out.suffix.lower() != ".png":
        problem = "the overlay is written as PNG, so the name must end in .png"
    elif out.is_dir():
        problem = "it is a folder"
    else:
        parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), None)
        if parent is None or not parent.is_dir():
            problem = f"{str(parent)!r} is not a folder"
        elif not os.access(parent, os.W_OK | os.X_OK):
            problem = f"the folder {str(parent)!r} is not writable"
        elif out.exists() and not os.access(out, os.W_OK):
            problem = "the file exists and is not writable"
    if problem:
        raise InputError(
            f"Cannot write the overlay to {str(out)!r}: {problem}.",
            input=str(out),
            fix="Pass --overlay a writable file path ending in .png.",
        )


def _write_overlay(toolkit: Any, args: argparse.Namespace, result: Any) -> None:
    from .imaging.overlay import draw_boxes

    image = toolkit.load(args.image, **_image_opts(args))
    out: Path = args.overlay
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        draw_boxes(image, result.boxes).save(out, format="PNG")
    except OSError as exc:
        raise InputError(
            f"Cannot write the overlay to {str(out)!r}: {exc.strerror or exc}.",
            input=str(out),
            fix="Pass --overlay a writable file path ending in .png.",
        ) from exc
    sys.stderr.write(f"overlay written to {out} ({len(result.boxes)} box(es))\n")


def _read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"Cannot read report file {path!r}: {exc.strerror or exc}.",
            input=path,
            fix="Pass a readable text file, or - to read the report from stdin.",
        ) from exc
    except UnicodeDecodeError as exc:
        what = "Standard input" if path == "-" else f"Report file {path!r}"
        raise InputError(
            f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start}).",
            input=path,
            fix="Save the report as UTF-8 plain text (not .docx or .pdf), or pipe it to -.",
        ) from exc


def _run_info(args: argparse.Namespace) -> int:
    from .info import collect_info, format_info

    info = collect_info(settings_from_args(args))
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
    else:
        sys.stdout.write(format_info(info) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medmo`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "info":
            return _run_info(args)
        if args.command in _COMMANDS:
            _add, run, _help = _COMMANDS[args.command]
            return int(run(args) or 0)
        return _run_task(args)
    except MedmoError as exc:
        sys.stderr.write(f"medmo: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("medmo: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
