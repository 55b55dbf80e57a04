"""MedMO Agent: MedMO as tools for agents, notebooks and scripted case reviews.

The public API, importable from the package itself::

    from medmo_agent import Settings, Toolkit, create_backend, load_image

    settings = Settings.from_env()  # MEDMO_* variables and .env
    toolkit = Toolkit(create_backend(settings), settings)
    result = toolkit.ground(load_image("chest_ct/", window="lung"), ["nodule"])
    print(result.boxes)

Names are imported on first use, so ``import medmo_agent`` stays light (no torch,
transformers or LangChain); the LangChain surface lives in :mod:`medmo_agent.agent`.
"""

# Only modules and private names here besides the public API: a test checks that every
# public attribute of the package is listed in __all__.
import importlib
import typing

__version__ = "0.1.0"

if typing.TYPE_CHECKING:  # what type checkers and editors see; keep in step with _WHERE
    from .backends import create_backend
    from .backends.base import Backend, Completion, GenerationRequest
    from .config import Settings
    from .errors import (
        AccessDeniedError,
        BackendError,
        BackendUnavailableError,
        ConfigError,
        GPUOutOfMemoryError,
        ImageLoadError,
        ImageTooLargeError,
        InputError,
        LimitExceededError,
        MedmoError,
        ModelLoadError,
        NotFoundError,
    )
    from .imaging import ImageResolver, draw_boxes, load_image
    from .tasks.declare import Task
    from .tasks.registry import TASKS, find_task
    from .tasks.results import (
        ClassificationResult,
        DetectionResult,
        GroundingResult,
        ImageRef,
        ReasoningResult,
        ReportResult,
        SummaryResult,
        TaskResult,
        TextQAResult,
        Usage,
        VQAResult,
    )
    from .toolkit import Toolkit
    from .types import Box, ImageMeta, ImagePart, MedImage, Message, TextPart, WindowInfo

#: Public name -> the module that defines it (relative to this package).
_WHERE = {
    # the toolkit and its configuration
    "Toolkit": "toolkit",
    "Settings": "config",
    # models
    "create_backend": "backends",
    "Backend": "backends.base",
    "Completion": "backends.base",
    "GenerationRequest": "backends.base",
    # images
    "load_image": "imaging",
    "ImageResolver": "imaging",
    "draw_boxes": "imaging",
    "Box": "types",
    "ImageMeta": "types",
    "ImagePart": "types",
    "MedImage": "types",
    "Message": "types",
    "TextPart": "types",
    "WindowInfo": "types",
    # tasks and their results
    "TASKS": "tasks.registry",
    "find_task": "tasks.registry",
    "Task": "tasks.declare",
    "ClassificationResult": "tasks.results",
    "DetectionResult": "tasks.results",
    "GroundingResult": "tasks.results",
    "ImageRef": "tasks.results",
    "ReasoningResult": "tasks.results",
    "ReportResult": "tasks.results",
    "SummaryResult": "tasks.results",
    "TaskResult": "tasks.results",
    "TextQAResult": "tasks.results",
    "Usage": "tasks.results",
    "VQAResult": "tasks.results",
    # errors
    "AccessDeniedError": "errors",
    "BackendError": "errors",
    "BackendUnavailableError": "errors",
    "ConfigError": "errors",
    "GPUOutOfMemoryError": "errors",
    "ImageLoadError": "errors",
    "ImageTooLargeError": "errors",
    "InputError": "errors",
    "LimitExceededError": "errors",
    "MedmoError": "errors",
    "ModelLoadError": "errors",
    "NotFoundError": "errors",
}

__all__ = [
    "TASKS",
    "AccessDeniedError",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Box",
    "ClassificationResult",
    "Completion",
    "ConfigError",
    "DetectionResult",
    "GPUOutOfMemoryError",
    "GenerationRequest",
    "GroundingResult",
    "ImageLoadError",
    "ImageMeta",
    "ImagePart",
    "ImageRef",
    "ImageResolver",
    "ImageTooLargeError",
    "InputError",
    "LimitExceededError",
    "MedImage",
    "MedmoError",
    "Message",
    "ModelLoadError",
    "NotFoundError",
    "ReasoningResult",
    "ReportResult",
    "Settings",
    "SummaryResult",
    "Task",
    "TaskResult",
    "TextPart",
    "TextQAResult",
    "Toolkit",
    "Usage",
    "VQAResult",
    "WindowInfo",
    "__version__",
    "create_backend",
    "draw_boxes",
    "find_task",
    "load_image",
]


def __getattr__(name: str) -> typing.Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
