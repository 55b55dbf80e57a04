"""A review's steps: a list of toolkit tasks run in order over a case, each one recorded.

A step list is written as YAML/JSON items or as a compact string::

    - ground: nodule                       # main argument shorthand (targets)
    - task: vqa                            # full form
      question: "Describe the {label} at {box}."
      for_each: box                        # once per box found so far on that image
    - report                               # a bare task name

    "ground:nodule,vqa,report"             # compact: task[:main argument], comma-separated

Defaults come from the case: ``vqa``/``reason`` without a question ask the case's
questions (each on its own image), ``ground`` uses the case's ``targets``, ``classify``
its ``labels`` and ``report``/``reason`` its ``context``. Image steps run on every image
of the case unless ``image: N`` picks one. Question templates may use ``{box}``,
``{label}``, ``{context}`` and ``{image}``.
"""

from __future__ import annotations

import functools
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

from ..errors import InputError
from ..tasks.declare import Task
from ..tasks.params import VIEW_PARAMS
from ..tasks.registry import TASKS as REGISTRY
from ..tasks.registry import find_task
from .records import StepRecord, error_dict

if TYPE_CHECKING:
    from ..toolkit import Toolkit
    from ..types import MedImage
    from .cases import Case

__all__ = ["TASKS", "CaseRun", "TaskStep", "parse_task_steps", "run_task_steps"]

#: The step kinds: every task of the registry, and the older names reviews accept.
TASKS = tuple(dict.fromkeys(name for t in REGISTRY.values() for name in (t.name, *t.aliases)))

# A step sets a task's own arguments; the image, its view and the review's fields are
# the review's to choose.
_NOT_STEP_ARGUMENTS = frozenset({"image", "max_new_tokens", *VIEW_PARAMS})
#: Older spellings of step arguments, still read.
_ARGUMENT_ALIASES = {"report_text": ("text",)}

_DEFAULT_REASON_QUESTION = "What is the most likely diagnosis?"


def _main_argument(task_name: str) -> str:
    """The argument a bare ``task: value`` item or ``task:value`` string sets."""
    return find_task(task_name).main or "question"


class _StepBase(BaseModel):
    """What every step has besides its task's arguments."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task: str
    name: str | None = Field(None, description="Name shown in the trace (default: the task).")
    for_each: Literal["box"] | None = Field(None, description="Repeat for every box so far.")
    image: int | Literal["each"] = "each"
    max_new_tokens: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            task, _, value = data.partition(":")
            data = {"task": task.strip()}
            if value.strip() and data["task"] in TASKS:
                data[_main_argument(data["task"])] = value.strip()
        elif isinstance(data, dict) and "task" not in data:
            keys = [k for k in data if k in TASKS]
            if len(keys) != 1:
                raise ValueError(f"name exactly one task ({', '.join(TASKS)}) per step")
            data = dict(data)
            value = data.pop(keys[0])
            data["task"] = keys[0]
            if value is not None and value != {}:
                data[_main_argument(keys[0])] = value
        if isinstance(data, dict):
            if data.get("task") not in TASKS:
                raise ValueError(f"unknown task {data.get('task')!r}; tasks: {', '.join(TASKS)}")
            for key in ("targets", "labels", "options"):
                if isinstance(data.get(key), str):
                    data[key] = [s.strip() for s in data[key].split("|") if s.strip()]
        return data

    @model_validator(mode="after")
    def _check(self) -> _StepBase:
        if self.for_each == "box" and self.kind.name not in ("vqa", "reason"):
            raise ValueError("for_each: box applies to vqa and reason steps")
        if self.for_each == "box" and not getattr(self, "question", None):
            raise ValueError("a for_each: box step needs a question, e.g. 'What is at {box}?'")
        return self

    @property
    def kind(self) -> Task:
        """The registry's task this step runs."""
        return find_task(self.task)

    @property
    def display_name(self) -> str:
        """The name the trace shows."""
        return self.name or self.task

    def arguments(self) -> dict[str, Any]:
        """The task arguments the step sets itself (not from the case)."""
        return {
            p.name: getattr(self, p.name)
            for p in self.kind.parameters
            if p.name not in _NOT_STEP_ARGUMENTS and getattr(self, p.name, None) is not None
        }


def _step_fields() -> dict[str, Any]:
    """Every task argument a step may set, optional, described as the registry does."""
    fields: dict[str, Any] = {}
    for task in REGISTRY.values():
        for p in task.parameters:
            if p.name in _NOT_STEP_ARGUMENTS or p.name in fields:
                continue
            aliases = _ARGUMENT_ALIASES.get(p.name, ())
            fields[p.name] = (
                p.value_type | None,
                Field(
                    None,
                    description=p.description,
                    validation_alias=AliasChoices(p.name, *aliases) if aliases else None,
                ),
            )
    return fields


#: One step of a task list: a task and the arguments it sets (generated from the registry).
TaskStep = create_model("TaskStep", __base__=_StepBase, __module__=__name__, **_step_fields())


def parse_task_steps(spec: Any) -> list[TaskStep]:
    """Parse a step list (YAML/JSON items, or a compact ``a:x,b,c`` string).

    Raises:
        InputError: A step is malformed; the message names it and says how to write it.
    """
    items = [s for s in spec.split(",") if s.strip()] if isinstance(spec, str) else spec
    if not isinstance(items, list) or not items:
        raise InputError(
            "Steps must be a non-empty list of tasks.",
            input="steps",
            fix="Write e.g. [ground, vqa, report] or 'ground:nodule,vqa,report'.",
        )
    steps = []
    for i, item in enumerate(items):
        try:
            steps.append(TaskStep.model_validate(item))
        except ValidationError as exc:
            msg = "; ".join(e["msg"] for e in exc.errors())
            raise InputError(
                f"Step {i + 1} ({item!r}) is invalid: {msg}.",
                input="steps",
                fix=f"Each step names one task ({', '.join(TASKS)}) with its arguments.",
            ) from exc
    return steps


@dataclass
class CaseRun:
    """A case being reviewed: its loaded images and the trace so far."""

    case: Case
    toolkit: Toolkit
    images: list[MedImage]
    cancel: threading.Event | None = None
    records: list[StepRecord] = field(default_factory=list)
    #: A volume step's overview strip (PNG), by the step's index: the record keeps the
    #: result as JSON, the picture is written beside it.
    overviews: dict[int, bytes] = field(default_factory=dict)

    def call(
        self,
        step: str,
        task: str,
        fn: Callable[[], Any],
        *,
        inputs: dict[str, Any],
        image: int | None = None,
        question_index: int | None = None,
        box_index: int | None = None,
        dump: Callable[[Any], dict[str, Any]] | None = None,
    ) -> Any:
        """Run one toolkit call and append it to the trace; a failure is recorded, then
        raised so that the case stops there."""
        record = StepRecord(
            index=len(self.records),
            step=step,
            task=task,
            image=image,
            question_index=question_index,
            box_index=box_index,
            inputs={k: v for k, v in inputs.items() if v is not None},
        )
        start = time.perf_counter()
        try:
            result = fn()
        except BaseException as exc:
            record.status = "failed"
            record.error = error_dict(exc)
            record.seconds = round(time.perf_counter() - start, 3)
            self.records.append(record)
            raise
        record.seconds = round(time.perf_counter() - start, 3)
        if dump is not None:
            record.result = dump(result)
        else:
            record.result = result.model_dump(mode="json")
        overview = getattr(result, "overview_png", None)
        if isinstance(overview, bytes):
            self.overviews[record.index] = overview
        self.records.append(record)
        return result

    def skip(self, step: str, task: str, reason: str) -> None:
        """Record a step that had nothing to do."""
        self.records.append(
            StepRecord(
                index=len(self.records),
                step=step,
                task=task,
                status="skipped",
                inputs={"reason": reason},
            )
        )

    def boxes(self, image: int) -> list[dict[str, Any]]:
        """Boxes found so far on an image, by ground and detect steps."""
        return [
            box
            for r in self.records
            if r.status == "ok" and r.image == image and r.task in ("ground", "detect")
            for box in (r.result or {}).get("boxes", [])
        ]


class _Template(string.Formatter):
    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        return kwargs.get(key, "{" + str(key) + "}")


def _fill(text: str, **values: Any) -> str:
    try:
        return _Template().format(text, **values)
    except (ValueError, IndexError):  # stray braces: use the text as written
        return text


def _box_text(box: dict[str, Any]) -> str:
    return "[{:.0f}, {:.0f}, {:.0f}, {:.0f}]".format(*(box[k] for k in ("x1", "y1", "x2", "y2")))


def run_task_steps(steps: list[TaskStep], run: CaseRun) -> None:
    """Run a step list over a case, appending every call to ``run.records``."""
    for step in steps:
        _run_step(step, run)


def _images_of(step: TaskStep, run: CaseRun) -> list[int]:
    if step.image == "each":
        return list(range(len(run.images)))
    if step.image >= len(run.images):
        raise InputError(
            f"Step {step.display_name!r} asks for image {step.image}, but case "
            f"{run.case.id!r} has {len(run.images)}.",
            input=run.case.id,
            fix="Use an image index the case has, or image: each.",
        )
    return [step.image]


def _with_case_defaults(step: Any, run: CaseRun, **given: Any) -> dict[str, Any]:
    """The step's arguments; the case fills what the step leaves out (targets, labels,
    context), then the task's own defaults."""
    arguments = {**step.arguments(), **given}
    for p in step.kind.parameters:
        if p.name in _NOT_STEP_ARGUMENTS or arguments.get(p.name) is not None:
            continue
        from_case = getattr(run.case, p.name, None)
        if from_case:
            arguments[p.name] = from_case
        elif not p.required and p.default is not None:
            arguments[p.name] = p.default
    return arguments


def _run_step(step: Any, run: CaseRun) -> None:
    tk, case, name, task = run.toolkit, run.case, step.display_name, step.kind
    common: dict[str, Any] = {"cancel": run.cancel}
    if step.max_new_tokens:
        common["max_new_tokens"] = step.max_new_tokens
    if task.name == "summarize_report":
        text = step.report_text or "\n\n".join(
            (r.result or {}).get("report", "")
            for r in run.records
            if r.task == "report" and r.status == "ok"
        )
        if not text.strip():
            run.skip(name, step.task, "no report to summarise yet")
            return
        run.call(
            name,
            step.task,
            lambda: task.run(tk, text, **common),
            inputs={"report_text": text},
        )
        return
    if not task.takes_image:  # a question without an image: the step's, else the case's
        questions = (
            [(None, step.question, step.options)]
            if step.question
            else [(i, q.question, q.options) for i, q in enumerate(case.questions)]
        )
        if not questions:
            run.skip(name, step.task, "no question given and the case has none")
        for qi, question, options in questions:
            arguments = _with_case_defaults(
                step,
                run,
                question=_fill(question or "", context=case.context or ""),
                options=options,
            )
            run.call(
                name,
                step.task,
                functools.partial(task.run, tk, **arguments, **common),
                inputs=arguments,
                question_index=qi,
            )
        return
    if task.main == "question" and not step.question:
        _ask_case_questions(step, run, common)
        return
    for i in _images_of(step, run):
        image = run.images[i]
        values = {"context": case.context or "", "image": i}
        if step.for_each == "box":
            boxes = run.boxes(i)
            if not boxes:
                run.skip(name, step.task, f"no boxes on image {i} to ask about")
            for bi, box in enumerate(boxes):
                q = _fill(
                    step.question or "", box=_box_text(box), label=box.get("label", ""), **values
                )
                _ask(step, run, i, q, step.options, common, box_index=bi)
            continue
        if task.main == "question":
            _ask(step, run, i, _fill(step.question or "", **values), step.options, common)
            continue
        arguments = _with_case_defaults(step, run)
        run.call(
            name,
            step.task,
            functools.partial(task.run, tk, image, **arguments, **common),
            inputs=arguments,
            image=i,
        )


def _ask_case_questions(step: Any, run: CaseRun, common: dict[str, Any]) -> None:
    questions = list(enumerate(run.case.questions))
    if step.image != "each":
        questions = [(qi, q) for qi, q in questions if q.image == step.image]
    if not questions:
        if step.kind.name == "reason":
            for i in _images_of(step, run):
                _ask(step, run, i, _DEFAULT_REASON_QUESTION, None, common)
        else:
            run.skip(step.display_name, step.task, "no question given and the case has none")
        return
    for qi, q in questions:
        _ask(step, run, q.image, q.question, q.options, common, question_index=qi)


def _ask(
    step: Any,
    run: CaseRun,
    image_index: int,
    question: str,
    options: list[str] | None,
    common: dict[str, Any],
    *,
    question_index: int | None = None,
    box_index: int | None = None,
) -> None:
    task, image = step.kind, run.images[image_index]
    given: dict[str, Any] = {"question": question}
    if any(p.name == "options" for p in task.parameters):
        given["options"] = options
    arguments = _with_case_defaults(step, run, **given)
    run.call(
        step.display_name,
        step.task,
        lambda: task.run(run.toolkit, image, **arguments, **common),
        inputs=arguments,
        image=image_index,
        question_index=question_index,
        box_index=box_index,
    )
