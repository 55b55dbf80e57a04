"""One hostile request against a real ``medmo serve --http`` on the tiny checkpoint (CPU):
it may not raise the server's peak resident memory by more than the documented bound,
keep more than a small amount after it ends, or hold up another caller's small call.

Memory is read from ``/proc/<pid>/status``: ``VmHWM`` (peak resident) is reset through
``/proc/<pid>/clear_refs`` before each hostile request, so the peak is that request's.
"""

from __future__ import annotations

import asyncio
import base64
import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_helpers import flat_png
from PIL import Image
from servers import free_port, post_answers, start_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
#: The bound README "Configuration" documents for one request on the tiny model.
PEAK_BOUND_MIB = 512
#: What the held-image budget is set to here, and the slack allowed over it afterwards
#: (allocator pages, Python objects created by the call).
HELD_MIB = 32
SLACK_MIB = 64
SMALL_CALL = ("text_qa", {"question": "Which organ makes insulin?", "max_new_tokens": 2})


def _status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


class Memory:
    """Peak and retained resident-memory growth of the server around one request."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self) -> Memory:
        self.before = _status(self.pid)["VmRSS"]
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        return self

    def __exit__(self, *exc) -> None:
        now = _status(self.pid)
        self.peak = now["VmHWM"] - self.before
        self.retained = now["VmRSS"] - self.before


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    """The server's allowed folder."""
    return tmp_path_factory.mktemp("allowed")


@pytest.fixture(scope="module")
def server(tiny_checkpoint, allowed):
    """``medmo serve --http`` on the tiny checkpoint with a 32 MiB held-image budget."""
    folder = allowed
    port = free_port()
    cmd = [
        sys.executable,
        *("-m", "medmo_agent.cli", "serve", "--http", "--port", str(port)),
        *("--model", str(tiny_checkpoint), "--backend", "transformers", "--device", "cpu"),
        *("--dtype", "float32", "--max-new-tokens", "4", "--allow-dir", str(folder)),
    ]
    env = {
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "MEDMO_MAX_HELD_IMAGE_BYTES": str(HELD_MIB * MIB),
    }
    url = f"http://127.0.0.1:{port}/mcp"
    with start_process(cmd, ready_check=lambda: post_answers(url), env=env, cwd=REPO,
                       timeout=120) as proc:  # fmt: skip
        yield url, proc
        assert proc.alive(), proc.log_text()


def _client(url: str) -> Client:
    return Client(streamable_http_client(url, http_client=create_mcp_http_client()))


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _text(result) -> str:
    return result.content[0].text if result.content else ""


async def _baseline(client: Client) -> float:
    """Median wall time of the small call on an idle server (its own model time)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = await client.call_tool(*SMALL_CALL)
        times.append(time.perf_counter() - start)
        assert not result.is_error, _text(result)
    return sorted(times)[1]


def _float_tiff(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("F", (width, height), 1.5).save(buf, "TIFF", compression="tiff_adobe_deflate")
    return buf.getvalue()


# -- images ---------------------------------------------------------------------------


async def test_a_10k_by_10k_png_is_refused_by_the_pixel_cap_without_touching_memory(server):
    url, proc = server
    png = flat_png(10_000, 10_000, (200, 120, 40, 128))
    assert len(png) < 500_000  # the 389 KB upload that used to cost 5 GB
    async with _client(url) as hostile, _client(url) as other:
        base = await _baseline(other)
        with Memory(proc.pid) as mem:
            start = time.perf_counter()
            result, small = await asyncio.gather(
                hostile.call_tool("vqa", {"image": _data_uri(png), "question": "What?"}),
                other.call_tool(*SMALL_CALL),
            )
            refused_in = time.perf_counter() - start
    assert result.is_error
    text = _text(result)
    assert "ImageTooLargeError" in text and "100,000,000 pixels" in text, text
    assert "32,000,000-pixel cap" in text and "MEDMO_MAX_IMAGE_PIXELS" in text, text
    assert not small.is_error, _text(small)
    # Refused from the header: no model time, nothing decoded.
    assert refused_in < 10 * base + 2.0, (refused_in, base)
    assert mem.peak < 64, mem.peak
    assert mem.retained < SLACK_MIB, mem.retained


@pytest.mark.parametrize(
    ("kind", "data", "mime"),
    [
        ("rgba png", lambda: flat_png(5600, 5600, (30, 200, 90, 140)), "image/png"),
        ("float tiff", lambda: _float_tiff(5600, 5600), "image/tiff"),
    ],
)
async def test_an_image_just_under_the_pixel_cap_stays_within_the_memory_bound(
    server, kind, data, mime
):
    url, proc = server
    uri = _data_uri(data(), mime)
    async with _client(url) as hostile, _client(url) as other:
        base = await _baseline(other)
        with Memory(proc.pid) as mem:
            task = asyncio.create_task(hostile.call_tool("vqa", {"image": uri, "question": "Q?"}))
            # Wait until the server is visibly decoding (its memory grows by 64 MiB),
            # then make a small call: it must finish while the big one still runs.
            while _status(proc.pid)["VmRSS"] - mem.before < 64 and not task.done():
                await asyncio.sleep(0.01)
            assert not task.done(), "the big image finished before it could be observed"
            start = time.perf_counter()
            small = await other.call_tool(*SMALL_CALL)
            small_s = time.perf_counter() - start
            small_first = not task.done()
            result = await task
    assert not result.is_error, _text(result)
    assert result.structured_content["image"]["meta"]["original_size"] == [5600, 5600]
    assert not small.is_error, _text(small)
    assert small_first, f"the small call waited for the {kind} ({small_s:.1f} s, base {base:.2f})"
    assert small_s < 20 * base + 2.0, (small_s, base)
    assert mem.peak < PEAK_BOUND_MIB, f"{kind}: peak +{mem.peak:.0f} MiB"
    # The rendering (94 MB) is over the held budget on its own, so it is not kept.
    assert mem.retained < HELD_MIB + SLACK_MIB, f"{kind}: retained +{mem.retained:.0f} MiB"


async def test_many_uploads_are_held_within_the_byte_budget(server):
    url, proc = server
    uploads = [
        _data_uri(flat_png(3000, 3000, (40 * i, 100, 200 - 30 * i, 255))) for i in range(6)
    ]  # 27 MB each once decoded: one fits the 32 MiB budget
    async with _client(url) as client:
        await _baseline(client)
        with Memory(proc.pid) as mem:
            results = [
                await client.call_tool("vqa", {"image": uri, "question": f"Upload {i}?"})
                for i, uri in enumerate(uploads)
            ]
        handles = [r.structured_content["image"]["handle"] for r in results]
        latest = await client.read_resource(handles[-1])
        with pytest.raises(Exception) as dropped:
            await client.read_resource(handles[0])
    assert all(not r.is_error for r in results), [_text(r) for r in results]
    assert latest.contents[0].blob
    assert "MEDMO_MAX_HELD_IMAGE_BYTES" in str(dropped.value), str(dropped.value)
    assert f"{HELD_MIB * MIB:,} bytes" in str(dropped.value), str(dropped.value)
    assert mem.peak < PEAK_BOUND_MIB, mem.peak
    assert mem.retained < HELD_MIB + SLACK_MIB, mem.retained


def _zero_nifti_gz(path: Path, shape: tuple[int, int, int]) -> None:
    """A gzipped float32 NIfTI-1 volume of zeros, streamed (no full-size buffer here)."""
    import gzip

    import nibabel

    header = nibabel.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    header.set_sform(np.eye(4), code=1)
    plane = bytes(shape[0] * shape[1] * 4)
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(header.binaryblock + bytes(4))
        for _ in range(shape[2]):
            out.write(plane)


async def test_a_small_nii_gz_expanding_near_the_byte_cap_stays_within_the_memory_bound(
    server, allowed
):
    url, proc = server
    shape = (512, 512, 400)  # 400 MiB of float32 once inflated, under the 512 MiB cap
    _zero_nifti_gz(allowed / "zeros.nii.gz", shape)
    assert (allowed / "zeros.nii.gz").stat().st_size < 1_000_000
    args = {"image": "zeros.nii.gz", "slice": 200, "question": "Q?"}
    async with _client(url) as hostile, _client(url) as other:
        base = await _baseline(other)
        with Memory(proc.pid) as mem:
            start = time.perf_counter()
            result, small = await asyncio.gather(
                hostile.call_tool("vqa", args), other.call_tool(*SMALL_CALL)
            )
            both_s = time.perf_counter() - start
    assert not result.is_error, _text(result)
    meta = result.structured_content["image"]["meta"]
    assert meta["original_size"] == [512, 512] and meta["slice"] == 200, meta
    assert meta["num_slices"] == 400, meta
    assert not small.is_error, _text(small)
    assert both_s < 20 * base + 30.0, (both_s, base)
    assert mem.peak < PEAK_BOUND_MIB, f"peak +{mem.peak:.0f} MiB"
    # only the one slice is kept in memory; the volume stays in a temporary file
    assert mem.retained < HELD_MIB + SLACK_MIB, f"retained +{mem.retained:.0f} MiB"


# -- text -----------------------------------------------------------------------------

LONG_TEXTS = [
    ("text_qa", "question", {"question": "lung nodule? " * 7_700}),  # 100 KB
    ("text_qa", "question", {"question": "lung nodule? " * 77_000}),  # 1 MB
    ("summarize_report", "report_text", {"report_text": "No effusion. " * 20_000}),
    ("text_qa", "options", {"question": "Which?", "options": ["organ"] * 40_000}),
]


@pytest.mark.parametrize(("tool", "name", "args"), LONG_TEXTS, ids=["100k", "1m", "report", "opts"])
async def test_long_text_is_refused_before_tokenising_and_blocks_nobody(server, tool, name, args):
    url, proc = server
    async with _client(url) as hostile, _client(url) as other:
        base = await _baseline(other)
        with Memory(proc.pid) as mem:
            start = time.perf_counter()
            result, small = await asyncio.gather(
                hostile.call_tool(tool, args), other.call_tool(*SMALL_CALL)
            )
            refused_in = time.perf_counter() - start
    assert result.is_error
    text = _text(result)
    assert text.startswith("LimitExceededError: " + name), text
    assert "16,000-character limit" in text and "MEDMO_MAX_TEXT_CHARS" in text, text
    assert not small.is_error, _text(small)
    # No model time was spent on it: refused about as fast as a small call completes.
    assert refused_in < 10 * base + 2.0, (refused_in, base)
    assert mem.peak < 64, mem.peak
    assert mem.retained < SLACK_MIB, mem.retained


def test_flat_png_helper_writes_the_image_it_claims():
    image = Image.open(io.BytesIO(flat_png(7, 3, (1, 2, 3, 4))))
    assert image.size == (7, 3) and image.mode == "RGBA"
    assert (np.asarray(image) == [1, 2, 3, 4]).all()
