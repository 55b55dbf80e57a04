"""Helpers shared by the MCP server tests: test backends, a server factory, PNG bytes.

Imported by name (``from mcp_helpers import ...``): a module called ``conftest`` is
ambiguous when several test folders are collected together."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from servers import ServerProcess

from medmo_agent.backends.base import Backend, Completion, GenerationRequest
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings

#: What the CT example file says about its patient: none of it may leave the server.
PHI_VALUES = ("CompressedSamples^CT1", "CompressedSamples", "1CT1")


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def rpc_answer(reply: Any) -> dict[str, Any]:
    """The one JSON-RPC answer of an HTTP POST (an ``httpx.Response``), read from its JSON
    body or from its SSE stream."""
    if reply.headers["content-type"].startswith("application/json"):
        return reply.json()
    events = [
        json.loads(line[len("data:") :])
        for line in reply.text.splitlines()
        if line.startswith("data:") and line[len("data:") :].strip()
    ]
    answers = [e for e in events if "result" in e or "error" in e]
    assert len(answers) == 1, reply.text
    return answers[0]


@contextlib.contextmanager
def no_error_logged_by(proc: ServerProcess) -> Iterator[None]:
    """Fails when the server ``proc`` logged an ERROR or a traceback during the block,
    or is no longer running after it."""
    before = len(proc.log_text(tail=1_000_000))
    yield
    log = proc.log_text(tail=1_000_000)
    assert proc.alive(), log
    new = log[before:]
    assert "ERROR" not in new and "Traceback" not in new, new


def model_tools(tools: list[Any]) -> list[Any]:
    """The tools a host offers its model: MCP Apps keeps tools whose visibility leaves
    out ``"model"`` (the viewer's render tool) for app views."""
    return [
        t for t in tools if "model" in ((t.meta or {}).get("ui", {}).get("visibility") or ["model"])
    ]


def make_server(
    backend: Backend,
    image_dir: Path | None,
    settings: Settings | None = None,
    **config: Any,
):
    """A server over ``backend`` with ``image_dir`` allowed (``None``: the default)."""
    from mcp_server import ServerConfig, create_server

    if image_dir is not None:
        config.setdefault("allowed_dirs", (image_dir,))
    return create_server(settings or Settings(), ServerConfig(**config), backend=backend)


class BlockingBackend(Backend):
    """Blocks in ``generate`` until cancelled (or released), recording what happened."""

    name = "blocking"
    model_id = "blocking"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.release = threading.Event()
        self.saw_cancel = False

    def generate(self, request: GenerationRequest, on_text=None, cancel=None) -> Completion:
        self.started.set()
        try:
            while not self.release.is_set():
                if cancel is not None and cancel.wait(0.01):
                    self.saw_cancel = True
                    return Completion(
                        text="", model=self.model_id, backend=self.name, finish_reason="cancelled"
                    )
            if on_text is not None:
                on_text("no")
            return Completion(text="no", model=self.model_id, backend=self.name)
        finally:
            self.stopped.set()


class FailingBackend(ScriptedBackend):
    """Raises the given error for requests whose text contains ``trigger``."""

    def __init__(self, error: Exception, trigger: str, replies: list[str]):
        super().__init__(replies)
        self.error = error
        self.trigger = trigger

    def generate(self, request, on_text=None, cancel=None):
        if any(self.trigger in m.text for m in request.messages):
            raise self.error
        return super().generate(request, on_text=on_text, cancel=cancel)


def flat_png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """An RGBA PNG of one colour, written row by row: a huge image in a few hundred KB
    without building it in memory here (deflate packs a repeated row about 1000:1)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgba) * width
    comp = zlib.compressobj(9)
    idat = b"".join([comp.compress(row) for _ in range(height)] + [comp.flush()])
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
