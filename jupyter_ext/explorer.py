"""CaseExplorer: pick an image, look at it, and run any MedMO task on it with buttons.

The image sits on the left in an :class:`ImageViewer` (boxes from grounding and
detection land on it); result cards collect on the right, newest first. The model is the
notebook session's, loaded once per kernel; every task runs in the background.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from medmo_agent.imaging.sources import IMAGE_EXTENSIONS
from medmo_agent.tasks.registry import TASKS as REGISTRY
from medmo_agent.tasks.registry import find_task

from .jobs import Job, describe_error
from .panels import BOX_TASKS, call_task
from .render import error_html, escape, progress_html, result_html

__all__ = ["CaseExplorer"]

# Presentation only: the buttons are the registry's image tasks, each with an icon.
_ICONS = {
    "vqa": "question",
    "ground": "crosshairs",
    "detect": "th",
    "report": "file-text",
    "classify": "tags",
    "reason": "lightbulb-o",
}
_BUTTONS = tuple(
    (task.name, (task.aliases or (task.name,))[0].capitalize(), _ICONS.get(task.name, "play"))
    for task in REGISTRY.values()
    if task.takes_image
)


class CaseExplorer(widgets.VBox):
    """Explore one case: image on the left, tasks and results on the right.

    Args:
        image: An image to open at once (path, DICOM series folder, NIfTI file, ...).
        folder: Where the file chooser starts (default: the image's folder or the
            working directory).
        session: The notebook session (default: the kernel's).
    """

    def __init__(
        self,
        image: str | os.PathLike[str] | None = None,
        *,
        folder: str | os.PathLike[str] | None = None,
        session: Any = None,
    ):
        from .session import get_session

        self.session = session if session is not None else get_session()
        self.viewer: Any = None
        self.job: Job | None = None
        self.results: list[Any] = []
        self._streamed: list[str] = []

        start = Path(folder) if folder else (Path(image).parent if image else Path.cwd())
        self.folder = start.expanduser().resolve()
        self.path = widgets.Text(
            value=str(image or ""),
            placeholder="image path, DICOM series folder or NIfTI file",
            layout=widgets.Layout(flex="1 1 auto"),
        )
        self.open_button = widgets.Button(description="Open", icon="folder-open")
        self.browse_button = widgets.ToggleButton(description="Browse", icon="list")
        self.upload = widgets.FileUpload(
            accept=",".join(IMAGE_EXTENSIONS), multiple=False, description="Upload"
        )
        self.chooser = widgets.Select(rows=8, layout=widgets.Layout(width="100%"))
        self.chooser.layout.display = "none"
        self.question = widgets.Textarea(
            placeholder="Question (Ask, Reason) or clinical context (Report)",
            layout=widgets.Layout(width="100%", height="60px"),
        )
        self.targets = widgets.Text(
            placeholder="targets or labels, comma-separated (Ground, Detect, Classify)",
            layout=widgets.Layout(width="100%"),
        )
        self.buttons: dict[str, widgets.Button] = {}
        for task, label, icon in _BUTTONS:
            button = widgets.Button(description=label, icon=icon, layout={"width": "100px"})
            button.on_click(lambda _b, t=task: self.run(t))
            for name in (task, *REGISTRY[task].aliases):  # also under the task's other names
                self.buttons[name] = button
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="warning", layout={"width": "100px"}
        )
        self.cancel_button.on_click(lambda _: self.cancel())
        self.cancel_button.layout.display = "none"
        self.status = widgets.HTML("")
        self.model_info = widgets.HTML(self._model_line())
        self.result_box = widgets.VBox([], layout=widgets.Layout(max_height="640px"))
        self.result_box.layout.overflow = "auto"
        self.image_box = widgets.VBox(
            [widgets.HTML("<i>Open an image to start.</i>")],
            layout=widgets.Layout(flex="1 1 58%"),
        )

        self.open_button.on_click(lambda _: self.open_image(self.path.value))
        self.browse_button.observe(self._toggle_chooser, names="value")
        self.chooser.observe(self._on_choose, names="value")
        self.upload.observe(self._on_upload, names="value")

        button_rows = [
            widgets.HBox([self.buttons[t] for t, _, _ in _BUTTONS[:3]]),
            widgets.HBox([self.buttons[t] for t, _, _ in _BUTTONS[3:]]),
        ]
        side = widgets.VBox(
            [
                self.model_info,
                self.question,
                self.targets,
                *button_rows,
                widgets.HBox([self.status, self.cancel_button]),
                self.result_box,
            ],
            layout=widgets.Layout(flex="1 1 42%", margin="0 0 0 12px"),
        )
        super().__init__(
            [
                widgets.HBox([self.path, self.open_button, self.browse_button, self.upload]),
                self.chooser,
                widgets.HBox([self.image_box, side]),
            ]
        )
        self.add_class("medmo-case-explorer")
        self._set_buttons(False)
        if image:
            self.open_image(image)

    # -- picking an image -----------------------------------------------------------------

    def open_image(self, image: str | os.PathLike[str]) -> bool:
        """Load and show an image; returns whether it worked (errors show in red)."""
        from .viewer import ImageViewer

        text = os.fspath(image).strip()
        if not text:
            self.status.value = error_html("No image given. Type a path or pick a file.")
            return False
        try:
            loaded = self.session.load(text)
        except Exception as exc:  # shown in the widget; the kernel stays usable
            self.status.value = error_html(describe_error(exc))
            return False
        self.path.value = text
        self.viewer = ImageViewer(loaded, loader=self.session.load, max_height=460)
        self.image_box.children = [self.viewer]
        self.status.value = ""
        self._set_buttons(True)
        return True

    def _toggle_chooser(self, change: dict[str, Any]) -> None:
        self.chooser.layout.display = "" if change["new"] else "none"
        if change["new"]:
            self._list_folder(self.folder)

    def _list_folder(self, folder: Path) -> None:
        try:
            entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
        except OSError as exc:
            self.status.value = error_html(f"Cannot list {folder}: {exc}.")
            return
        self.folder = folder
        options: list[tuple[str, str]] = [(f"⬆ {folder}", str(folder.parent))]
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                options.append((f"📁 {entry.name}/", str(entry)))
            elif _is_image(entry.name):
                options.append((f"🖼 {entry.name}", str(entry)))
        self.chooser.unobserve(self._on_choose, names="value")
        self.chooser.options = options
        self.chooser.value = None
        self.chooser.observe(self._on_choose, names="value")

    def _on_choose(self, change: dict[str, Any]) -> None:
        chosen = change["new"]
        if not chosen:
            return
        path = Path(chosen)
        if path.is_dir() and not _is_series(path):
            self._list_folder(path)
            return
        self.open_image(str(path))

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        target = Path(tempfile.mkdtemp(prefix="medmo-upload-")) / Path(item["name"]).name
        target.write_bytes(bytes(item["content"]))
        self.open_image(str(target))

    # -- running tasks --------------------------------------------------------------------

    def _set_buttons(self, enabled: bool) -> None:
        for button in self.buttons.values():
            button.disabled = not enabled

    def _model_line(self) -> str:
        return (
            f"<span style='color:#57606a;font-size:12px'>{escape(self.session.describe())}</span>"
        )

    def run(self, task: str) -> Job | None:
        """Run a task on the image shown (its current slice and window) in the background.

        Returns the job, or ``None`` when there is no image or a task is already running.
        """
        if self.viewer is None:
            self.status.value = error_html("Open an image first.")
            return None
        if self.job is not None and not self.job.done:
            return None
        image = self.viewer.image
        window = self.viewer.window
        # the task's main argument: free text from the question box, names from the
        # comma-separated targets box
        spec = find_task(task)
        main = spec.parameter(spec.main or "question")
        names = [t.strip() for t in self.targets.value.split(",") if t.strip()]
        argument: Any
        if main.is_list:
            argument = names
        elif main.name in ("question", "context"):
            argument = self.question.value.strip()
        else:
            argument = names[0] if names else None
        self._streamed = []
        self._set_buttons(False)
        self.cancel_button.layout.display = ""
        self.status.value = progress_html(f"Running {task}", 0.0)

        def work(cancel: threading.Event) -> Any:
            shown = image
            if window is not None and image.meta.window is not None:
                loaded = (image.meta.window.width, image.meta.window.level)
                if loaded != window:  # the model sees what the user sees
                    shown = self.session.load(image, window=f"{window[0]:g}/{window[1]:g}")
            toolkit = self.session.toolkit
            return call_task(toolkit, task, shown, argument, on_text=on_text, cancel=cancel)

        def on_text(piece: str) -> None:
            self._streamed.append(piece)
            elapsed = self.job.elapsed if self.job is not None else 0.0
            self.status.value = progress_html(f"Running {task}", elapsed, "".join(self._streamed))

        self.job = Job(work, on_done=lambda job: self._finish(task, job), name=task).start()
        return self.job

    def _finish(self, task: str, job: Job) -> None:
        self.cancel_button.layout.display = "none"
        self._set_buttons(True)
        self.model_info.value = self._model_line()
        if job.error is not None:
            self.status.value = error_html(describe_error(job.error))
            return
        result = job.result
        self.results.append(result)
        self.status.value = f"<span style='color:#57606a'>{task} done in {job.elapsed:.1f} s</span>"
        if task in BOX_TASKS and self.viewer is not None:
            self.viewer.set_boxes(result.boxes)
        card = widgets.HTML(result_html(result, show_image=False))
        self.result_box.children = (card, *self.result_box.children)

    def cancel(self) -> None:
        """Stop the running task."""
        if self.job is not None:
            self.job.cancel()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the running task ends; returns its result (re-raises its error)."""
        if self.job is None:
            return None
        return self.job.wait(timeout)


def _is_image(name: str) -> bool:
    lower = name.lower()
    return any(lower.endswith(ext) for ext in IMAGE_EXTENSIONS)


def _is_series(folder: Path) -> bool:
    """A folder of DICOM files opens as one series rather than being browsed into."""
    try:
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError:
        return False
    return bool(files) and all(p.suffix.lower() in ("", ".dcm", ".ima") for p in files)
