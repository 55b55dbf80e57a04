"""The task registry: every MedMO task, in the order surfaces list them.

Surfaces (the toolkit, MCP, LangChain, the CLI, reviews, the notebook) are generated
from these declarations and never name a task's arguments themselves. To add a task,
write its module (prompt, parser, and the function declared with
:func:`~medmo_agent.tasks.declare.task`) and add it here.
"""

from __future__ import annotations

from .classify import classify
from .declare import Task
from .detect import detect
from .ground import ground
from .reason import reason
from .report import report
from .summarize import summarize_report
from .text_qa import text_qa
from .volume import ground_volume
from .vqa import vqa

__all__ = ["TASKS", "canonical_name", "find_task"]

#: Every task by name, in the order tools are listed.
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        vqa,
        ground,
        report,
        reason,
        classify,
        detect,
        summarize_report,
        text_qa,
        ground_volume,
    )
}

_BY_ALIAS = {alias: t for t in TASKS.values() for alias in t.aliases}


def find_task(name: str) -> Task:
    """The task called ``name`` (or one of its aliases).

    Raises:
        KeyError: No task has that name; the message lists the names.
    """
    found = TASKS.get(name) or _BY_ALIAS.get(name)
    if found is None:
        raise KeyError(f"no task {name!r}; tasks: {', '.join(TASKS)}")
    return found


def canonical_name(name: str) -> str:
    """The task name for ``name`` if it is a task or an alias, else ``name`` unchanged."""
    found = TASKS.get(name) or _BY_ALIAS.get(name)
    return found.name if found is not None else name
