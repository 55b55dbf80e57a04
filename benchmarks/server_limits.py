"""What one hostile request costs a ``medmo serve --http`` server (tiny model, CPU).

    python benchmarks/server_limits.py                       # builds the tiny checkpoint
    python benchmarks/server_limits.py --model /tmp/tiny     # an existing checkpoint folder
    python benchmarks/server_limits.py --json limits.json --only big_png question_100k

Each scenario starts a fresh ``python -m medmo_agent.cli serve --http`` on a free loopback
port (CPU, fp32), measures the server's resident memory from ``/proc/<pid>/status``, sends
the hostile request(s) over the official MCP client, and meanwhile keeps two probes going
on other sessions: a read of ``medmo://server`` (how long the event loop is stalled) and a
small ``text_qa`` (how long another tool call waits). Scenarios:

- ``big_png``: one inline 10,000 x 10,000 RGBA PNG (about 390 KB, one colour) to ``vqa``.
- ``png_5600``: one 5,600 x 5,600 RGBA PNG (31 Mpx, just under the default pixel cap).
- ``six_uploads``: six such PNGs, each another colour (about 2.4 MB in all), one after
  another, as six ``vqa`` calls.
- ``question_100k`` / ``question_1m``: a ``text_qa`` question of 100 KB / 1 MB.
- ``nii_gz_400m``: a ``.nii.gz`` in the allowed folder (zeros, well under 1 MB) whose
  volume expands to 400 MiB (float32, 512 x 512 x 400), asked for one axial slice.

Figures per scenario: resident memory before, the peak while the requests ran
(``VmHWM`` after resetting it through ``/proc/<pid>/clear_refs``) and after; the outcome
of each hostile call (answer, error text, or client timeout); the probes' baseline and
worst latency while the hostile request was in flight. The server is killed when its
resident memory passes ``--max-rss-mib`` (recorded as such) and at the end of each
scenario, so nothing outlives the run. Only loopback is used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from _machine import machine_info

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "big_png",
    "png_5600",
    "six_uploads",
    "question_100k",
    "question_1m",
    "nii_gz_400m",
)
PROBE_QUESTION = "Which organ makes insulin?"
PROBE_PAUSE_S = 0.05


# -- inputs --------------------------------------------------------------------------


def flat_png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """An RGBA PNG of one colour, written row by row (no full-size buffer here)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgba) * width
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...``"""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def long_question(n_bytes: int) -> str:
    """A question of ``n_bytes`` ASCII characters made of varied words."""
    words = ["lung", "nodule", "effusion", "liver", "lesion", "contrast", "margin", "density"]
    out, i = [], 0
    size = 0
    while size < n_bytes:
        word = f"{words[i % len(words)]}{i % 97}"
        out.append(word)
        size += len(word) + 1
        i += 1
    return (" ".join(out))[: n_bytes - 1] + "?"


# -- the server process --------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> None:
    """Make ``VmHWM`` restart from the current resident size (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Server:
    """``python -m medmo_agent.cli serve --http`` on a free loopback port, killed on exit."""

    def __init__(self, model: Path, folder: Path, max_rss_mib: float, timeout: float = 180.0):
        self.log = folder / "server.log"
        cmd = [
            sys.executable,
            *("-m", "medmo_agent.cli", "serve", "--http", "--host", "127.0.0.1", "--port", "0"),
            *("--model", str(model), "--backend", "transformers", "--device", "cpu"),
            *("--dtype", "float32", "--max-new-tokens", "8", "--allow-dir", str(folder)),
        ]
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "TRANSFORMERS_VERBOSITY": "error",
        }
        with open(self.log, "wb") as fh:
            self.popen = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=REPO, start_new_session=True,
            )  # fmt: skip
        self.killed_at_mib: float | None = None
        self.url = self._wait_for_url(timeout)
        self._stop = threading.Event()
        self._guard = threading.Thread(target=self._watch, args=(max_rss_mib,), daemon=True)
        self._guard.start()

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+)", self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            try:
                code = self.popen.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"server exited with {code}:\n{self.log.read_text()[-4000:]}")
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:g}s")

    def _watch(self, max_rss_mib: float) -> None:
        # A safety net for this machine, not a figure: stop a server that runs away.
        while not self._stop.wait(0.05):
            try:
                rss = proc_status(self.popen.pid)["VmRSS"] / 1024
            except (OSError, KeyError):
                return
            if rss > max_rss_mib:
                self.killed_at_mib = round(rss, 1)
                self._signal(signal.SIGKILL)
                return

    def status_mib(self) -> dict[str, float]:
        """Resident now and peak since the last reset, in MiB."""
        st = proc_status(self.popen.pid)
        return {"rss_mib": round(st["VmRSS"] / 1024, 1), "hwm_mib": round(st["VmHWM"] / 1024, 1)}

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        """Kill the server's process group and reap it."""
        if hasattr(self, "_stop"):
            self._stop.set()
        if self.popen.poll() is None:
            self._signal(signal.SIGKILL)
        self.popen.wait()


def client(url: str):
    """An SDK client session over streamable HTTP."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=900.0))
    return Client(streamable_http_client(url, http_client=http))


def outcome(result: Any) -> dict[str, Any]:
    """What a tool call came back with, briefly."""
    text = result.content[0].text if result.content else ""
    return {"is_error": bool(result.is_error), "text": text[:300]}


# -- one scenario --------------------------------------------------------------------


async def probe_loop(session: Any, kind: str, done: asyncio.Event, out: list[float]) -> None:
    """Call the probe again and again until ``done`` (at least once); latencies in ``out``."""
    while True:
        start = time.perf_counter()
        if kind == "loop":
            await session.read_resource("medmo://server")
        else:
            await session.call_tool("text_qa", {"question": PROBE_QUESTION, "max_new_tokens": 2})
        out.append(time.perf_counter() - start)
        if done.is_set():
            return
        # Paced, so the probes measure the server rather than compete with it for the CPU.
        await asyncio.sleep(PROBE_PAUSE_S)


async def hostile_calls(
    session: Any, server: Server, calls: list[tuple[str, dict]], timeout_s: float, row: dict
) -> None:
    """Send ``calls`` one after another, recording each outcome in ``row``."""
    for tool, args in calls:
        t = time.perf_counter()
        try:
            res = await asyncio.wait_for(session.call_tool(tool, args), timeout_s)
            entry = outcome(res)
        except (TimeoutError, asyncio.TimeoutError):
            entry = {"is_error": True, "text": f"<no answer within {timeout_s:g} s>"}
        except Exception as exc:  # a dropped connection is a figure here
            entry = {"is_error": True, "text": f"<{type(exc).__name__}: {exc}>"[:300]}
        entry["seconds"] = round(time.perf_counter() - t, 3)
        row["calls"].append(entry)
        if server.popen.poll() is not None:
            return
        row["rss_after_each_call_mib"].append(server.status_mib()["rss_mib"])


async def run_scenario(
    name: str, server: Server, calls: list[tuple[str, dict]], timeout_s: float
) -> dict[str, Any]:
    """Send ``calls`` one after another with both probes running; the figures."""
    row: dict[str, Any] = {"scenario": name, "calls": [], "rss_after_each_call_mib": []}
    loops: list[float] = []
    asks: list[float] = []
    base_loop: list[float] = []
    base_ask: list[float] = []
    before = server.status_mib()
    hostile_s = 0.0
    try:
        async with (
            client(server.url) as hostile,
            client(server.url) as pinger,
            client(server.url) as asker,
        ):
            for _ in range(5):  # warm-up and baselines
                t = time.perf_counter()
                await pinger.read_resource("medmo://server")
                base_loop.append(time.perf_counter() - t)
                t = time.perf_counter()
                await asker.call_tool("text_qa", {"question": PROBE_QUESTION, "max_new_tokens": 2})
                base_ask.append(time.perf_counter() - t)
            before = server.status_mib()
            reset_peak(server.popen.pid)
            done = asyncio.Event()
            probes = [
                asyncio.create_task(probe_loop(pinger, "loop", done, loops)),
                asyncio.create_task(probe_loop(asker, "ask", done, asks)),
            ]
            start = time.perf_counter()
            await hostile_calls(hostile, server, calls, timeout_s, row)
            hostile_s = time.perf_counter() - start
            done.set()
            row["peak"] = server.status_mib() if server.popen.poll() is None else None
            # The probes finish their current call; a server still busy gets the timeout.
            finished, pending = await asyncio.wait(probes, timeout=timeout_s)
            for task in pending:
                task.cancel()
            row["probe_errors"] = [
                f"{type(t.exception()).__name__}: {t.exception()}"[:200]
                for t in finished
                if t.exception() is not None
            ]
            row["probes_unfinished"] = len(pending)
    except Exception as exc:  # the client gives up when the server dies: record it
        row["client_error"] = f"{type(exc).__name__}: {exc}"[:300]
    alive = server.popen.poll() is None
    settled = server.status_mib() if alive else None
    peak = row.pop("peak", None)
    row.update(
        hostile_seconds=round(hostile_s, 3),
        rss_before_mib=before["rss_mib"],
        rss_peak_mib=peak["hwm_mib"] if peak else None,
        rss_after_mib=settled["rss_mib"] if settled else None,
        peak_growth_mib=round(peak["hwm_mib"] - before["rss_mib"], 1) if peak else None,
        retained_mib=round(settled["rss_mib"] - before["rss_mib"], 1) if settled else None,
        killed_at_rss_mib=server.killed_at_mib,
        server_alive_after=alive,
        loop_baseline_ms=round(statistics.median(base_loop) * 1000, 2) if base_loop else None,
        loop_worst_ms=round(max(loops) * 1000, 1) if loops else None,
        text_qa_baseline_ms=round(statistics.median(base_ask) * 1000, 1) if base_ask else None,
        text_qa_worst_ms=round(max(asks) * 1000, 1) if asks else None,
        probe_calls={"loop": len(loops), "text_qa": len(asks)},
    )
    return row


def zero_nifti_gz(path: Path, shape: tuple[int, int, int], dtype: str = "float32") -> int:
    """Write a gzipped NIfTI-1 volume of zeros, streamed (no full-size buffer); its size."""
    import nibabel
    import numpy as np

    header = nibabel.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.dtype(dtype))
    header.set_xyzt_units("mm")
    header["vox_offset"] = 352
    header.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    row = bytes(shape[0] * shape[1] * np.dtype(dtype).itemsize)
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(header.binaryblock + bytes(4))
        for _ in range(shape[2]):
            out.write(row)
    return path.stat().st_size


def scenario_calls(name: str, folder: Path) -> tuple[list[tuple[str, dict]], str]:
    """The hostile calls of a scenario (files it needs go in ``folder``) and a description."""
    if name == "nii_gz_400m":
        size = zero_nifti_gz(folder / "zeros.nii.gz", (512, 512, 400))
        args = {"image": "zeros.nii.gz", "question": "What is shown?", "max_new_tokens": 2}
        args["slice"] = 200
        return [("vqa", args)], (
            f"one {size:,}-byte .nii.gz expanding to 419,430,400 bytes, one axial slice"
        )
    if name == "big_png":
        png = flat_png(10_000, 10_000, (200, 120, 40, 128))
        args = {"image": data_uri(png), "question": "What is shown?", "max_new_tokens": 2}
        return [("vqa", args)], f"one 10000x10000 RGBA PNG of {len(png):,} bytes"
    if name == "png_5600":
        png = flat_png(5600, 5600, (30, 200, 90, 140))
        args = {"image": data_uri(png), "question": "What is shown?", "max_new_tokens": 2}
        return [("vqa", args)], f"one 5600x5600 RGBA PNG of {len(png):,} bytes (under the cap)"
    if name == "six_uploads":
        calls, total = [], 0
        for i in range(6):
            png = flat_png(10_000, 10_000, (30 * i, 200 - 20 * i, 90, 100 + 20 * i))
            total += len(png)
            calls.append(
                ("vqa", {"image": data_uri(png), "question": f"Upload {i}?", "max_new_tokens": 2})
            )
        return calls, f"six 10000x10000 RGBA PNGs, {total:,} bytes in all"
    size = {"question_100k": 100_000, "question_1m": 1_000_000}[name]
    question = long_question(size)
    return [("text_qa", {"question": question, "max_new_tokens": 2})], f"{size:,}-byte question"


async def run_all(args: argparse.Namespace, model: Path) -> list[dict[str, Any]]:
    rows = []
    for name in args.only:
        timeout = args.text_timeout if name.startswith("question") else args.call_timeout
        with tempfile.TemporaryDirectory(prefix="medmo-limits-") as tmp:
            calls, what = scenario_calls(name, Path(tmp))
            server = Server(model, Path(tmp), args.max_rss_mib)
            try:
                row = await run_scenario(name, server, calls, timeout)
            finally:
                server.stop()
        row["input"] = what
        rows.append(row)
        print(line(row), flush=True)
    return rows


def line(row: dict[str, Any]) -> str:
    """One scenario as a short text block."""
    calls = "; ".join(
        f"{'error' if c['is_error'] else 'ok'} in {c['seconds']} s: {c['text'][:160]!r}"
        for c in row["calls"]
    )
    killed = f" KILLED at {row['killed_at_rss_mib']} MiB" if row["killed_at_rss_mib"] else ""
    if not row["server_alive_after"]:
        killed += " (server gone)"
    if row.get("client_error"):
        killed += f"\n  client error: {row['client_error']}"
    if row.get("probes_unfinished"):
        killed += f"\n  probes still waiting at the end: {row['probes_unfinished']}"
    return (
        f"[{row['scenario']}] {row['input']}\n"
        f"  rss before {row['rss_before_mib']} MiB, peak {row['rss_peak_mib']} MiB "
        f"(+{row['peak_growth_mib']}), after {row['rss_after_mib']} MiB "
        f"(retained +{row['retained_mib']}){killed}\n"
        f"  rss after each call: {row['rss_after_each_call_mib']}\n"
        f"  medmo://server read: baseline {row['loop_baseline_ms']} ms, "
        f"worst {row['loop_worst_ms']} ms; "
        f"text_qa: baseline {row['text_qa_baseline_ms']} ms, worst {row['text_qa_worst_ms']} ms "
        f"(probes {row['probe_calls']})\n"
        f"  hostile calls ({row['hostile_seconds']} s): {calls}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="tiny checkpoint folder (default: build one)")
    p.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    p.add_argument("--call-timeout", type=float, default=300.0, help="per image call (s)")
    p.add_argument("--text-timeout", type=float, default=60.0, help="per long question (s)")
    p.add_argument(
        "--max-rss-mib", type=float, default=9000.0, help="kill a server past this (MiB)"
    )
    p.add_argument("--json", type=Path, help="write the figures to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medmo-limits-model-") as tmp:
        model = args.model
        if model is None:
            from medmo_agent.testing.tiny import build_tiny_checkpoint

            model = build_tiny_checkpoint(Path(tmp) / "tiny")
        rows = asyncio.run(run_all(args, model))
    res = {
        "benchmark": "server_limits",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine_info(),
        "results": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
