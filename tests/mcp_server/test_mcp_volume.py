"""The volume sweep over MCP, with a real SDK client: a progress notification per slice,
the findings and an overview picture in the result, every slice by resource URI."""

from __future__ import annotations

import base64
import io
import json

from mcp import Client
from mcp_helpers import make_server
from PIL import Image

from mcp_server.caching import IMMUTABLE
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series


async def test_a_series_sweep_reports_each_slice_and_returns_findings_and_an_overview(
    image_dir,
):
    write_dicom_series(Phantom(), image_dir / "study")
    backend = ScriptedBackend(responder=lesion_reply)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(make_server(backend, image_dir)) as client:
        result = await client.call_tool(
            "ground_volume",
            {"image": str(image_dir / "study"), "targets": ["nodule"], "slices": "2:14"},
            progress_callback=on_progress,
        )
        data = result.structured_content
        slices = await client.read_resource(data["result_uri"] + "/slices")
        # the result URI stands for the study: a later call looks at the key slice
        closer = await client.call_tool(
            "ground", {"image": data["result_uri"], "slice": 8, "targets": ["nodule"]}
        )
    assert not result.is_error, result.content[0].text
    # one notification per slice, in order, out of the slices swept
    assert [p for p, _, _ in seen] == [float(i) for i in range(1, 13)]
    assert {t for _, t, _ in seen} == {12.0}
    assert all("slices)" in m for _, _, m in seen)
    # the findings travel in the structured content, in the agreed shape
    assert data["task"] == "ground_volume" and data["frame"] == "LPS"
    assert data["slices"] == list(range(2, 14))
    assert [e["slice"] for e in data["per_slice"]] == data["slices"]
    (finding,) = data["findings"]
    assert finding["slice_range"] == [5, 11] and finding["key_slice"] == 8
    assert data["source"].startswith("path#"), "no path in the result unless asked"
    # the overview strip of key slices comes as image content, small
    (image,) = [c for c in result.content if c.type == "image"]
    png = base64.b64decode(image.data)
    assert len(png) < 64 * 1024
    assert Image.open(io.BytesIO(png)).height == 192
    assert data["result_uri"] + "/slices" in result.content[0].text
    # every slice's full result, by reference rather than inline: linked, and as fixed
    # as the sweep itself, so a client may keep it
    links = {c.name: c.uri for c in result.content if c.type == "resource_link"}
    assert links.pop("image") == data["image"]["handle"]  # the volume, held by the server
    assert links == {"result": data["result_uri"], "slices": data["result_uri"] + "/slices"}
    assert (slices.ttl_ms, slices.cache_scope) == (IMMUTABLE.ttl_ms, "private")
    full = json.loads(slices.contents[0].text)
    assert sorted(int(k) for k in full) == list(range(2, 14))
    assert full["8"]["boxes"][0]["width_mm"] > 10
    assert "raw_text" in full["8"] and "raw_text" not in data["per_slice"][0]
    assert closer.structured_content["image"]["meta"]["slice"] == 8
    assert closer.structured_content["boxes"][0]["label"] == "nodule"


async def test_the_slices_resource_of_a_result_that_is_no_sweep_is_an_error(
    scripted_server, image_dir
):
    async with Client(scripted_server(["Findings: clear."])) as client:
        result = await client.call_tool("report", {"image": str(image_dir / "dark.png")})
        uri = result.structured_content["result_uri"] + "/slices"
        try:
            await client.read_resource(uri)
        except Exception as exc:  # the SDK raises the server's resource error
            assert "not a volume sweep" in str(exc)
        else:
            raise AssertionError("reading /slices of a report result must fail")


async def test_cancelling_a_sweep_stops_the_slices_not_yet_read(image_dir):
    import anyio
    from mcp_helpers import BlockingBackend

    from medmo_agent.config import Settings

    class Counting(BlockingBackend):
        calls = 0

        def generate(self, request, on_text=None, cancel=None):
            type(self).calls += 1
            return super().generate(request, on_text=on_text, cancel=cancel)

    write_dicom_series(Phantom(), image_dir / "study")
    backend = Counting()
    server = make_server(backend, image_dir, settings=Settings(volume_concurrency=1))
    async with Client(server) as client:
        async with anyio.create_task_group() as tg:

            async def call():
                await client.call_tool("ground_volume", {"image": str(image_dir / "study")})

            tg.start_soon(call)
            await anyio.to_thread.run_sync(backend.started.wait, 10)
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(backend.stopped.wait, 10)
        assert backend.saw_cancel, "the slice being read saw the cancel event"
        backend.release.set()
        after = await client.call_tool(
            "vqa", {"image": str(image_dir / "dark.png"), "question": "?"}
        )
    assert not after.is_error
    assert Counting.calls == 2, "one slice of 24 was read before the cancel, then the vqa call"
