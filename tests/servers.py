"""Start real server subprocesses for tests, on a free loopback port, and wait until ready.

Usage::

    port = free_port()
    cmd = ["transformers", "serve", str(ckpt), "--host", "127.0.0.1", "--port", str(port)]
    with start_process(cmd, ready_url=f"http://127.0.0.1:{port}/health") as server:
        ...  # server.popen, server.log_text(), server.stop()

Readiness is polled (an HTTP GET that answers below 500, or a ``ready_check`` callable
returning True); between polls the helper waits on the process itself, so a server that
dies during start-up fails the test at once, with its log in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "JSONHandler",
    "ServerProcess",
    "chat_completion",
    "free_port",
    "post_answers",
    "run_medmo",
    "start_process",
    "transformers_serve",
    "url_answers",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def url_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET on ``url`` gets any answer below HTTP 500."""
    try:
        return httpx.get(url, timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


def post_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a (deliberately empty) POST on ``url`` gets any answer below HTTP 500: an
    MCP endpoint that only takes POSTs is up (and its model loaded)."""
    try:
        return httpx.post(url, content=b"{}", timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler for small test HTTP servers that answer in JSON."""

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def send_json(self, status: int, body: Any) -> None:
        """Answer with ``status`` and ``body`` as JSON."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def chat_completion(text: str, model: str, usage: Mapping[str, int]) -> dict[str, Any]:
    """An OpenAI chat-completion response body whose one choice says ``text``."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": dict(usage),
    }


def run_medmo(
    args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """``python -m medmo_agent.cli ARGS`` as a user runs it, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "medmo_agent.cli", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class ServerProcess:
    """A running server subprocess started by :func:`start_process`."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    cmd: list[str]

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def log_text(self, tail: int = 8000) -> str:
        """The last ``tail`` characters of its combined stdout and stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process (and its children), then SIGKILL after ``grace_s``."""
        if self.popen.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the process (and its children) and reap it."""
        if self.popen.poll() is None:
            self._signal(signal.SIGKILL)
        self.popen.wait()

    def _signal(self, sig: int) -> None:
        # the server runs in its own session, so its process group holds only what it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


@contextlib.contextmanager
def start_process(
    cmd: Sequence[str],
    *,
    ready_url: str | None = None,
    ready_check: Callable[[], bool] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    cwd: str | os.PathLike[str] | None = None,
    poll_s: float = 0.2,
) -> Iterator[ServerProcess]:
    """Run ``cmd`` as a subprocess, wait until it is ready, stop it on exit.

    Args:
        cmd: The command line.
        ready_url: Ready once a GET on this URL answers below HTTP 500.
        ready_check: Alternatively, ready once this returns True.
        env: Extra environment variables, on top of this process's environment.
        timeout: Seconds to wait for readiness before failing.
        cwd: Working directory.
        poll_s: Seconds between readiness checks (spent waiting on the process).

    Raises:
        RuntimeError: The process exited, or was not ready within ``timeout``; the
            message carries the end of its log.
    """
    if (ready_url is None) == (ready_check is None):
        raise ValueError("give exactly one of ready_url or ready_check")
    check = ready_check or (lambda: url_answers(ready_url))  # type: ignore[arg-type]
    full_env = {**os.environ, **(env or {})}
    log_dir = Path(tempfile.mkdtemp(prefix="medmo-server-"))
    log_path = log_dir / "server.log"
    with open(log_path, "wb") as log_file:
        popen = subprocess.Popen(
            list(cmd),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    server = ServerProcess(popen=popen, log_path=log_path, cmd=list(cmd))
    try:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{cmd[0]} was not ready after {timeout:g}s.\n--- log ---\n{server.log_text()}"
                )
            try:
                code = popen.wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(
                f"{cmd[0]} exited with code {code} before it was ready.\n"
                f"--- log ---\n{server.log_text()}"
            )
        yield server
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)  # failures above carry the log's end


def transformers_serve(checkpoint: Path, *, timeout: float = 180) -> tuple[str, Any]:
    """``transformers serve`` pinned to ``checkpoint`` on a free loopback port, on the CPU.

    Returns the OpenAI base URL (``http://127.0.0.1:PORT/v1``) and a context manager that
    starts the server and stops it on exit. Skips the test when the command is missing.
    """
    import sys

    import pytest

    beside = Path(sys.executable).with_name("transformers")
    cli = str(beside) if beside.exists() else shutil.which("transformers")
    if cli is None:
        pytest.skip("the `transformers` command is not installed (pip install transformers)")
    port = free_port()
    cmd = [cli, "serve", str(checkpoint), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--device", "cpu", "--dtype", "float32"]
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    ready = f"http://127.0.0.1:{port}/health"
    return f"http://127.0.0.1:{port}/v1", start_process(
        cmd, ready_url=ready, env=env, timeout=timeout
    )
