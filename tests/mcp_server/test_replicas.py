"""Stateless streamable HTTP: two server replicas behind one address serve one client.

Two ``python -m mcp_server --http --stateless`` processes answer from different scripts;
a small round-robin reverse proxy (Starlette + httpx, in this test) forwards every HTTP
request, SSE responses streamed through, to the next replica in turn. One SDK client
talks only to the proxy, so consecutive requests of its one session land on different
replicas: stateless mode must make that work.

Both protocol generations are covered: the current one (``server/discover``, every request
self-contained) and the ``initialize`` handshake of earlier revisions, which is the one
that breaks across replicas without ``--stateless`` (its session lives in one process).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_helpers import model_tools
from servers import free_port, post_answers, start_process
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from medmo_agent.testing import scripted_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ENV = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
#: Long enough (over 8 words) that the server sends progress while it streams them, which
#: turns its answer into an SSE stream that the proxy must pass through.
_FINDINGS = "the heart is of normal size, the lungs are clear, and there is no effusion"
REPLIES = {"a": f"Replica A: {_FINDINGS}.", "b": f"Replica B: {_FINDINGS}."}
SSE_ACCEPT = {"Accept": "text/event-stream"}
#: Headers that describe one hop's connection, not the message (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)


@dataclass
class Routed:
    """What the proxy did with one request."""

    replica: str
    method: str
    rpc: str | None
    question: str | None
    status: int = 0
    content_type: str = ""


@dataclass
class RoundRobinProxy:
    """Forwards each request to the next upstream in turn, streaming the response back."""

    upstreams: dict[str, str]  # replica name -> base URL (no path)
    log: list[Routed] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = itertools.cycle(list(self.upstreams))
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=300.0))
        self.app = Starlette(
            routes=[Route("/{path:path}", self.forward, methods=["GET", "POST", "DELETE"])]
        )

    async def forward(self, request: Request) -> StreamingResponse:
        name = next(self._next)
        body = await request.body()
        rpc = question = None
        if body:
            message = json.loads(body)
            rpc = message.get("method")
            question = (message.get("params") or {}).get("arguments", {}).get("question")
        routed = Routed(name, request.method, rpc, question)
        self.log.append(routed)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        upstream = self._http.build_request(
            request.method,
            self.upstreams[name] + request.url.path,
            params=request.query_params,
            headers=headers,
            content=body,
        )
        response = await self._http.send(upstream, stream=True)
        routed.status = response.status_code
        routed.content_type = response.headers.get("content-type", "")
        return StreamingResponse(
            response.aiter_raw(),  # SSE events pass through as they arrive
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(response.aclose),
        )

    async def aclose(self) -> None:
        await self._http.aclose()


class _Uvicorn(uvicorn.Server):
    """uvicorn that signals an event once its socket accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


@asynccontextmanager
async def serve_proxy(proxy: RoundRobinProxy):
    """Serve the proxy on a free loopback port; yield its MCP endpoint URL."""
    port = free_port()
    server = _Uvicorn(
        uvicorn.Config(proxy.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:  # start-up failed: surface its error
        ready.cancel()
        task.result()
        raise RuntimeError("the proxy stopped before it was ready")
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await task
        await proxy.aclose()


def _start_replica(stack: ExitStack, reply: str, image_dir: Path):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mcp_server",
        *("--http", "--stateless", "--port", str(port), "--backend", "scripted"),
        *("--allow-dir", str(image_dir)),
    ]
    base = f"http://127.0.0.1:{port}"
    ready = lambda: post_answers(base + "/mcp")  # noqa: E731
    return base, stack.enter_context(
        start_process(
            cmd, ready_check=ready, env={**ENV, **scripted_env(reply)}, cwd=REPO, timeout=60
        )
    )


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("auto", id="current-protocol"),
        # clients of the earlier revisions open with an initialize handshake (and may GET a
        # notification stream): each step may reach a different replica
        pytest.param("legacy", id="initialize-handshake"),
    ],
)
async def test_one_client_is_served_by_two_stateless_replicas_behind_one_address(image_dir, mode):
    with ExitStack() as stack:
        replicas = {
            name: _start_replica(stack, reply, image_dir) for name, reply in REPLIES.items()
        }
        proxy = RoundRobinProxy({name: base for name, (base, _) in replicas.items()})
        questions = [f"Is the heart enlarged (call {i})?" for i in range(6)]
        progress: dict[str, list[float]] = {q: [] for q in questions}

        async def on_progress(question: str, done: float, total: float | None, message):
            progress[question].append(done)

        async with serve_proxy(proxy) as url:
            transport = streamable_http_client(url, http_client=create_mcp_http_client())
            client = Client(transport, mode=mode)
            async with client:
                tools = await client.list_tools()
                results = [
                    await client.call_tool(
                        "vqa",
                        {"image": str(image_dir / "dark.png"), "question": q},
                        progress_callback=partial(on_progress, q),
                    )
                    for q in questions
                ]
            # a GET (the optional notification stream) is forwarded too: its answer starts
            # through the proxy while the stream is still open, as it does directly
            answers = []
            async with httpx.AsyncClient(timeout=30) as http:
                for target in (url, replicas["a"][0] + "/mcp"):
                    async with http.stream("GET", target, headers=SSE_ACCEPT) as response:
                        answers.append((response.status_code, response.headers["content-type"]))
            assert proxy.log[-1].method == "GET"
            assert answers[0] == answers[1]
        for name, (_, proc) in replicas.items():
            assert proc.alive(), f"replica {name} died:\n{proc.log_text()}"

    assert len(model_tools(tools.tools)) == 9
    served_by = {r.question: r.replica for r in proxy.log if r.rpc == "tools/call"}
    assert set(served_by) == set(questions)
    assert set(served_by.values()) == {"a", "b"}  # both replicas answered tool calls
    for question, result in zip(questions, results, strict=True):
        assert not result.is_error, result.content[0].text
        # each answer comes from the replica the proxy sent that very request to
        assert result.structured_content["answer"] == REPLIES[served_by[question]]
        assert result.structured_content["question"] == question
    # the session's requests alternated between replicas, and none failed
    assert all(r.status < 400 for r in proxy.log if r.method == "POST"), proxy.log
    # progress notifications made the tool-call answers SSE streams, passed through whole
    calls = [r for r in proxy.log if r.rpc == "tools/call"]
    assert all(r.content_type.startswith("text/event-stream") for r in calls), calls
    assert all(progress[q] for q in questions), progress
