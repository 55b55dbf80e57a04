"""TaskPanel: run one MedMO task in the background and show its result as it arrives.

The panel shows what is running and the text streamed so far, can be cancelled, and ends
with the result card (and, for box tasks, an :class:`ImageViewer` with the boxes; for a
volume sweep, a :class:`VolumeViewer`) or an error in red. The model call runs in a worker
thread, so the notebook stays usable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from medmo_agent.errors import InputError, MedmoError
from medmo_agent.tasks.declare import Task
from medmo_agent.tasks.registry import TASKS as REGISTRY
from medmo_agent.types import MedImage

from .jobs import Job, describe_error
from .render import error_html, escape, progress_html, result_html

__all__ = ["BOX_TASKS", "TASKS", "ModelLoadPanel", "TaskPanel", "call_task"]

#: The image tasks by every name users may type (the registry's names and aliases).
TASKS: dict[str, Task] = {
    name: task
    for task in REGISTRY.values()
    if task.takes_image
    for name in (task.name, *task.aliases)
}

#: Tasks whose results carry boxes.
BOX_TASKS = frozenset(name for name, task in TASKS.items() if task.boxes)


def call_task(
    toolkit: Any,
    task: str,
    image: Any,
    argument: str | Sequence[str] | None = None,
    *,
    on_text: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    max_new_tokens: int | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Run an image task by name through a toolkit.

    Args:
        toolkit: A :class:`~medmo_agent.toolkit.Toolkit` (or a remote one).
        task: An image task's name or alias: ``vqa`` (``ask``), ``ground``, ``detect``,
            ``report``, ``classify`` or ``reason``.
        image: The image (loaded, or any image argument the toolkit accepts).
        argument: The task's main argument: the question (vqa, reason), targets (ground),
            label (detect), candidate labels (classify) or clinical context (report).
        on_text: Called with each piece of generated text.
        cancel: Set to stop generation early.
        max_new_tokens: Cap on generated tokens (default: the toolkit's setting).
        options: The task's other arguments by name (e.g. ``slices`` for ``ground_volume``).

    Raises:
        InputError: An unknown task, or a question missing where one is needed.
    """
    spec = TASKS.get(task)
    if spec is None:
        raise InputError(
            f"Unknown task {task!r}.",
            input=task,
            fix=f"Use one of: {', '.join(TASKS)}.",
        )
    items = [argument] if isinstance(argument, str) else list(argument or [])
    items = [a.strip() for a in items if a and a.strip()]
    text = " ".join(items)
    common: dict[str, Any] = {"on_text": on_text, "cancel": cancel}
    if max_new_tokens is not None:
        common["max_new_tokens"] = max_new_tokens
    arguments: dict[str, Any] = {}
    if spec.main is not None:
        main = spec.parameter(spec.main)
        if main.required and not text:
            raise InputError(
                f"The {task} task needs a {main.name}.",
                input=main.name,
                fix=f"Type a {main.name}, e.g. %medmo {task} IMAGE Is there a pneumothorax?",
            )
        value = (items or None) if main.is_list else (text or None)
        if value is not None:
            arguments[main.name] = value
    arguments.update({k: v for k, v in (options or {}).items() if v is not None})
    return getattr(toolkit, spec.name)(image, **arguments, **common)


class TaskPanel(widgets.VBox):
    """Runs a task on an image in the background and shows the outcome.

    Args:
        task: ``ask``, ``ground``, ``detect``, ``report``, ``classify`` or ``reason``.
        image: Path, folder, data URI, ``medmo://`` handle or loaded image.
        argument: Question, targets, label or labels (see :func:`call_task`).
        image_opts: ``window``, ``slice``, ``frame``, ``plane`` for clinical images.
        max_new_tokens: Cap on generated tokens for this task (default: the session's).
        session: The notebook session (default: the kernel's).
        start: Start at once (default); otherwise call :meth:`start`.
        options: The task's other arguments by name (e.g. ``{"slices": "::2"}``).
    """

    def __init__(
        self,
        task: str,
        image: Any,
        argument: str | Sequence[str] | None = None,
        *,
        image_opts: dict[str, Any] | None = None,
        max_new_tokens: int | None = None,
        session: Any = None,
        start: bool = True,
        options: dict[str, Any] | None = None,
    ):
        from .session import get_session

        self.task = task
        self.options = dict(options or {})
        self.max_new_tokens = max_new_tokens
        self.image_arg = image
        self.argument = argument
        self.image_opts = {k: v for k, v in (image_opts or {}).items() if v is not None}
        self.session = session if session is not None else get_session()
        self.result: Any = None
        self.image: MedImage | None = None
        self.viewer: Any = None
        self.job: Job | None = None
        self._streamed: list[str] = []
        self._last_paint = 0.0

        self.status = widgets.HTML("")
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="warning", layout={"width": "100px"}
        )
        self.cancel_button.on_click(lambda _: self.cancel())
        self.cancel_button.layout.display = "none"
        self.result_html = widgets.HTML("")
        self.body = widgets.HBox([])
        super().__init__([widgets.HBox([self.status, self.cancel_button]), self.body])
        self.add_class("medmo-task-panel")
        if start:
            self.start()

    # -- running --------------------------------------------------------------------------

    def start(self) -> TaskPanel:
        """Start the task in a worker thread; returns at once."""
        self.status.value = progress_html(self._what(), 0.0)
        self.cancel_button.layout.display = ""
        self.job = Job(self._work, on_done=self._finish, name=self.task).start()
        return self

    def _what(self) -> str:
        if not self.session.loaded:
            return f"Loading {self.session.describe().split(' (')[0]} and running {self.task}"
        return f"Running {self.task}"

    def _work(self, cancel: threading.Event) -> Any:
        self.image = self.session.load(self.image_arg, **self.image_opts)
        toolkit = self.session.toolkit
        self._paint(force=True)
        return call_task(
            toolkit,
            self.task,
            self.image,
            self.argument,
            on_text=self._on_text,
            cancel=cancel,
            max_new_tokens=self.max_new_tokens,
            options=self.options,
        )

    def _on_text(self, piece: str) -> None:
        self._streamed.append(piece)
        self._paint()

    def _paint(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_paint < 0.1:  # at most ten repaints a second
            return
        self._last_paint = now
        elapsed = self.job.elapsed if self.job is not None else 0.0
        self.status.value = progress_html(self._what(), elapsed, "".join(self._streamed))

    def _finish(self, job: Job) -> None:
        self.cancel_button.layout.display = "none"
        if job.error is not None:
            self.status.value = error_html(describe_error(job.error))
            if self.image is not None:
                self._show_image([])
            return
        self.result = job.result
        note = " (cancelled)" if job.cancelled else ""
        self.status.value = (
            f"<span style='color:#57606a'>{self.task} done in {job.elapsed:.1f} s{note}</span>"
        )
        self.result_html.value = result_html(self.result, show_image=False)
        self._show_image(list(getattr(self.result, "boxes", []) or []))

    def _show_image(self, boxes: list[Any]) -> None:
        from .viewer import ImageViewer
        from .volume_result import is_volume_result

        if self.image is None:
            return
        if is_volume_result(self.result):
            from .volume_viewer import VolumeViewer

            # a sweep's boxes belong to many slices: the volume viewer places each one
            try:
                self.viewer = VolumeViewer(
                    self.result, self.image, loader=self.session.load, max_height=420
                )
            except MedmoError as exc:  # the result card still shows; say why no viewer
                self.status.value += error_html(describe_error(exc))
                self.viewer = ImageViewer(self.image, [], loader=self.session.load)
        else:
            title = f"{self.task}: {len(boxes)} box(es)" if self.task in BOX_TASKS else None
            self.viewer = ImageViewer(
                self.image, boxes, title=title, loader=self.session.load, max_height=420
            )
        self.viewer.layout.flex = "1 1 60%"
        self.result_html.layout.flex = "1 1 40%"
        self.result_html.layout.margin = "0 0 0 12px"
        self.body.children = [self.viewer, self.result_html]

    def cancel(self) -> None:
        """Stop the running task early (the text so far is kept)."""
        if self.job is not None:
            self.job.cancel()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the task ends and return its result (re-raises its error)."""
        if self.job is None:
            self.start()
        assert self.job is not None
        return self.job.wait(timeout)

    @property
    def error(self) -> BaseException | None:
        """The failure, if the task failed."""
        return self.job.error if self.job is not None else None


class ModelLoadPanel(widgets.HTML):
    """Loads the session's model in the background and says when it is ready."""

    def __init__(self, session: Any):
        super().__init__(progress_html(f"Loading {session.describe().split(' (')[0]}", 0.0))
        self.session = session
        self.job = Job(lambda _cancel: session.toolkit, on_done=self._finish, name="load")
        self.job.start()

    def _finish(self, job: Job) -> None:
        if job.error is not None:
            self.value = error_html(describe_error(job.error))
        else:
            self.value = (
                f"<span style='color:#1a7f37'>MedMO ready: {escape(self.session.describe())} "
                f"({job.elapsed:.1f} s)</span>"
            )

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the model is loaded (re-raises a load error)."""
        return self.job.wait(timeout)
