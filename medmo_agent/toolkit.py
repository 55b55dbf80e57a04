"""THE tool surface: MedMO's tasks as typed, documented methods over one backend.

Each method is generated from the task's declaration in the registry
(:mod:`medmo_agent.tasks.registry`): its signature, its docstring (written for an LLM
caller, so it doubles as the tool description) and its result model. MCP tools,
LangChain tools, widgets, the CLI and case reviews are generated from the same
declarations and call these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .tasks.declare import Task
from .tasks.registry import TASKS
from .toolkit_core import TOOL_NAMES, ImageInput, ToolkitCore

if TYPE_CHECKING:
    from collections.abc import Callable

    from .tasks.results import TaskResult

__all__ = ["TOOL_NAMES", "ImageInput", "Toolkit"]


class Toolkit(ToolkitCore):
    """MedMO's tasks as plain Python functions over one shared backend.

    Every task of the registry is a method of the same name (``vqa``, ``ground``,
    ``report``, ``reason``, ``classify``, ``detect``, ``summarize_report``, ``text_qa``,
    ``ground_volume``);
    ``summarize`` is kept as another name for ``summarize_report``.

    Args:
        backend: The model; defaults to ``create_backend(settings)`` on first use.
        settings: Configuration; defaults to ``Settings.from_env()``.
        resolver: Turns image arguments into images, enforcing allowed folders;
            defaults to one that reads any local path.
    """

    if TYPE_CHECKING:  # the task methods are generated below

        def __getattr__(self, name: str) -> Callable[..., TaskResult]: ...


def _run_on_toolkit(task: Task) -> Callable[..., TaskResult]:
    def method(self: Toolkit, /, *args: Any, **kwargs: Any) -> TaskResult:
        return task.run(self, *args, **kwargs)

    return method


for _task in TASKS.values():
    _task.method(_run_on_toolkit(_task), Toolkit)
    for _alias in _task.aliases:
        if _alias == "summarize":  # the toolkit's older name for summarize_report
            setattr(Toolkit, _alias, getattr(Toolkit, _task.name))
