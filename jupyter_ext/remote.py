"""RemoteToolkit: the toolkit's task methods, answered by a MedMO MCP server.

``%medmo_model --mcp http://host:8000/mcp`` makes the notebook use a server started with
``medmo serve --http`` (on a GPU machine, say) instead of a local model. Each call opens
a short streamable-HTTP session, calls the tool and validates its structured content
into the same result models the local toolkit returns, so every widget works unchanged.
Image paths are read by the server: they must lie inside its ``--allow-dir`` folders;
images loaded in the notebook (not from a file) travel as PNG data URIs.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from typing import Any

from medmo_agent.errors import BackendError, BackendUnavailableError
from medmo_agent.tasks.declare import Task
from medmo_agent.tasks.registry import TASKS
from medmo_agent.types import MedImage

__all__ = ["LocalServer", "RemoteToolkit", "start_local_server"]


class RemoteToolkit:
    """Calls a MedMO MCP server's tools and returns the toolkit's result models.

    Args:
        url: The server's streamable-HTTP endpoint, e.g. ``http://127.0.0.1:8000/mcp``.
        token: Bearer token, when the server requires one.
        loader: Loads images for display in the notebook (the session's loader).
        timeout_s: Seconds to wait for one tool call.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        loader: Callable[..., MedImage] | None = None,
        timeout_s: float = 600.0,
    ):
        self.url = url
        self.token = token
        self.timeout_s = timeout_s
        self._loader = loader
        self.backend = None  # nothing to release locally

    # -- plumbing -------------------------------------------------------------------------

    def _image_arg(self, image: Any) -> str:
        if isinstance(image, MedImage):
            handle = image.handle
            if handle and os.path.exists(handle):
                return os.path.abspath(handle)
            from medmo_agent.imaging.overlay import to_png_bytes

            data = base64.b64encode(to_png_bytes(image)).decode("ascii")
            return f"data:image/png;base64,{data}"
        text = os.fspath(image)
        return os.path.abspath(text) if os.path.exists(text) else text

    async def _call_async(self, name: str, arguments: dict[str, Any]) -> Any:
        from mcp import Client

        server: Any = self.url
        if self.token:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.token}"})
            server = streamable_http_client(self.url, http_client=http)
        async with Client(server, read_timeout_seconds=self.timeout_s) as client:
            return await client.call_tool(name, arguments)

    def call(self, name: str, cancel: threading.Event | None = None, **arguments: Any) -> Any:
        """Call one tool and return its result model.

        Raises:
            BackendUnavailableError: The server cannot be reached.
            BackendError: The tool reported an error (its message is kept).
        """
        import asyncio

        if cancel is not None and cancel.is_set():
            raise BackendError(f"The {name} call was cancelled before it started.")
        arguments = {k: v for k, v in arguments.items() if v is not None}
        try:
            outcome = asyncio.run(self._call_async(name, arguments))
        except Exception as exc:
            raise BackendUnavailableError(
                f"Cannot reach the MCP server at {self.url}: {exc}.",
                input=self.url,
                fix="Start it with `medmo serve --http --allow-dir DIR` and check the URL "
                "(and --token, if the server needs one).",
            ) from exc
        text = "".join(getattr(c, "text", "") for c in outcome.content or [])
        if outcome.is_error:
            raise BackendError(text or f"The server's {name} tool failed.", input=name)
        data = outcome.structured_content
        if isinstance(data, dict) and set(data) == {"result"}:
            data = data["result"]
        return TASKS[name].result.model_validate(data)

    def load(self, image: Any, **opts: Any) -> MedImage:
        """Load an image locally, for display."""
        if self._loader is None:
            from medmo_agent.imaging import load_image

            return load_image(image, **{k: v for k, v in opts.items() if v is not None})
        return self._loader(image, **opts)

    def info(self) -> dict[str, Any]:
        """Where the tools run."""
        return {"backend": "mcp", "url": self.url}

    # the task methods, generated below from the task registry, as in Toolkit


def _remote_method(task: Task) -> Callable[..., Any]:
    """``RemoteToolkit.<task>``: the toolkit method's signature, answered by the server's
    tool of the same name."""

    def method(self: RemoteToolkit, /, *args: Any, **kwargs: Any) -> Any:
        arguments = dict(task.signature().bind(*args, **kwargs).arguments)
        arguments.pop("on_text", None)  # the server reports progress, not text
        cancel = arguments.pop("cancel", None)
        for p in task.parameters:
            if p.is_image and p.name in arguments:
                arguments[p.name] = self._image_arg(arguments[p.name])
            elif p.is_list and isinstance(arguments.get(p.name), str):
                arguments[p.name] = [arguments[p.name]]  # one item, as the toolkit allows
        return self.call(task.name, cancel, **arguments)

    return method


for _task in TASKS.values():
    _task.method(
        _remote_method(_task),
        RemoteToolkit,
        doc=f"{_task.description}\n\n(Answered by the server's ``{_task.name}`` tool.)",
    )
RemoteToolkit.summarize = RemoteToolkit.summarize_report  # type: ignore[attr-defined]


class LocalServer:
    """A MedMO MCP server running as a subprocess of this kernel (see :func:`start_local_server`).

    Attributes:
        url: The streamable-HTTP endpoint to pass to ``%medmo_model --mcp``.
        process: The server process.
    """

    def __init__(self, url: str, process: Any):
        self.url = url
        self.process = process

    def stop(self) -> None:
        """Stop the server (and its model)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except Exception:
                self.process.kill()

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else "stopped"
        return f"LocalServer({self.url!r}, {state})"


def start_local_server(
    allow_dir: str | os.PathLike[str] = ".",
    *,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    timeout_s: float = 120.0,
) -> LocalServer:
    """Start ``medmo serve --http`` on 127.0.0.1 for this notebook to try the remote path.

    The server inherits this kernel's environment, so ``MEDMO_MODEL`` chooses its model.
    In real use the server runs elsewhere (a GPU machine) and you only pass its URL.

    Args:
        allow_dir: The folder whose images the server may read.
        port: Port to listen on (default: a free one).
        extra_args: More ``medmo serve`` options.
        timeout_s: How long to wait for the server to accept connections.

    Raises:
        BackendUnavailableError: The server exited or did not start in time.
    """
    import socket
    import subprocess
    import sys
    import time

    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    cmd = [
        sys.executable, "-m", "mcp_server", "--http", "--host", "127.0.0.1", "--port", str(port),
        "--allow-dir", os.path.abspath(allow_dir), *extra_args,
    ]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = (process.stderr.read() if process.stderr else "")[-2000:]
            raise BackendUnavailableError(
                f"The MCP server exited with status {process.returncode}: {err.strip()}",
                input=" ".join(cmd),
                fix="Run the same command in a terminal to see the whole error.",
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return LocalServer(f"http://127.0.0.1:{port}/mcp", process)
        except OSError:
            time.sleep(0.2)  # the server is still loading its model
    process.kill()
    raise BackendUnavailableError(
        f"The MCP server did not start within {timeout_s:.0f} s.",
        input=" ".join(cmd),
        fix="Check that the model loads (`medmo info`), or raise timeout_s.",
    )
