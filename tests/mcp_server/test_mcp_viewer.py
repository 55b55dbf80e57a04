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
    assert declared >= {"ground", "detect", "ground_volume"}
    assert not TASKS["vqa"].viewer
    assert viewers == declared | {VIEW_TOOL}
    assert tools["ground"].meta == {"ui": {"resourceUri": VIEWER_URI}}
    assert tools["ground_volume"].meta == {"ui": {"resourceUri": VIEWER_URI}}
    assert tools[VIEW_TOOL].meta["ui"] == {"resourceUri": VIEWER_URI, "visibility": ["app"]}
    assert tools[VIEW_TOOL].annotations.read_only_hint is True
    assert "io.modelcontextprotocol/ui" in capabilities.extensions
    (content,) = read.contents
    assert content.mime_type == "text/html;profile=mcp-app"
    assert content.text == viewer_html()


def test_the_view_is_one_document_built_from_the_jupyter_viewers_own_files():
    html = viewer_html()
    # the same source as the Jupyter widget's canvas, inlined, not a copy in the repo
    for name in ("canvas.js", "volume.js", "canvas.css", "app.js", "app.css"):
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


async def test_a_volume_sweep_opens_on_its_key_slice_with_each_slices_boxes(image_dir):
    from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series
    from medmo_agent.volume.display import VolumeSweep, findings_table_html

    write_dicom_series(Phantom(), image_dir / "study")
    server = make_server(ScriptedBackend(responder=lesion_reply), image_dir)
    async with Client(server) as client:
        sweep = await client.call_tool(
            "ground_volume", {"image": str(image_dir / "study"), "slices": "2:14"}
        )
        uri = sweep.structured_content["result_uri"]
        key = await client.call_tool(VIEW_TOOL, {"result": uri})
        bone = await client.call_tool(VIEW_TOOL, {"result": uri, "window": "bone"})
        clear = await client.call_tool(VIEW_TOOL, {"result": uri, "slice": 3})
        unswept = await client.call_tool(VIEW_TOOL, {"result": uri, "slice": 20})
    assert not sweep.is_error, sweep.content[0].text
    data = sweep.structured_content
    (finding,) = data["findings"]
    # clients without Apps: the text and the overview strip (and the links), as before
    kinds = [c.type for c in sweep.content]
    assert kinds[:2] == ["text", "image"] and set(kinds[2:]) == {"resource_link"}
    assert _png(sweep).shape[0] == 192
    for answer in (key, bone, clear, unswept):
        assert not answer.is_error, answer.content[0].text
    view = key.structured_content
    # no slice asked for: the first finding's key slice; the slider spans the slices swept
    assert view["axis"] == "slice" and view["position"] == finding["key_slice"] == 8
    assert bone.structured_content["position"] == 8
    volume = view["volume"]
    assert (volume["first"], volume["last"], volume["start"]) == (2, 13, 8)
    assert volume["status"] is None and volume["notes"] == data["warnings"]
    # the slice's box is the sweep's own, tied to its finding, over the lesion's pixels
    (box,) = view["boxes"]
    (swept,) = [e for e in data["per_slice"] if e["slice"] == 8]
    assert [box[k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx(
        swept["boxes"][0]["box"], abs=0.051
    )
    assert box["finding"] == finding["id"] and box["visible"] is True
    assert box["label"] == f"nodule #{finding['id']}"
    assert f"3D finding #{finding['id']}: slices 5–11, 16.0 × 16.0" in box["detail"]
    pixels = _png(key)
    x1, y1, x2, y2 = (round(box[k]) for k in ("x1", "y1", "x2", "y2"))
    assert pixels[y1:y2, x1:x2].mean() > 200 > np.delete(pixels, np.s_[y1:y2], axis=0).max()
    # the findings list has the notebook table's texts: one reading of the sweep
    (row,) = volume["findings"]
    assert row["slices"] == "5–11" and row["key_slice"] == 8 and row["frame"] == "LPS"
    assert row["isolated"] is False and row["color"] == box["color"]
    table = findings_table_html(VolumeSweep.read(data))
    for text in (row["extent"], row["volume"], row["centre"]):
        assert text in table
    assert row["extent"] == " × ".join(f"{v:.1f}" for v in finding["extent_mm"]) + " mm"
    # a swept slice without the lesion has no boxes; one outside the sweep says so
    assert clear.structured_content["boxes"] == [] and clear.structured_content["position"] == 3
    assert clear.structured_content["volume"]["status"] is None
    assert unswept.structured_content["volume"]["status"] == "Slice 20 was not swept."
    assert not np.array_equal(_png(key), _png(clear))


async def test_a_volume_sweeps_failed_slice_and_warnings_reach_the_view(image_dir):
    from medmo_agent.errors import BackendError
    from medmo_agent.testing.volumes import Phantom, lesion_reply, write_dicom_series

    write_dicom_series(Phantom(skip=(12,)), image_dir / "study")
    calls = []

    def flaky(request):
        calls.append(request)
        if len(calls) == 3:
            raise BackendError("The model server went away.")
        return lesion_reply(request)

    server = make_server(ScriptedBackend(responder=flaky), image_dir)
    async with Client(server) as client:
        sweep = await client.call_tool("ground_volume", {"image": str(image_dir / "study")})
        data = sweep.structured_content
        (failed,) = [e["slice"] for e in data["per_slice"] if e["error"]]
        view = await client.call_tool(VIEW_TOOL, {"result": data["result_uri"], "slice": failed})
    volume = view.structured_content["volume"]
    assert volume["status"].startswith(f"Slice {failed} failed: ")
    assert volume["notes"][0] == f"1 slice(s) failed: {failed}"
    assert volume["notes"][1:] == data["warnings"] and any(
        "missing" in w.lower() for w in data["warnings"]
    )


async def test_a_multiframe_sweep_opens_on_its_key_frame(image_dir):
    from medmo_agent.testing.volumes import Phantom, lesion_reply, write_multiframe

    write_multiframe(Phantom(), image_dir / "enhanced.dcm")
    server = make_server(ScriptedBackend(responder=lesion_reply), image_dir)
    async with Client(server) as client:
        sweep = await client.call_tool("ground_volume", {"image": str(image_dir / "enhanced.dcm")})
        uri = sweep.structured_content["result_uri"]
        key = await client.call_tool(VIEW_TOOL, {"result": uri})
        clear = await client.call_tool(VIEW_TOOL, {"result": uri, "frame": 2})
    assert not key.is_error, key.content[0].text
    (finding,) = sweep.structured_content["findings"]
    view = key.structured_content
    assert (view["axis"], view["position"]) == ("frame", finding["key_slice"])
    assert [b["finding"] for b in view["boxes"]] == [finding["id"]]
    assert (view["volume"]["first"], view["volume"]["last"]) == (0, 23)
    assert clear.structured_content["position"] == 2 and clear.structured_content["boxes"] == []


async def test_a_4d_nifti_sweep_opens_on_its_key_slice_at_the_swept_time_point(image_dir):
    from medmo_agent.testing.volumes import lesion_reply, write_perfusion

    write_perfusion(image_dir / "perfusion.nii.gz")
    server = make_server(ScriptedBackend(responder=lesion_reply), image_dir)
    async with Client(server) as client:
        sweep = await client.call_tool(
            "ground_volume", {"image": str(image_dir / "perfusion.nii.gz"), "frame": 2}
        )
        data = sweep.structured_content
        key = await client.call_tool(VIEW_TOOL, {"result": data["result_uri"]})
        below = await client.call_tool(
            VIEW_TOOL,
            {"result": data["result_uri"], "slice": data["findings"][0]["slice_range"][0]},
        )
    assert not sweep.is_error, sweep.content[0].text
    assert data["time_point"] == 2
    (finding,) = data["findings"]
    # slices, not time points, are what the view moves through; time point 2 is shown
    view = key.structured_content
    assert (view["axis"], view["position"]) == ("slice", finding["key_slice"])
    assert (view["volume"]["first"], view["volume"]["last"]) == (0, 19)
    for answer in (key, below):
        (box,) = answer.structured_content["boxes"]
        x1, y1, x2, y2 = (round(box[k]) for k in ("x1", "y1", "x2", "y2"))
        # the lesion, bright under its box (a disc in its box: about pi/4 of it bright)
        assert _png(answer)[y1:y2, x1:x2].mean() > 150
