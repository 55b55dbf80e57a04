"""TraceViewer: the steps of an agent or workflow run as a timeline that fills in live.

Each step is a collapsible row (number, kind, tool, workflow step, time); opened, it shows
the arguments, the result card and the image with the step's boxes. The conclusion is
highlighted at the end. Feed it a finished :class:`~medmo_agent.agent.trace.Trace` or
register :meth:`TraceViewer.add_step` with ``trace.on_step`` to watch a run as it goes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from medmo_agent.agent.render import conclusion_html, step_body_html, step_title
from medmo_agent.volume.tables import is_volume_data

from .jobs import describe_error
from .render import error_html, escape, progress_html

__all__ = ["TraceViewer"]


class TraceViewer(widgets.VBox):
    """A live timeline of a run's steps.

    Args:
        trace: A finished or running trace to show now (its later steps are not
            followed; use :meth:`follow` for that).
        title: A heading (default: the trace's question).
        load_image: Loads an image handle for step overlays (default: the notebook
            session's loader). Steps whose image cannot be loaded show their boxes as a
            list only.
        include_paths: Name image paths in step bodies; ``None`` follows
            ``MEDMO_INCLUDE_PATHS`` (otherwise paths show as labels, as in saved traces:
            widget state is saved with the notebook). Images are still loaded from the
            real paths.
    """

    def __init__(
        self,
        trace: Any = None,
        *,
        title: str | None = None,
        load_image: Callable[[str], Any] | None = None,
        include_paths: bool | None = None,
    ):
        self._load_image = load_image
        self._include_paths = include_paths
        self._run_image = getattr(trace, "image", None)
        self._images: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self.steps: list[Any] = []
        self.step_widgets: list[widgets.Accordion] = []
        self.header = widgets.HTML("")
        self.status = widgets.HTML("")
        self.timeline = widgets.VBox([])
        self.conclusion = widgets.HTML("")
        super().__init__([self.header, self.status, self.timeline, self.conclusion])
        self.add_class("medmo-trace-viewer")
        self.set_title(title or str(getattr(trace, "question", "") or ""))
        if trace is not None:
            for step in list(trace.steps):
                self.add_step(step)
            if trace.final is None and trace.stopped is None:
                self.status.value = progress_html("Running", 0.0)

    # -- feeding --------------------------------------------------------------------------

    def set_title(self, title: str) -> None:
        """Set the heading (the question asked)."""
        self.header.value = f"<b>{escape(title)}</b>" if title else ""

    def follow(self, trace: Any) -> None:
        """Show the steps already in ``trace`` and every step it records from now on."""
        with self._lock:
            known = len(self.steps)
        for step in list(trace.steps)[known:]:
            self.add_step(step)
        self._run_image = self._run_image or getattr(trace, "image", None)
        trace.on_step(self.add_step)

    def add_step(self, step: Any) -> None:
        """Append one step (thread-safe; called from the run's thread)."""
        with self._lock:
            if any(s.number == step.number for s in self.steps):
                return
            self.steps.append(step)
            if step.kind == "final":
                self._show_final(step)
                return
            row = widgets.Accordion(children=[widgets.HTML("")])
            row.set_title(0, self._title(step))
            row.selected_index = None
            row.add_class("medmo-step")
            row.add_class(f"medmo-step-{step.kind}")
            # the body is built only when opened: images cost nothing until looked at
            row.observe(lambda change, s=step, r=row: self._open(change, s, r), "selected_index")
            self.step_widgets.append(row)
            self.timeline.children = (*self.timeline.children, row)
            self.status.value = progress_html(
                f"Running — step {step.number}: {self._title(step)}",
                time.perf_counter() - self._t0,
            )

    def finish(self, trace: Any = None, error: BaseException | None = None) -> None:
        """Mark the run as ended; show its error in red if it failed."""
        if error is not None:
            self.status.value = error_html(describe_error(error))
        elif trace is not None and trace.stopped:
            self.status.value = error_html(f"The run stopped early: {trace.stopped}.")
        else:
            seconds = getattr(trace, "seconds", 0.0) or time.perf_counter() - self._t0
            tokens = getattr(trace, "tokens", (0, 0))
            self.status.value = (
                f"<span style='color:#57606a'>{len(self.steps)} steps in {seconds:.1f} s · "
                f"{tokens[0]}+{tokens[1]} tokens</span>"
            )
        if (
            trace is not None
            and trace.final is not None
            and not any(s.kind == "final" for s in self.steps)
        ):
            self.add_step(trace.final)

    # -- rendering ------------------------------------------------------------------------

    @staticmethod
    def _title(step: Any) -> str:
        return step_title(step, details=True)

    def _open(self, change: dict[str, Any], step: Any, row: widgets.Accordion) -> None:
        if change["new"] != 0:
            return
        body = row.children[0]
        if isinstance(body, widgets.HTML) and not body.value:
            try:
                body.value = self.step_html(step)
            except Exception as exc:  # a rendering failure shows in the row, not the kernel
                body.value = error_html(describe_error(exc))
                return
            viewer = self.volume_viewer(step)
            if viewer is not None:
                row.children = [widgets.VBox([viewer, body])]

    def volume_viewer(self, step: Any) -> Any:
        """A :class:`~jupyter_ext.volume_viewer.VolumeViewer` for a volume step's result over
        its volume, or ``None`` (not a volume step, or its volume cannot be read: the step's
        body still shows the overview strip and the findings table)."""
        from medmo_agent.errors import MedmoError

        if step.kind != "tool_result" or not is_volume_data(step.result) or not step.image:
            return None
        from .volume_viewer import VolumeViewer

        try:
            # the session's loader: it re-slices (a trace's loader may take a handle only)
            return VolumeViewer(step.result, step.image, max_height=420)
        except MedmoError:  # the volume moved or is another one: the HTML body stands
            return None

    def expand_all(self) -> None:
        """Open every step."""
        for row in self.step_widgets:
            row.selected_index = 0

    def step_html(self, step: Any) -> str:
        """The body of a step: arguments, text, result card, image with boxes, timings."""
        drawn = step.boxes or is_volume_data(step.result)
        image = self._image(step.image) if step.kind == "tool_result" and drawn else None
        return step_body_html(self._shown(step), image=image)

    def _shown(self, step: Any) -> Any:
        """The step as it may be shown: paths as labels unless the user chose paths."""
        hidden = tuple(p for p in (self._run_image, step.image) if p)
        return step.shown(self._include_paths, hidden) if hasattr(step, "shown") else step

    def _loader(self) -> Callable[..., Any]:
        if self._load_image is not None:
            return self._load_image
        from .session import get_session

        return get_session().load

    def _image(self, handle: str | None) -> Any:
        if not handle:
            return None
        if handle not in self._images:
            load = self._loader()
            try:
                self._images[handle] = load(handle)
            except Exception:  # the boxes are still listed in the result card
                self._images[handle] = None
        return self._images[handle]

    def _show_final(self, step: Any) -> None:
        self.conclusion.value = conclusion_html(self._shown(step))
