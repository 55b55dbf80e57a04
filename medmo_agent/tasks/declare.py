"""How a task is declared: one function, its ``Annotated`` parameters, one decorator.

A task is a function ``fn(core, <its own arguments>, *, view, gen) -> Result`` whose own
arguments use the shared types of :mod:`.params` (they carry descriptions, limits and
defaults) and whose docstring is the LLM-facing description with a ``Returns:``
section. What every task shares is added by the declaration, not written again: an image
task (one with ``view``) takes the view parameters (window, slice, frame, plane), every
task takes ``max_new_tokens``, and Python callers may pass ``on_text`` and ``cancel``;
the function receives them as a :class:`~.params.View` and a
:class:`~.params.Generation`. :func:`task` turns the function into a :class:`Task`; the
registry lists the tasks; every surface is generated from them.
"""

from __future__ import annotations

import inspect
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from .params import (
    VIEW_PARAMETERS,
    VIEW_PARAMS,
    Cli,
    Generation,
    ImageMarker,
    MaxNewTokensParam,
    View,
)

if TYPE_CHECKING:
    from ..backends.base import Completion
    from ..types import MedImage, Message
    from .results import GroundingResult, TaskResult

#: A task's own result model: what ``finish`` and ``boxes`` hand back is the type they got.
R = TypeVar("R", bound="TaskResult")
G = TypeVar("G", bound="GroundingResult")

__all__ = ["Parameter", "Task", "TaskCore", "task"]

#: The call control a Python caller may pass besides the arguments; surfaces wire them to
#: progress and cancellation. A task function receives them in its ``gen`` argument.
CONTROL: tuple[tuple[str, Any], ...] = (
    ("on_text", Callable[[str], None] | None),
    ("cancel", threading.Event | None),
)


class TaskCore(Protocol):
    """What a task function asks of the toolkit it runs in."""

    def check_text(self, **arguments: Any) -> None: ...

    def check_tokens(self, max_new_tokens: int | None) -> int | None: ...

    def load(
        self,
        image: Any,
        *,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
    ) -> MedImage: ...

    def generate(self, messages: list[Message], gen: Generation) -> Completion: ...

    def finish(self, result: R, completion: Completion, image: MedImage | None) -> R: ...

    def boxes(
        self,
        build: Callable[[MedImage], list[Message]],
        parse: Callable[..., G],
        image: Any,
        view: View,
        gen: Generation,
        **parse_kwargs: Any,
    ) -> G: ...


@dataclass(frozen=True)
class Parameter:
    """One argument of a task, as every surface offers it.

    Attributes:
        name: The argument's name, the same on every surface.
        annotation: The full ``Annotated`` type (value type plus description and limits).
        default: The default, or ``inspect.Parameter.empty`` when the argument is required.
        description: What the argument is, for a caller (from the annotation).
        positional: Whether Python callers may pass it by position.
    """

    name: str
    annotation: Any
    default: Any
    description: str
    positional: bool

    @property
    def required(self) -> bool:
        """Whether a caller must give it."""
        return self.default is inspect.Parameter.empty

    @property
    def is_image(self) -> bool:
        """Whether this is the task's image argument."""
        return any(isinstance(m, ImageMarker) for m in _metadata(self.annotation))

    @property
    def is_list(self) -> bool:
        """Whether the argument is a list (of strings)."""
        return any(typing.get_origin(t) is list for t in _members(self.value_type))

    @property
    def cli(self) -> Cli:
        """How the command line offers it."""
        return next((m for m in _metadata(self.annotation) if isinstance(m, Cli)), Cli())

    @property
    def value_type(self) -> Any:
        """The type without its description; ``str`` for the image (as JSON carries it)."""
        if self.is_image:
            return str
        return (
            typing.get_args(self.annotation)[0] if _metadata(self.annotation) else (self.annotation)
        )

    @property
    def field(self) -> FieldInfo:
        """A pydantic field with the description, limits and default (image as a string)."""
        info = next((m for m in _metadata(self.annotation) if isinstance(m, FieldInfo)), None)
        default = ... if self.required else self.default
        if info is None:
            return Field(default, description=self.description)
        merged = FieldInfo.merge_field_infos(info, default=default)
        return merged


@dataclass(frozen=True)
class Task:
    """A MedMO task, declared once; every surface is generated from it.

    Attributes:
        name: The task's name: the tool name on MCP and LangChain, the CLI subcommand,
            the review step kind and the toolkit method.
        title: A short human title (MCP tool title, notebook buttons).
        summary: One line for ``--help`` listings.
        description: The LLM-facing description (the function's docstring, without its
            ``Returns:`` section).
        returns: What the result holds (the docstring's ``Returns:`` section).
        result: The result model.
        function: ``function(core, **own_arguments, [view=View], gen=Generation)``.
        parameters: The arguments as callers see them: the function's own, then the view
            parameters (image tasks), then ``max_new_tokens``.
        aliases: Other names accepted for the task (older CLI and review spellings).
        main: The argument a shorthand sets: the CLI's positional argument after the image,
            a review step's ``task: value``.
        boxes: Whether the result holds boxes (surfaces then draw an overlay).
        takes_view: Whether the function takes a ``view`` (the image view parameters are
            then added to its arguments).
        viewer: Whether clients that render MCP Apps show the result in the interactive
            image viewer (every task with boxes, unless declared otherwise).
    """

    name: str
    title: str
    summary: str
    description: str
    returns: str
    result: type[TaskResult]
    function: Callable[..., TaskResult]
    parameters: tuple[Parameter, ...]
    aliases: tuple[str, ...] = ()
    main: str | None = None
    boxes: bool = False
    takes_view: bool = False
    viewer: bool = False
    _models: dict[str, type[BaseModel]] = field(default_factory=dict, compare=False, repr=False)

    # -- derived views -----------------------------------------------------------------

    @property
    def takes_image(self) -> bool:
        """Whether the task reads an image."""
        return any(p.is_image for p in self.parameters)

    @property
    def tool_description(self) -> str:
        """What a tool-calling model reads: the description, then what comes back."""
        return f"{self.description}\n\nReturns: {self.returns}"

    def parameter(self, name: str) -> Parameter:
        """The argument called ``name``."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def signature(self) -> inspect.Signature:
        """The Python signature (toolkit methods): the arguments, then call control."""
        keyword, positional = (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
        params = [
            inspect.Parameter(
                p.name,
                positional if p.positional else keyword,
                default=p.default,
                annotation=_plain(p.annotation),
            )
            for p in self.parameters
        ]
        params += [inspect.Parameter(n, keyword, default=None, annotation=t) for n, t in CONTROL]
        return inspect.Signature(params, return_annotation=self.result)

    def method(
        self, body: Callable[..., Any], owner: type, *, doc: str | None = None
    ) -> Callable[..., Any]:
        """``body(self, *args, **kwargs)`` dressed as the method ``owner.<task name>``: with
        the task's signature (after ``self``) and docstring, for ``help()`` and editors."""
        signature = self.signature()
        own = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        body.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[own, *signature.parameters.values()]
        )
        body.__name__ = self.name
        body.__qualname__ = f"{owner.__name__}.{self.name}"
        body.__doc__ = doc if doc is not None else self.docstring()
        body.__module__ = owner.__module__
        setattr(owner, self.name, body)
        return body

    def docstring(self) -> str:
        """A Google-style docstring: description, ``Args:`` from the parameters, ``Returns:``."""
        lines = [self.description, "", "Args:"]
        for p in self.parameters:
            lines.append(f"    {p.name}: {p.description}")
        lines += [
            "    on_text: Called with each piece of text as the model generates it.",
            "    cancel: Set it to stop generating; the answer so far is returned.",
            "",
            "Returns:",
            f"    {self.returns}",
        ]
        return "\n".join(lines)

    def arguments_model(self, *, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
        """A pydantic model of the arguments as JSON carries them (the image as a string):
        the input schema of the MCP and LangChain tools."""
        key = ",".join(exclude)
        if key not in self._models:
            fields = {
                p.name: (p.value_type, p.field) for p in self.parameters if p.name not in exclude
            }
            self._models[key] = create_model(
                f"{self.name}_arguments",
                __config__=ConfigDict(extra="forbid"),
                **fields,  # type: ignore[call-overload]
            )
        return self._models[key]

    def run(self, core: TaskCore, /, *args: Any, **kwargs: Any) -> TaskResult:
        """Call the task on ``core`` with Python arguments (positional ones as declared).

        The limits every task shares are checked first, in this order: the size of the
        free-text arguments (before anything is loaded or tokenised), then
        ``max_new_tokens``.
        """
        arguments = dict(self.signature().bind(*args, **kwargs).arguments)
        core.check_text(**{k: v for k, v in arguments.items() if k in self.text_parameters})
        gen = Generation(
            max_new_tokens=core.check_tokens(arguments.pop("max_new_tokens", None)),
            on_text=arguments.pop("on_text", None),
            cancel=arguments.pop("cancel", None),
        )
        if self.takes_view:
            view = View(**{k: arguments.pop(k) for k in VIEW_PARAMS if k in arguments})
            return self.function(core, **arguments, view=view, gen=gen)
        return self.function(core, **arguments, gen=gen)

    @property
    def text_parameters(self) -> frozenset[str]:
        """The free-text arguments, whose size the text limit bounds."""
        return frozenset(
            p.name
            for p in self.parameters
            if not p.is_image and p.name not in VIEW_PARAMS and p.name != "max_new_tokens"
        )


def task(
    *,
    name: str,
    title: str,
    summary: str,
    result: type[TaskResult],
    aliases: tuple[str, ...] = (),
    main: str | None = None,
    boxes: bool = False,
    viewer: bool | None = None,
) -> Callable[[Callable[..., TaskResult]], Task]:
    """Declare a task from its function (see the module docstring).

    ``viewer`` defaults to ``boxes``: a result with boxes opens in the interactive viewer.
    """

    def declare(function: Callable[..., TaskResult]) -> Task:
        hints = typing.get_type_hints(function, include_extras=True)
        sig = inspect.signature(function)
        own = [p for p in list(sig.parameters.values())[1:] if p.name not in ("view", "gen")]
        declared = [
            (p.name, hints[p.name], p.default, p.kind is p.POSITIONAL_OR_KEYWORD) for p in own
        ]
        takes_view = "view" in sig.parameters
        if takes_view:
            declared += [(n, t, None, False) for n, t in VIEW_PARAMETERS]
        declared.append(("max_new_tokens", MaxNewTokensParam, None, False))
        parameters = tuple(
            Parameter(
                name=n,
                annotation=t,
                default=d,
                description=_description(t, n),
                positional=positional,
            )
            for n, t, d, positional in declared
        )
        description, returns = _split_returns(function.__doc__ or "")
        return Task(
            name=name,
            title=title,
            summary=summary,
            description=description,
            returns=returns,
            result=result,
            function=function,
            parameters=parameters,
            aliases=aliases,
            main=main,
            boxes=boxes,
            takes_view=takes_view,
            viewer=boxes if viewer is None else viewer,
        )

    return declare


def _members(tp: Any) -> tuple[Any, ...]:
    """The non-None members of a union, or the type itself."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return (tp,)


def _plain(annotation: Any) -> Any:
    """The type an ``Annotated`` one wraps (what a Python caller reads in a signature)."""
    return typing.get_args(annotation)[0] if _metadata(annotation) else annotation


def _metadata(annotation: Any) -> tuple[Any, ...]:
    return getattr(annotation, "__metadata__", ())


def _description(annotation: Any, name: str) -> str:
    for meta in _metadata(annotation):
        if isinstance(meta, ImageMarker):
            return meta.description
        if isinstance(meta, FieldInfo) and meta.description:
            return meta.description
    raise TypeError(f"task parameter {name!r} has no description: annotate it from .params")


def _split_returns(doc: str) -> tuple[str, str]:
    text = inspect.cleandoc(doc)
    head, sep, tail = text.partition("\nReturns:\n")
    if not sep:
        raise TypeError("a task's docstring ends with a 'Returns:' section")
    return head.strip(), " ".join(line.strip() for line in tail.splitlines() if line.strip())
