"""MedMO in JupyterLab: magics and widgets that show images, boxes and reasoning traces.

Load with ``%load_ext jupyter_ext``, then ``%medmo_model``, ``%medmo TASK IMAGE ...`` and
``%%medmo agent IMAGE``. The widgets can also be used directly::

    from jupyter_ext import CaseExplorer, ImageViewer, TraceViewer, VolumeViewer
    CaseExplorer("data/chest.png")

The model is loaded once per kernel (:func:`get_session`) and every model call runs in a
background thread, so the notebook stays usable while MedMO works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent_panel import AgentPanel
    from .explorer import CaseExplorer
    from .panels import TaskPanel
    from .session import MedmoSession, get_session
    from .trace_viewer import TraceViewer
    from .viewer import ImageViewer
    from .volume_viewer import VolumeViewer

__all__ = [
    "AgentPanel",
    "CaseExplorer",
    "ImageViewer",
    "MedmoSession",
    "TaskPanel",
    "TraceViewer",
    "VolumeViewer",
    "get_session",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_LAZY = {
    "AgentPanel": "agent_panel",
    "CaseExplorer": "explorer",
    "ImageViewer": "viewer",
    "MedmoSession": "session",
    "TaskPanel": "panels",
    "TraceViewer": "trace_viewer",
    "VolumeViewer": "volume_viewer",
    "get_session": "session",
}


def __getattr__(name: str) -> Any:
    # widgets pull in ipywidgets/anywidget: import them only when asked for
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%medmo_model`` and ``%medmo`` magics (``%load_ext jupyter_ext``)."""
    from .magics import MedmoMagics

    ipython.register_magics(MedmoMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo: the session and its model stay loaded until the kernel ends."""
