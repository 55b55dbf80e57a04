"""The interactive viewer as an MCP App: the tools that name it, its HTML resource, and
the app-only tool that re-renders a held result's image with another window or slice.

The browser side (the view in a spec-following host page) is in test_viewer_browser.py.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from mcp import Client
from mcp_helpers import make_server
from PIL import Image

from mcp_server.viewer_app import VIEW_TOOL, VIEWER_URI, viewer_html
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.box_display import box_detail, colour_for
from medmo_agent.tasks.registry import TASKS
from medmo_agent.types import Box

# two boxes in the 256 x 256 space the model sees the 128 x 128 CT slice in
BOXES = "nodule: [40, 60, 120, 140]\neffusion: [140, 40, 220, 120]"
STATIC = Path(__file__).resolve().parents[2] / "jupyter_ext" / "static"


def _png(result) -> np.ndarray:
    (block,) = [c for c in result.content if c.type == "image"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(block.data))))


@pytest.fixture
def ct_server(image_dir: Path, nifti: str):
    shutil.copy(nifti, image_dir / "head.nii")
    return make_server(ScriptedBackend([BOXES]), image_dir)


async def test_box_tools_name_the_viewer_and_its_render_tool_is_for_the_app_only(ct_server):
    async with Client(ct_server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        read = await client.read_resource(VIEWER_URI)
        capabilities = client.server_capabilities
    viewers = {name for name, t in tools.items() if (t.meta or {}).get("ui")}
    # every task declared with the viewer (by default: every task with boxes) names it
    declared = {n for n, task in TASKS.items() if task.viewer}
    assert declared >= {"ground", "detect"}
    assert not TASKS["vqa"].viewer
    assert viewers == declared | {VIEW_TOOL}
    assert tools["ground"].meta == {"ui": {"resourceUri": VIEWER_URI}}
    assert tools[VIEW_TOOL].meta["ui"] == {"resourceUri": VIEWER_URI, "visibility": ["app"]}
    assert tools[VIEW_TOOL].annotations.read_only_hint is True
    assert "io.modelcontextprotocol/ui" in capabilities.extensions
    (content,) = read.contents
    assert content.mime_type == "text/html;profile=mcp-app"
    assert content.text == viewer_html()


def test_the_view_is_one_document_built_from_the_jupyter_viewers_own_files():
    html = viewer_html()
    # the same source as the Jupyter widget's canvas, inlined, not a copy in the repo
    for name in ("canvas.js", "canvas.css", "app.js", "app.css"):
        assert (STATIC / name).read_text(encoding="utf-8") in html, name
    from jupyter_ext.canvas import BoxCanvas

    assert BoxCanvas._esm in html
    # the default app sandbox loads nothing from outside: no external scripts, styles, images
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", html, re.I)
    assert not re.search(r"https?://", html)
    assert html.count("<script type='module'>") == 1


async def test_clients_without_apps_still_get_the_text_and_the_overlay(ct_server, image_dir):
    async with Client(ct_server) as client:
        result = await client.call_tool("ground", {"image": str(image_dir / "ct.dcm")})
    assert not result.is_error, result.content[0].text
    # the text, the overlay, and links to the result and its overlay as resources
    assert [c.type for c in result.content] == ["text", "image", "resource_link", "resource_link"]
    assert "2 box(es)" in result.content[0].text
    assert _png(result).shape[:2] == (128, 128)
    assert len(result.structured_content["boxes"]) == 2


async def test_render_tool_rewindows_the_held_image_and_styles_the_boxes(ct_server, image_dir):
    import pydicom
    from pydicom.pixels import apply_modality_lut

    from medmo_agent.imaging.windowing import apply_window

    async with Client(ct_server) as client:
        ground = await client.call_tool("ground", {"image": str(image_dir / "ct.dcm")})
        uri = ground.structured_content["result_uri"]
        loaded = await client.call_tool(VIEW_TOOL, {"result": uri})
        bone = await client.call_tool(VIEW_TOOL, {"result": uri, "window": "bone"})
        custom = await client.call_tool(VIEW_TOOL, {"result": uri, "window": "400/40"})
    for answer in (loaded, bone, custom):
        assert not answer.is_error, answer.content[0].text
    view = bone.structured_content
    assert (view["width"], view["height"], view["modality"]) == (128, 128, "CT")
    assert view["window"] == {"name": "bone", "width": 2000.0, "level": 500.0}
    assert custom.structured_content["window"]["width"] == 400.0
    assert view["windowable"] is True and view["axis"] is None
    # the PNG is the file's HU values through the bone window, pixel for pixel
    ds = pydicom.dcmread(image_dir / "ct.dcm")
    expected = apply_window(apply_modality_lut(ds.pixel_array, ds), 2000.0, 500.0)
    assert np.array_equal(_png(bone), expected)
    assert not np.array_equal(_png(bone), _png(loaded))
    boxes = [Box(**b) for b in ground.structured_content["boxes"]]
    spacing = tuple(view["pixel_spacing"])
    assert [b["color"] for b in view["boxes"]] == [
        colour_for(b.label, [x.label for x in boxes]) for b in boxes
    ]
    assert [b["detail"] for b in view["boxes"]] == [box_detail(b, spacing) for b in boxes]
    assert "mm" in view["boxes"][0]["detail"]
    # no file name: a path may carry a patient's name
    assert view["export_name"] == "medmo-ground.png"


async def test_render_tool_moves_through_the_slices_of_a_volume(ct_server, image_dir):
    async with Client(ct_server) as client:
        ground = await client.call_tool(
            "ground", {"image": str(image_dir / "head.nii"), "slice": 5}
        )
        uri = ground.structured_content["result_uri"]
        same = await client.call_tool(VIEW_TOOL, {"result": uri})
        other = await client.call_tool(VIEW_TOOL, {"result": uri, "slice": 6})
    assert not ground.is_error, ground.content[0].text
    assert same.structured_content["axis"] == "slice"
    assert same.structured_content["position"] == same.structured_content["box_position"] == 5
    assert other.structured_content["position"] == 6
    assert other.structured_content["box_position"] == 5
    assert other.structured_content["count"] == same.structured_content["count"] > 6
    assert not np.array_equal(_png(same), _png(other))


async def test_render_tool_errors_name_the_result_and_the_fix(ct_server, image_dir):
    async with Client(ct_server) as client:
        text = await client.call_tool("text_qa", {"question": "Which organ makes insulin?"})
        ground = await client.call_tool("ground", {"image": str(image_dir / "ct.dcm")})
        missing = await client.call_tool(VIEW_TOOL, {"result": "medmo://results/0000"})
        not_uri = await client.call_tool(VIEW_TOOL, {"result": str(image_dir / "ct.dcm")})
        textual = await client.call_tool(
            VIEW_TOOL, {"result": text.structured_content["result_uri"]}
        )
        bad_window = await client.call_tool(
            VIEW_TOOL,
            {"result": ground.structured_content["result_uri"], "window": "wide"},
        )
    assert missing.is_error and missing.content[0].text.startswith("NotFoundError")
    assert not_uri.is_error and "result URI" in not_uri.content[0].text
    assert "ct.dcm" not in not_uri.content[0].text
    assert textual.is_error and "was not about an image" in textual.content[0].text
    assert bad_window.is_error and "wide" in bad_window.content[0].text


async def test_on_the_tiny_checkpoint_the_view_renders_a_result_without_boxes(
    tiny_backend, tiny_settings, image_dir
):
    server = make_server(tiny_backend, image_dir, settings=tiny_settings)
    async with Client(server) as client:
        ground = await client.call_tool("ground", {"image": str(image_dir / "ct.dcm")})
        uri = ground.structured_content["result_uri"]
        view = await client.call_tool(VIEW_TOOL, {"result": uri, "window": "lung"})
    # random text holds no boxes: an error that still carries the held result
    assert ground.is_error and ground.structured_content["backend"] == "transformers"
    assert not view.is_error, view.content[0].text
    assert view.structured_content["boxes"] == []
    assert view.structured_content["window"]["name"] == "lung"
    assert _png(view).shape[:2] == (128, 128)
