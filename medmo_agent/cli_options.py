"""Command-line options generated from the task registry's parameter declarations.

A task's subcommand, the agent's image options and the shared ``--max-new-tokens`` all
come from the same ``Annotated`` parameters as the MCP and LangChain schemas: names,
help, choices and defaults are never written here.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any

from .tasks.declare import Parameter, Task
from .tasks.params import VIEW_PARAMS
from .tasks.registry import TASKS

__all__ = ["add_parameter", "add_task_arguments", "add_view_options", "cli_values"]

#: argparse's container for options (``add_argument_group`` returns one).
Group = argparse.ArgumentParser | argparse._ArgumentGroup


def _members(tp: Any) -> tuple[Any, ...]:
    """The non-None members of a union (or the type itself)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return (tp,)


def add_parameter(group: Group, param: Parameter, *, positional: bool | None = None) -> None:
    """Add one task parameter to a parser or option group, shaped by its type.

    Args:
        group: Where to add it.
        param: The parameter, from a task of the registry.
        positional: Offer it by position; default: as the task declares it (a Python
            positional parameter is positional unless its ``Cli`` hint says ``option``).
    """
    cli = param.cli
    if positional is None:
        positional = param.positional and not cli.option
    (tp,) = _members(param.value_type)[:1]
    kwargs: dict[str, Any] = {"help": cli.help or param.description}
    if cli.metavar:
        kwargs["metavar"] = cli.metavar
    origin = typing.get_origin(tp)
    if origin is list:
        kwargs["nargs"] = ("*" if not param.required else "+") if positional else "+"
    elif tp is bool:
        kwargs = {"help": kwargs["help"], "action": "store_true"}
    elif origin is typing.Literal:
        kwargs["choices"] = list(typing.get_args(tp))
    elif tp is int:
        kwargs["type"] = int
    if positional and not param.required and "nargs" not in kwargs:
        kwargs["nargs"] = "?"
    if not param.required and tp is not bool:
        kwargs["default"] = param.default
    if positional:
        group.add_argument(param.name, **kwargs)
    else:
        group.add_argument("--" + param.name.replace("_", "-"), dest=param.name, **kwargs)


def add_task_arguments(parser: argparse.ArgumentParser, task: Task) -> None:
    """The arguments of ``task``'s subcommand: its image, its own arguments, then the
    image view options in their own group (``max_new_tokens`` belongs to the model
    options, shared with commands that are not tasks)."""
    view = parser.add_argument_group("clinical images") if task.takes_image else None
    for param in task.parameters:
        if param.name == "max_new_tokens":
            continue
        add_parameter(view if (view and param.name in VIEW_PARAMS) else parser, param)


def add_view_options(group: Group) -> None:
    """Add ``--window``, ``--slice``, ``--frame`` and ``--plane``: how an image is shown."""
    for name in VIEW_PARAMS:
        add_parameter(group, TASKS["vqa"].parameter(name))


def cli_values(task: Task, args: argparse.Namespace) -> dict[str, Any]:
    """The task's arguments from parsed command-line options (those not given left out)."""
    values = {}
    for param in task.parameters:
        value = getattr(args, param.name, None)
        if value is None or (value == [] and param.default is None):
            continue
        values[param.name] = value
    return values
