"""The notebook session: one model per kernel, loaded once and shared by every widget.

``%medmo_model`` configures it; magics, ``CaseExplorer`` and viewers all use
:func:`get_session`. The model can be local (any project backend: transformers, an
OpenAI-compatible server, the scripted test double) or a remote MCP server.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from medmo_agent.config import Settings
from medmo_agent.types import MedImage

__all__ = ["MedmoSession", "get_session", "reset_session"]


class MedmoSession:
    """Settings, an image resolver and (once asked for) the toolkit, for one kernel.

    Args:
        settings: Configuration; defaults to ``Settings.from_env()``, so ``MEDMO_MODEL``
            and friends choose the model.
        mcp_url: Use the tools of this MCP server (streamable HTTP URL) instead of a
            local model.
        mcp_token: Bearer token for that server.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        mcp_url: str | None = None,
        mcp_token: str | None = None,
    ):
        self.settings = settings if settings is not None else Settings.from_env()
        self.mcp_url = mcp_url
        self.mcp_token = mcp_token
        self._toolkit: Any = None
        self._planner_backend: Any = None
        self._resolver: Any = None
        self._lock = threading.RLock()
        self.load_seconds: float | None = None

    # -- configuration --------------------------------------------------------------------

    def configure(
        self,
        *,
        mcp_url: str | None = None,
        mcp_token: str | None = None,
        **overrides: Any,
    ) -> None:
        """Change the model (or switch to an MCP server); the next task loads it once.

        Args:
            mcp_url: Use this MCP server's tools; ``""`` switches back to a local model.
            mcp_token: Bearer token for the MCP server.
            **overrides: ``Settings`` fields (``model``, ``backend``, ``base_url``, ...).
        """
        settings = self.settings.replace(**overrides)
        with self._lock:
            self.close()
            self.settings = settings
            if mcp_url is not None:
                self.mcp_url = mcp_url or None
            if mcp_token is not None:
                self.mcp_token = mcp_token or None
            self._resolver = None

    @property
    def loaded(self) -> bool:
        """Whether the model (or remote connection) has been set up."""
        return self._toolkit is not None

    def describe(self) -> str:
        """One line saying which model answers."""
        if self.mcp_url:
            return f"MCP server {self.mcp_url}"
        s = self.settings
        where = f" at {s.base_url}" if s.base_url else ""
        state = "loaded" if self.loaded else "not loaded yet"
        return f"{s.model} ({s.backend} backend{where}; {state})"

    # -- images and the toolkit -----------------------------------------------------------

    @property
    def resolver(self) -> Any:
        """The image resolver (local files are read directly; caps from settings)."""
        with self._lock:
            if self._resolver is None:
                from medmo_agent.imaging.resolve import ImageResolver

                self._resolver = ImageResolver(self.settings)
            return self._resolver

    def load(self, image: Any, **opts: Any) -> MedImage:
        """Load an image argument (path, folder, data URI, handle or ``MedImage``).

        Keyword arguments ``window``, ``slice``, ``frame`` and ``plane`` choose what to
        render; ``None`` values are ignored.
        """
        if isinstance(image, os.PathLike):
            image = os.fspath(image)
        opts = {k: v for k, v in opts.items() if v is not None}
        return self.resolver.resolve(image, **opts)

    @property
    def toolkit(self) -> Any:
        """The toolkit, created (and the model loaded) on first use, once per kernel."""
        with self._lock:
            if self._toolkit is None:
                import time

                start = time.perf_counter()
                self._toolkit = self._make_toolkit()
                self.load_seconds = time.perf_counter() - start
            return self._toolkit

    @property
    def planner_backend(self) -> Any:
        """The local model that plans agent runs whose tools are an MCP server's.

        Created on first use and kept, once per kernel like the toolkit, so each
        ``%%medmo agent`` run does not load the model again.
        """
        with self._lock:
            if self._planner_backend is None:
                self._planner_backend = self._local_backend()
            return self._planner_backend

    def _local_backend(self) -> Any:
        from medmo_agent.backends import create_backend

        return create_backend(self.settings)

    def _make_toolkit(self) -> Any:
        if self.mcp_url:
            from .remote import RemoteToolkit

            return RemoteToolkit(self.mcp_url, token=self.mcp_token, loader=self.load)
        from medmo_agent.toolkit import Toolkit

        return Toolkit(self._local_backend(), self.settings, self.resolver)

    def close(self) -> None:
        """Release the model (and the planner's); the next task loads it again."""
        with self._lock:
            toolkit, self._toolkit = self._toolkit, None
            planner, self._planner_backend = self._planner_backend, None
        for backend in (getattr(toolkit, "backend", None), planner):
            if backend is not None:
                backend.close()


_session: MedmoSession | None = None
_session_lock = threading.Lock()


def get_session() -> MedmoSession:
    """The kernel's session, created from the environment on first use."""
    global _session
    with _session_lock:
        if _session is None:
            _session = MedmoSession()
        return _session


def reset_session(session: MedmoSession | None = None) -> MedmoSession:
    """Replace the kernel's session (closing the old model); returns the new one."""
    global _session
    with _session_lock:
        old, _session = _session, session if session is not None else MedmoSession()
    if old is not None and old is not _session:
        old.close()
    return _session
