"""Tool results link to the resources they leave (the result as JSON, the overlay, a held
image), those links read back, and every list and read result says truthfully how long
a client may cache it. In-process, through the SDK's client on the 2026-07-28 path;
tests/mcp_server/test_mcp_revisions.py runs the same over real transports and both
protocol revisions."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_helpers import png_bytes
from PIL import Image

from mcp_server.caching import IMMUTABLE, SERVER_INFO, SERVER_LISTS, UNCACHED

BOX_REPLY = "Fracture <box>[[40, 30, 120, 80]]</box>"
GREY = 20


def _links(result) -> dict[str, object]:
    return {c.name: c for c in result.content if c.type == "resource_link"}


def _png(read) -> np.ndarray:
    (content,) = read.contents
    assert content.mime_type == "image/png"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(content.blob))).convert("RGB"))


def _hint(result) -> tuple[int, str]:
    return result.ttl_ms, result.cache_scope


async def test_ground_links_its_result_and_overlay_and_both_read_back(scripted_server, image_dir):
    async with Client(scripted_server([BOX_REPLY])) as client:
        result = await client.call_tool("ground", {"image": str(image_dir / "dark.png")})
        links = _links(result)
        as_json = await client.read_resource(links["result"].uri)
        overlay = await client.read_resource(links["overlay"].uri)
    uri = result.structured_content["result_uri"]
    assert [c.type for c in result.content] == ["text", "image", "resource_link", "resource_link"]
    assert set(links) == {"result", "overlay"}, "a file's path is not linked"
    assert (links["result"].uri, links["result"].mime_type) == (uri, "application/json")
    assert (links["overlay"].uri, links["overlay"].mime_type) == (f"{uri}/overlay", "image/png")
    assert json.loads(as_json.contents[0].text) == result.structured_content
    # The overlay as a resource: the original's 200x100 pixels, the box drawn where the
    # result says, nothing drawn elsewhere.
    (box,) = result.structured_content["boxes"]
    pixels = _png(overlay)
    assert pixels.shape[:2] == (100, 200)
    mid_y, left = int((box["y1"] + box["y2"]) / 2), round(box["x1"])
    edge = pixels[mid_y, max(0, left - 1) : left + 2].astype(int)
    assert (np.abs(edge - GREY).max(axis=1) > 60).any(), "the box's left edge is drawn"
    assert pixels[mid_y, int((box["x1"] + box["x2"]) / 2)].tolist() == [GREY] * 3
    assert pixels[5, 195].tolist() == [GREY] * 3
    # The result never changes; its overlay is drawn on a file, which may.
    assert _hint(as_json) == (IMMUTABLE.ttl_ms, "private")
    assert _hint(overlay) == (0, "private")


async def test_an_inline_image_is_linked_and_its_overlay_is_as_durable_as_the_result(
    scripted_server,
):
    data = base64.b64encode(png_bytes(np.full((48, 96, 3), 200, np.uint8))).decode()
    async with Client(scripted_server([BOX_REPLY])) as client:
        result = await client.call_tool("ground", {"image": f"data:image/png;base64,{data}"})
        links = _links(result)
        image = await client.read_resource(links["image"].uri)
        overlay = await client.read_resource(links["overlay"].uri)
    assert links["image"].uri == result.structured_content["image"]["handle"]
    assert links["image"].uri.startswith("medmo://images/")
    assert _png(image).shape[:2] == (48, 96)
    assert _png(overlay).shape[:2] == (48, 96)
    assert _hint(image) == _hint(overlay) == (IMMUTABLE.ttl_ms, "private")


async def test_a_result_without_boxes_links_only_itself_and_has_no_overlay(
    scripted_server, image_dir
):
    async with Client(scripted_server(["Findings: clear. Impression: normal."])) as client:
        result = await client.call_tool("report", {"image": str(image_dir / "dark.png")})
        uri = result.structured_content["result_uri"]
        with pytest.raises(MCPError) as missing:
            await client.read_resource(uri + "/overlay")
        with pytest.raises(MCPError) as forgotten:
            await client.read_resource("medmo://results/0123456789abcdef/overlay")
    assert [c.type for c in result.content] == ["text", "resource_link"]
    assert _links(result)["result"].uri == uri
    assert missing.value.code == -32602
    assert f"The result {uri} is a report result: it has no boxes to draw." in str(missing.value)
    assert forgotten.value.code == -32602
    assert "No result is held under medmo://results/0123456789abcdef" in str(forgotten.value)


async def test_an_unreadable_answer_still_links_the_result_it_kept(scripted_server, image_dir):
    answer = "There is something odd near the top, hard to say where"
    async with Client(scripted_server([answer])) as client:
        result = await client.call_tool("ground", {"image": str(image_dir / "dark.png")})
        (link,) = [c for c in result.content if c.type == "resource_link"]
        kept = await client.read_resource(link.uri)
    assert result.is_error and "no bounding boxes could be read" in result.content[0].text
    assert link.uri in result.content[0].text
    assert json.loads(kept.contents[0].text)["raw_text"] == answer


async def test_list_and_read_results_carry_truthful_cache_hints(scripted_server, image_dir):
    async with Client(scripted_server()) as client:
        tools = await client.list_tools()
        prompts = await client.list_prompts()
        templates = await client.list_resource_templates()
        listed = await client.list_resources()
        info = await client.read_resource("medmo://server")
        file = await client.read_resource((image_dir / "dark.png").as_uri())
        viewer = await client.read_resource("ui://medmo/viewer.html")
    fixed = (SERVER_LISTS.ttl_ms, "public")
    assert SERVER_LISTS.ttl_ms >= 60_000 and IMMUTABLE.ttl_ms > SERVER_LISTS.ttl_ms
    assert _hint(tools) == _hint(prompts) == _hint(templates) == _hint(viewer) == fixed
    assert _hint(listed) == (UNCACHED.ttl_ms, "private") == (0, "private")
    assert _hint(info) == (SERVER_INFO.ttl_ms, "private")
    assert _hint(file) == (0, "private")
    templates_uris = {t.uri_template for t in templates.resource_templates}
    assert "medmo://results/{result_id}/overlay" in templates_uris
