"""Per-call overhead and concurrency of the MCP server over streamable HTTP (CPU only).

    python benchmarks/server.py                                  # 200 sequential + 200 concurrent
    python benchmarks/server.py --calls 500 --concurrent 400 --sessions 20
    python benchmarks/server.py --stateless --json-response      # the replica set-up
    python benchmarks/server.py --json server.json               # also write the figures
    python benchmarks/server.py --calls 20 --concurrent 20 --max-seconds 60   # a smoke run

Starts ``python -m mcp_server --http`` on a free loopback port with the instant scripted
backend, then drives it with the official MCP SDK client:

- **sequential**: ``--calls`` ``vqa`` calls one after another on one session over a small
  PNG; p50/p95/mean round-trip latency. The same call made in-process on the
  :class:`~medmo_agent.toolkit.Toolkit` (no MCP, no HTTP) is timed too, so the difference
  is the server's own per-call overhead.
- **concurrent**: ``--concurrent`` calls at once, spread over ``--sessions`` client
  sessions that each fire their share together (``asyncio.gather``): several agents, each
  running a few tool calls in parallel, as an orchestrating client does. Every call must
  come back successful with the scripted answer and its own question echoed, else it
  counts as lost.

Only loopback is used; the server process is stopped at the end, and the whole run is
bounded by ``--max-seconds``. Prints a table and, with ``--json``, writes the machine,
versions and figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from _machine import machine_info

from medmo_agent.testing import scripted_env

REPO = Path(__file__).resolve().parent.parent
REPLY = "The liver is normal in size and attenuation."
SERVER_VERSIONS = ("mcp", "starlette", "uvicorn", "httpx2", "pydantic", "pillow", "numpy")


def versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``names`` (``"-"`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * pct / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p95, mean and max of durations given in seconds, in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def write_png(folder: Path) -> Path:
    """A small grey 256x256 PNG (a thumbnail-sized image: the cost is the server's)."""
    import numpy as np
    from PIL import Image

    path = folder / "small.png"
    ramp = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1))
    Image.fromarray(np.stack([ramp] * 3, axis=2)).save(path)
    return path


class Server:
    """``python -m mcp_server --http`` on a free loopback port, stopped on exit."""

    def __init__(self, image_dir: Path, extra: list[str], timeout: float = 60.0):
        # kept open for the server's lifetime; closed and removed in stop()
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="medmo-bench-", suffix=".log", delete=False
        )
        cmd = [
            sys.executable,
            "-m",
            "mcp_server",
            *("--http", "--host", "127.0.0.1", "--port", "0", "--backend", "scripted"),
            *("--allow-dir", str(image_dir), *extra),
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **scripted_env(REPLY)}
        self.popen = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=REPO, start_new_session=True,
        )  # fmt: skip
        self.url = self._wait_for_url(timeout)

    def _wait_for_url(self, timeout: float) -> str:
        # --port 0 lets the server pick the port, so nothing can take it in between;
        # it prints the endpoint once the socket accepts connections.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+)", self.log_text())
            if found:
                return found.group(1)
            try:
                code = self.popen.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"server exited with {code}:\n{self.log_text()}")
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:g}s:\n{self.log_text()}")

    def log_text(self) -> str:
        """The server's output so far."""
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the server (its own process group) and remove the log."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, 15)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, 9)
                self.popen.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def client(url: str):
    """An SDK client session over streamable HTTP (unbounded connection pool)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(
        timeout=httpx2.Timeout(30.0, read=300.0),
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=None),
    )
    return Client(streamable_http_client(url, http_client=http))


def check(result: Any, question: str) -> str | None:
    """Why a ``vqa`` result does not count as served (``None``: it does)."""
    if result.is_error:
        return f"error: {result.content[0].text if result.content else '?'}"
    data = result.structured_content or {}
    if data.get("answer") != REPLY:
        return f"wrong answer {data.get('answer')!r}"
    if data.get("question") != question:
        return f"answer to another question ({data.get('question')!r})"
    return None


async def sequential(url: str, image: str, calls: int) -> tuple[list[float], list[str]]:
    """``calls`` vqa calls in a row on one session; latencies and failures."""
    times: list[float] = []
    failures: list[str] = []
    async with client(url) as session:
        for i in range(3):  # warm-up: first-call imports and connection set-up
            await session.call_tool("vqa", {"image": image, "question": f"warm {i}?"})
        for i in range(calls):
            question = f"Is the liver normal (call {i})?"
            start = time.perf_counter()
            result = await session.call_tool("vqa", {"image": image, "question": question})
            times.append(time.perf_counter() - start)
            if (why := check(result, question)) is not None:
                failures.append(f"call {i}: {why}")
    return times, failures


async def concurrent(
    url: str, image: str, total: int, sessions: int
) -> tuple[list[float], list[str], float]:
    """``total`` calls at once over ``sessions`` sessions; latencies, failures, wall time."""
    shares = [total // sessions + (1 if s < total % sessions else 0) for s in range(sessions)]
    times: list[float] = []
    failures: list[str] = []

    async def one(session: Any, s: int, i: int) -> None:
        question = f"Is the liver normal (session {s}, call {i})?"
        start = time.perf_counter()
        try:
            result = await session.call_tool("vqa", {"image": image, "question": question})
        except Exception as exc:  # a lost call is a figure, not a crash of the benchmark
            failures.append(f"session {s} call {i}: {type(exc).__name__}: {exc}")
            return
        times.append(time.perf_counter() - start)
        if (why := check(result, question)) is not None:
            failures.append(f"session {s} call {i}: {why}")

    async def agent(s: int, n: int, ready: asyncio.Event, go: asyncio.Event) -> None:
        async with client(url) as session:
            await session.call_tool("vqa", {"image": image, "question": "warm?"})
            ready.set()
            await go.wait()
            await asyncio.gather(*(one(session, s, i) for i in range(n)))

    readies = [asyncio.Event() for _ in shares]
    go = asyncio.Event()
    tasks = [
        asyncio.create_task(agent(s, n, readies[s], go)) for s, n in enumerate(shares) if n > 0
    ]
    await asyncio.gather(*(r.wait() for r, n in zip(readies, shares, strict=True) if n > 0))
    start = time.perf_counter()
    go.set()  # all sessions are connected: the burst starts together
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    return times, failures, wall


def in_process(image: str, calls: int) -> list[float]:
    """The same vqa call on the Toolkit directly: the tool's own work, without MCP."""
    from medmo_agent.backends.scripted import ScriptedBackend
    from medmo_agent.config import Settings
    from medmo_agent.toolkit import Toolkit

    kit = Toolkit(ScriptedBackend([REPLY]), Settings())
    for _ in range(3):
        kit.vqa(image, "warm?")
    times = []
    for i in range(calls):
        start = time.perf_counter()
        kit.vqa(image, f"Is the liver normal (call {i})?")
        times.append(time.perf_counter() - start)
    return times


async def run(args: argparse.Namespace, image_dir: Path, image: str) -> dict[str, Any]:
    extra = (["--stateless"] if args.stateless else []) + (
        ["--json-response"] if args.json_response else []
    )
    server = Server(image_dir, extra)
    try:
        seq_times, seq_fail = await sequential(server.url, image, args.calls)
        con_times, con_fail, wall = await concurrent(
            server.url, image, args.concurrent, args.sessions
        )
        alive = server.popen.poll() is None
    finally:
        server.stop()
    base = in_process(image, min(args.calls, 200))
    seq = summary_ms(seq_times)
    overhead = round(seq["p50_ms"] - summary_ms(base)["p50_ms"], 3)
    return {
        "benchmark": "server",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine_info(),
        "versions": versions(SERVER_VERSIONS),
        "settings": {
            "transport": "streamable-http",
            "stateless": args.stateless,
            "json_response": args.json_response,
            "image": "256x256 PNG",
            "sessions": args.sessions,
        },
        "in_process": {"calls": len(base), **summary_ms(base)},
        "sequential": {
            "calls": args.calls,
            "ok": len(seq_times) - len(seq_fail),
            "lost": len(seq_fail),
            **seq,
            "overhead_p50_ms": overhead,
            "calls_per_s": round(len(seq_times) / sum(seq_times), 1),
        },
        "concurrent": {
            "calls": args.concurrent,
            "sessions": args.sessions,
            "ok": args.concurrent - len(con_fail),
            "lost": len(con_fail),
            **(summary_ms(con_times) if con_times else {}),
            "wall_s": round(wall, 3),
            "calls_per_s": round(args.concurrent / wall, 1),
        },
        "server_alive_after": alive,
        "failures": (seq_fail + con_fail)[:20],
    }


def table(res: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    m, s, c, b = res["machine"], res["sequential"], res["concurrent"], res["in_process"]
    rows = [
        ("in-process Toolkit.vqa", b["calls"], "-", b["p50_ms"], b["p95_ms"], "-"),
        ("MCP sequential", s["calls"], s["lost"], s["p50_ms"], s["p95_ms"], s["calls_per_s"]),
        (
            f"MCP concurrent ({c['sessions']} sessions)",
            c["calls"],
            c["lost"],
            c.get("p50_ms", "-"),
            c.get("p95_ms", "-"),
            c["calls_per_s"],
        ),
    ]
    head = f"{'':34} {'calls':>6} {'lost':>5} {'p50 ms':>8} {'p95 ms':>8} {'calls/s':>8}"
    lines = [f"MCP server benchmark on {m['cpu']} ({m['nproc']} cores)", head]
    lines += [f"{r[0]:34} {r[1]:>6} {r[2]:>5} {r[3]:>8} {r[4]:>8} {r[5]:>8}" for r in rows]
    lines.append(f"per-call overhead of MCP over HTTP (p50): {s['overhead_p50_ms']} ms")
    lines.append(f"concurrent burst wall time: {c['wall_s']} s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200, help="sequential calls (default 200)")
    p.add_argument("--concurrent", type=int, default=200, help="calls at once (default 200)")
    p.add_argument("--sessions", type=int, default=10, help="client sessions (default 10)")
    p.add_argument("--stateless", action="store_true", help="serve with --stateless")
    p.add_argument("--json-response", action="store_true", help="serve with --json-response")
    p.add_argument("--max-seconds", type=float, default=600.0, help="bound on the whole run")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args(argv)
    for name in ("calls", "concurrent", "sessions"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    args.sessions = min(args.sessions, args.concurrent)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medmo-bench-") as tmp:
        image_dir = Path(tmp)
        image = str(write_png(image_dir))

        async def bounded() -> dict[str, Any]:
            return await asyncio.wait_for(run(args, image_dir, image), args.max_seconds)

        res = asyncio.run(bounded())
    print(table(res))
    for failure in res["failures"]:
        print("  lost:", failure)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if res["sequential"]["lost"] == 0 and res["concurrent"]["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
