"""The plumbing under :class:`medmo_agent.toolkit.Toolkit`: settings, the lazily created
backend, image resolution, token limits, and turning a completion into a result."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from .backends.base import Completion, GenerationRequest
from .config import Settings
from .errors import InputError, LimitExceededError
from .imaging.geometry import model_input_size
from .tasks.params import Generation, View
from .tasks.registry import TASKS
from .tasks.results import GroundingResult, ImageRef, TaskResult, Usage
from .text_limits import check_text_arguments
from .types import MedImage, Message

if TYPE_CHECKING:
    from collections.abc import Callable

    from .backends.base import Backend
    from .imaging.resolve import ImageResolver

__all__ = ["TOOL_NAMES", "ImageInput", "ToolkitCore"]

#: What an image argument accepts: a file or folder path, a ``data:image/...;base64,`` URI,
#: a ``medmo://images/<id>`` handle of an image already held, or a loaded image.
ImageInput = str | os.PathLike[str] | MedImage

#: A task's own result model: ``finish`` and ``boxes`` hand back the type they were given.
R = TypeVar("R", bound=TaskResult)
G = TypeVar("G", bound=GroundingResult)

#: Tool name -> toolkit method name, in the order tools are listed (the task registry's).
TOOL_NAMES: dict[str, str] = {name: name for name in TASKS}


class ToolkitCore:
    """Shared state and helpers of the toolkit; the tasks live in ``Toolkit``.

    Args:
        backend: The model; defaults to ``create_backend(settings)`` on first use.
        settings: Configuration; defaults to ``Settings.from_env()``.
        resolver: Turns image arguments into images, enforcing allowed folders;
            defaults to one that reads any local path.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        settings: Settings | None = None,
        resolver: ImageResolver | None = None,
    ):
        self.settings = settings if settings is not None else Settings.from_env()
        self._backend = backend
        self._backend_lock = threading.Lock()
        if resolver is None:
            from .imaging.resolve import ImageResolver

            resolver = ImageResolver(self.settings)
        self.resolver = resolver

    @property
    def backend(self) -> Backend:
        """The backend, created from the settings on first use (this loads the model)."""
        if self._backend is None:
            with self._backend_lock:
                if self._backend is None:
                    from .backends import create_backend

                    self._backend = create_backend(self.settings)
        return self._backend

    def info(self) -> dict[str, Any]:
        """What answers: backend, model and device (creates the backend if needed)."""
        return self.backend.info()

    def tools(self) -> list[Callable[..., TaskResult]]:
        """The methods surfaces expose as tools, named as in :data:`TOOL_NAMES`."""
        return [getattr(self, method) for method in TOOL_NAMES.values()]

    def load(
        self,
        image: ImageInput,
        *,
        window: str | None = None,
        slice: int | None = None,
        frame: int | None = None,
        plane: str | None = None,
    ) -> MedImage:
        """Load an image as the model will see it, with its metadata and a reusable handle.

        Args:
            image: A file path (PNG, JPEG, TIFF, a DICOM file, a DICOM series folder, a
                NIfTI volume), a ``data:image/png;base64,...`` URI, a ``medmo://images/<id>``
                handle, or a loaded image.
            window: CT/MR intensity window: a preset (lung, mediastinum, bone, brain,
                abdomen, liver), ``"WIDTH/LEVEL"``, ``"file"`` or ``"auto"``.
            slice: Slice index of a volume or DICOM series (default: the middle one).
            frame: Frame index of a multi-frame DICOM (default: the middle one).
            plane: ``axial``, ``coronal`` or ``sagittal`` for volumes.

        Raises:
            ImageLoadError: The image cannot be read.
            AccessDeniedError: A path outside the allowed folders.
            NotFoundError: An unknown handle.
        """
        if image is None or (isinstance(image, str) and not image.strip()):
            raise InputError(
                "No image given.",
                input="image",
                fix="Pass a file path, a data:image/...;base64, URI or a medmo://images/ handle.",
            )
        return self.resolver.resolve(image, window=window, slice=slice, frame=frame, plane=plane)

    def check_text(self, **arguments: Any) -> None:
        """Refuse over-long text arguments (see :mod:`medmo_agent.text_limits`)."""
        # First thing in every task: a megabyte of text must be refused before the image
        # is loaded or anything is tokenised.
        check_text_arguments(self.settings, **arguments)

    def check_tokens(self, max_new_tokens: int | None) -> int | None:
        """``max_new_tokens`` checked: a whole number from 1 to the configured limit."""
        if max_new_tokens is None:
            return None
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise InputError(
                f"max_new_tokens must be a whole number, not {max_new_tokens!r}.",
                input="max_new_tokens",
                fix="Pass a positive integer, e.g. 512, or leave it out for the default.",
            )
        if max_new_tokens < 1:
            raise InputError(
                f"max_new_tokens must be at least 1, got {max_new_tokens}.",
                input="max_new_tokens",
                fix="Pass a positive integer, e.g. 512, or leave it out for the default.",
            )
        limit = self.settings.max_new_tokens_limit
        if max_new_tokens > limit:
            raise LimitExceededError(
                f"max_new_tokens={max_new_tokens} is over the limit of {limit}.",
                input="max_new_tokens",
                fix=f"Ask for at most {limit} new tokens, or raise MEDMO_MAX_NEW_TOKENS_LIMIT.",
            )
        return max_new_tokens

    def generate(self, messages: list[Message], gen: Generation) -> Completion:
        """Ask the backend to answer ``messages``."""
        request = GenerationRequest(messages=messages, max_new_tokens=gen.max_new_tokens)
        return self.backend.generate(request, on_text=gen.on_text, cancel=gen.cancel)

    @staticmethod
    def finish(result: R, completion: Completion, image: MedImage | None) -> R:
        """Fill in what every result carries: model, backend, usage, image, notes."""
        result.model = completion.model
        result.backend = completion.backend
        result.usage = Usage(
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            seconds=round(completion.total_seconds, 4),
            first_token_seconds=completion.first_token_seconds,
        )
        if image is not None:
            result.image = ImageRef(handle=image.handle, meta=image.meta)
        if completion.finish_reason == "length":
            result.notes.append(
                "The answer reached max_new_tokens and may be cut off; retry with a larger "
                "max_new_tokens for the full answer."
            )
        elif completion.finish_reason == "cancelled":
            result.notes.append("Generation was cancelled; the answer is partial.")
        return result

    def _input_size(self, completion: Completion, image: MedImage) -> tuple[int, int]:
        if completion.image_input_sizes:
            width, height = completion.image_input_sizes[0]
            return width, height
        # a backend that cannot report it: the processor's resize rule gives the same size
        return model_input_size(image.size, self.settings.min_pixels, self.settings.max_pixels)

    def boxes(
        self,
        build: Callable[[MedImage], list[Message]],
        parse: Callable[..., G],
        image: ImageInput,
        view: View,
        gen: Generation,
        **parse_kwargs: Any,
    ) -> G:
        """Run a box task: load, generate, parse boxes into original-image pixels."""
        img = self.load(image, **view.as_dict())
        completion = self.generate(build(img), gen)
        result = parse(
            completion.text,
            input_size=self._input_size(completion, img),
            original_size=img.size,
            pixel_spacing=img.meta.pixel_spacing,
            **parse_kwargs,
        )
        if not completion.image_input_sizes:
            result.notes.append("The backend did not report the model-input size; computed it.")
        return self.finish(result, completion, img)
