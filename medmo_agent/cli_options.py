"""Command-line options generated from their one declaration.

A task's subcommand, the agent's image options and the shared ``--max-new-tokens`` all
come from the same ``Annotated`` parameters as the MCP and LangChain schemas; the model
and limit options of every command (``--model``, ``--backend``, ``--base-url``, ...) come
from the fields of :class:`~medmo_agent.config.Settings`: names, help, choices and
defaults are never written here.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from .tasks.declare import Parameter, Task
from .tasks.params import VIEW_PARAMS
from .tasks.registry import TASKS

__all__ = [
    "add_parameter",
    "add_settings_options",
    "add_task_arguments",
    "add_view_options",
    "cli_values",
    "settings_values",
]

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


def _default_note(name: str) -> str:
    from .config import Settings

    default = Settings.model_fields[name].default
    env = "MEDMO_" + name.upper()
    return f" (default: {default}; {env})" if default is not None else f" ({env})"


def add_settings_options(
    group: Group, names: Sequence[str], *, help: Mapping[str, str] | None = None
) -> None:
    """Add one option per named :class:`~medmo_agent.config.Settings` field.

    ``--base-url`` for ``base_url`` and so on: the help is the field's description
    (or this surface's wording in ``help``), followed by the field's default and its
    ``MEDMO_*`` variable. An option not given parses as ``None``, so the environment and
    then the default apply (see :func:`settings_values`).

    Args:
        group: Where to add them.
        names: The settings this command offers, in the order shown.
        help: Help text for some of them on this surface, in place of the description.
    """
    from .config import Settings

    for name in names:
        field = Settings.model_fields[name]
        text = (help or {}).get(name) or field.description or name.replace("_", " ")
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": None,
            "help": (text + _default_note(name)).replace("%", "%%"),
        }
        (tp,) = _members(field.annotation)[:1]
        if tp is bool:
            kwargs["action"] = "store_true"
        elif tp in (int, float):
            kwargs["type"] = tp
        if name == "backend":  # the backends of this install, not every string
            from .backends import backend_choices

            kwargs["choices"] = backend_choices()
        group.add_argument("--" + name.replace("_", "-"), **kwargs)


def settings_values(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The named settings given on the command line (``None`` for those not given)."""
    return {name: getattr(args, name, None) for name in names}
