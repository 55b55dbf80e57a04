"""The viewer app in a real browser, under a minimal host that follows the MCP Apps spec.

The host page (modelled on the ext-apps validator's mock host) puts the view in a sandboxed
iframe whose ``srcdoc`` is the resource read from a real ``medmo serve --http``, under the
default CSP a host must apply; its JSON-RPC bridge answers ``ui/initialize``, sends the
tool input and the real tool result, and proxies the view's ``tools/call`` to the server
(only for tools whose visibility includes ``"app"``). Playwright drives Debian's chromium.

Boxes come from the scripted backend (the tiny random model cannot draw any); the last
test runs the same path against the tiny checkpoint, whose results have no boxes.
Screenshots are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from browsers import ARTIFACTS, LAUNCH, require_chromium
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from PIL import Image
from servers import free_port, start_process

from medmo_agent.testing import scripted_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VIEWER = "ui://medmo/viewer.html"
RENDER = "viewer_render"
# two boxes in the 256 x 256 space the model sees the 128 x 128 CT slice in
BOXES = "nodule: [40, 60, 120, 140]\neffusion: [140, 40, 220, 120]"
# what a host must apply to a view whose resource declares no CSP (ext-apps 2026-01-26)
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' data:; connect-src 'none';"
)
# the methods a view may send (the ext-apps validator's list)
KNOWN_METHODS = {
    "ui/initialize",
    "ui/notifications/initialized",
    "ui/notifications/size-changed",
    "ui/notifications/request-teardown",
    "ui/open-link",
    "ui/download-file",
    "ui/message",
    "ui/update-model-context",
    "ui/request-display-mode",
    "tools/call",
    "tools/list",
    "resources/read",
    "notifications/message",
    "ping",
}

HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<iframe id="app" sandbox="allow-scripts" style="width:960px;height:700px;border:0"></iframe>
<script>
const iframe = document.getElementById("app");
window.__log = [];
window.__downloads = [];
let setup = null;
const send = (message) => iframe.contentWindow.postMessage(message, "*");
window.addEventListener("message", async (event) => {
  if (event.source !== iframe.contentWindow) return;
  const msg = event.data;
  window.__log.push(msg);
  if (!msg || msg.jsonrpc !== "2.0") return;
  const reply = (result) => send({ jsonrpc: "2.0", id: msg.id, result });
  const fail = (code, message) => send({ jsonrpc: "2.0", id: msg.id, error: { code, message } });
  switch (msg.method) {
    case "ui/initialize":
      return reply({
        protocolVersion: "2026-01-26",
        hostInfo: { name: "medmo-test-host", version: "1.0.0" },
        hostCapabilities: { serverTools: {}, serverResources: {}, downloadFile: {} },
        hostContext: { theme: "light", displayMode: "inline", availableDisplayModes: ["inline"],
                       containerDimensions: { maxHeight: 900 }, platform: "web", locale: "en-US" },
      });
    case "ui/notifications/initialized":
      send({ jsonrpc: "2.0", method: "ui/notifications/tool-input",
             params: { arguments: setup.input } });
      send({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: setup.result });
      return;
    case "ui/notifications/size-changed":
      iframe.style.height = msg.params.height + "px";
      return;
    case "tools/call": {
      const tool = setup.tools[msg.params.name];
      const ui = (tool && tool._meta && tool._meta.ui) || {};
      if (!tool || !(ui.visibility || ["model", "app"]).includes("app")) {
        return fail(-32602, "tool not available to apps: " + msg.params.name);
      }
      try { return reply(await window.mcpRequest("tools/call", msg.params)); }
      catch (err) { return fail(-32603, String(err)); }
    }
    case "resources/read":
      try { return reply(await window.mcpRequest("resources/read", msg.params)); }
      catch (err) { return fail(-32603, String(err)); }
    case "ui/download-file":
      window.__downloads.push(msg.params);
      return reply({});
    case "ping":
      return reply({});
    default:
      if (msg.id !== undefined && msg.method !== undefined) return fail(-32601, "unknown method");
  }
});
window.loadView = (s) => {
  setup = s;
  const csp = '<meta http-equiv="Content-Security-Policy" content="' + s.csp + '">';
  iframe.srcdoc = s.html.replace("<head>", "<head>" + csp);
};
</script></body></html>"""


def _dump(model: Any) -> dict:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


@asynccontextmanager
async def _serve(image_dir: Path, *args: str, env: dict[str, str]) -> AsyncIterator[Client]:
    """``medmo serve --http`` on a free port, and an MCP client connected to it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    cmd = [sys.executable, "-m", "medmo_agent.cli", "serve", "--http", "--port", str(port)]
    cmd += ["--allow-dir", str(image_dir), *args]

    def ready() -> bool:
        try:
            return httpx.post(url, content=b"{}", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    env = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **env}
    with start_process(cmd, ready_check=ready, env=env, cwd=REPO, timeout=120) as proc:
        transport = streamable_http_client(url, http_client=create_mcp_http_client())
        async with Client(transport, read_timeout_seconds=120) as client:
            yield client
        assert proc.alive(), proc.log_text()


@pytest.fixture
def images(tmp_path: Path, nifti: str) -> Path:
    from pydicom import examples

    root = tmp_path / "images"
    root.mkdir()
    shutil.copy(examples.get_path("ct"), root / "ct.dcm")
    shutil.copy(nifti, root / "head.nii")
    return root


@pytest.fixture
async def browser():
    require_chromium()
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(**LAUNCH)
        yield launched
        await launched.close()


class Host:
    """The host page with the view loaded, and what went through its bridge."""

    def __init__(self, page: Any, client: Client):
        self.page = page
        self.client = client
        self.frame = page.frame_locator("#app")
        self.app = self.frame.locator("#medmo-app")
        #: The view's tools/call requests that reached the server, with their results.
        self.calls: list[tuple[dict, dict]] = []

    @classmethod
    async def open(cls, browser: Any, client: Client, tool: str, arguments: dict) -> Host:
        """Read the view from the server, call ``tool``, and show its result in the view."""
        page = await browser.new_page(viewport={"width": 1200, "height": 1000})
        host = cls(page, client)
        await page.expose_function("mcpRequest", host._forward)
        await page.set_content(HOST_PAGE)
        tools = {t.name: _dump(t) for t in (await client.list_tools()).tools}
        uri = tools[tool]["_meta"]["ui"]["resourceUri"]
        (resource,) = (await client.read_resource(uri)).contents
        assert resource.mime_type == "text/html;profile=mcp-app"
        host.result = _dump(await client.call_tool(tool, arguments))
        await page.evaluate(
            "s => window.loadView(s)",
            {
                "html": resource.text,
                "csp": DEFAULT_CSP,
                "tools": tools,
                "input": arguments,
                "result": host.result,
            },
        )
        return host

    async def _forward(self, method: str, params: dict) -> dict:
        if method == "tools/call":
            answer = _dump(await self.client.call_tool(params["name"], params["arguments"]))
            self.calls.append((params, answer))
            return answer
        if method == "resources/read":
            return _dump(await self.client.read_resource(params["uri"]))
        raise ValueError(method)

    async def rendered(self, count: int) -> None:
        """Wait until the view has drawn ``count`` renderings from the server."""
        from playwright.async_api import expect

        await expect(self.app).to_have_attribute("data-renders", str(count), timeout=30_000)

    async def log(self) -> list[dict]:
        return await self.page.evaluate("window.__log")


def _colour(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _close(a: tuple, b: tuple, tol: int = 40) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=False))


async def test_ct_boxes_toggle_hover_window_and_export_in_a_spec_host(browser, images):
    from playwright.async_api import expect

    async with _serve(images, "--backend", "scripted", env=scripted_env(BOXES)) as client:
        host = await Host.open(browser, client, "ground", {"image": str(images / "ct.dcm")})
        await host.rendered(1)
        frame, app = host.frame, host.app
        boxes = host.result["structuredContent"]["boxes"]
        assert len(boxes) == 2 and not host.result.get("isError")
        await expect(app.locator(".medmo-canvas")).to_have_attribute("data-visible-boxes", "2")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-ct-boxes.png"))

        # boxes at the right pixels: each box's rectangle over the image, and its colour
        img = await frame.locator("img.medmo-image").bounding_box()
        (render_call, view) = host.calls[0]
        uri = host.result["structuredContent"]["result_uri"]
        assert render_call == {"name": RENDER, "arguments": {"result": uri}}
        width, height = view["structuredContent"]["width"], view["structuredContent"]["height"]
        scale_x, scale_y = img["width"] / width, img["height"] / height
        shot = Image.open(io.BytesIO(await host.page.screenshot())).convert("RGB")
        for i, box in enumerate(boxes):
            rect = await frame.locator(f".medmo-box[data-index='{i}']").bounding_box()
            assert abs(rect["x"] - (img["x"] + box["x1"] * scale_x)) <= 1.5
            assert abs(rect["y"] - (img["y"] + box["y1"] * scale_y)) <= 1.5
            assert abs(rect["width"] - (box["x2"] - box["x1"]) * scale_x) <= 1.5
            assert abs(rect["height"] - (box["y2"] - box["y1"]) * scale_y) <= 1.5
            colour = _colour(view["structuredContent"]["boxes"][i]["color"])
            edge = (round(rect["x"] + 1), round(rect["y"] + rect["height"] * 0.6))
            assert _close(shot.getpixel(edge), colour), (i, shot.getpixel(edge), colour)

        # a toggle hides one finding
        await frame.locator(".medmo-findings input[data-index='1']").uncheck()
        await expect(app.locator(".medmo-canvas")).to_have_attribute("data-visible-boxes", "1")
        assert await frame.locator(".medmo-box[data-index='1']").count() == 0

        # hovering a box shows its size in mm; the pointer's position reads in px and mm
        await frame.locator(".medmo-box[data-index='0']").hover()
        await expect(frame.locator(".medmo-tip")).to_contain_text("mm")
        await expect(frame.locator(".medmo-tip")).to_contain_text("nodule")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-ct-hover.png"))
        row_mm, col_mm = view["structuredContent"]["pixel_spacing"]
        sx, sy = round(img["x"] + 100 * scale_x), round(img["y"] + 110 * scale_y)
        await host.page.mouse.move(sx, sy)
        text = await frame.locator(".medmo-pointer").inner_text()
        px = re.search(r"x (\d+), y (\d+) px", text)
        mm = re.search(r"x ([\d.]+), y ([\d.]+) mm", text)
        assert px and mm, text
        expected_x, expected_y = (sx - img["x"]) / scale_x, (sy - img["y"]) / scale_y
        assert abs(int(px[1]) - expected_x) <= 1 and abs(int(px[2]) - expected_y) <= 1
        assert abs(float(mm[1]) - expected_x * col_mm) <= 0.7
        assert abs(float(mm[2]) - expected_y * row_mm) <= 0.7
        # a click pins the position; a click on a box shows that box's corners and size
        await host.page.mouse.click(sx, sy)
        await expect(frame.locator(".medmo-pointer")).to_contain_text(f"Pinned: x {px[1]}")
        await frame.locator(".medmo-box[data-index='0']").click()
        await expect(frame.locator(".medmo-box-detail")).to_contain_text("Box 1: nodule")
        await expect(frame.locator(".medmo-box-detail")).to_contain_text("mm")

        # a window change goes through the app-only tool to the server and back
        before = await frame.locator("img.medmo-image").get_attribute("src")
        await frame.locator(".medmo-preset").select_option("bone")
        await host.rendered(2)
        await expect(app).to_have_attribute("data-window", "2000/500")
        asked, answered = host.calls[-1]
        assert asked["name"] == RENDER and asked["arguments"]["window"] == "bone"
        assert answered["structuredContent"]["window"]["name"] == "bone"
        assert await frame.locator("img.medmo-image").get_attribute("src") != before
        await frame.locator(".medmo-width").fill("400")
        await frame.locator(".medmo-level").fill("40")
        await frame.locator("button", has_text="Apply").click()
        await host.rendered(3)
        await expect(app).to_have_attribute("data-window", "400/40")
        assert host.calls[-1][0]["arguments"]["window"] == "400/40"
        # the toggle survives a re-render
        await expect(app.locator(".medmo-canvas")).to_have_attribute("data-visible-boxes", "1")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-ct-window.png"))

        # zoom changes the drawn size, fit restores it
        fitted = (await frame.locator("img.medmo-image").bounding_box())["width"]
        await frame.locator("button", has_text="+").click()
        zoomed = (await frame.locator("img.medmo-image").bounding_box())["width"]
        assert zoomed > fitted * 1.1, (fitted, zoomed)
        await frame.locator("button", has_text="Fit").click()
        assert (await frame.locator("img.medmo-image").bounding_box())["width"] == fitted

        # export: the host saves a full-resolution PNG with the visible box drawn
        await frame.locator("button", has_text="Export PNG").click()
        await host.page.wait_for_function("window.__downloads.length === 1")
        (download,) = await host.page.evaluate("window.__downloads")
        (item,) = download["contents"]
        assert item["resource"]["mimeType"] == "image/png"
        exported = Image.open(io.BytesIO(base64.b64decode(item["resource"]["blob"])))
        exported = exported.convert("RGB")
        assert exported.size == (width, height)
        first, second = (view["structuredContent"]["boxes"][i] for i in (0, 1))
        mid = int((boxes[0]["y1"] + boxes[0]["y2"]) / 2)
        assert _close(exported.getpixel((int(boxes[0]["x1"]), mid)), _colour(first["color"]), 10)
        mid = int((boxes[1]["y1"] + boxes[1]["y2"]) / 2)
        assert not _close(exported.getpixel((int(boxes[1]["x2"]), mid)), _colour(second["color"]))

    # what the view sent follows the protocol (the ext-apps validator's behavioural rules)
    log = await host.log()
    methods = [m.get("method") for m in log]
    assert methods[0] == "ui/initialize" and "appCapabilities" in log[0]["params"]
    assert "ui/notifications/initialized" in methods
    assert "ui/notifications/size-changed" in methods
    for message in log:
        assert message["jsonrpc"] == "2.0"
        assert message.get("method") in KNOWN_METHODS or "result" in message, message


async def test_the_slice_slider_changes_the_picture_and_hides_boxes_off_their_slice(
    browser, images
):
    from playwright.async_api import expect

    async with _serve(images, "--backend", "scripted", env=scripted_env(BOXES)) as client:
        host = await Host.open(
            browser, client, "ground", {"image": str(images / "head.nii"), "slice": 5}
        )
        await host.rendered(1)
        frame, app = host.frame, host.app
        found = len(host.result["structuredContent"]["boxes"])
        assert found >= 1
        await expect(app).to_have_attribute("data-position", "5")
        await expect(app.locator(".medmo-canvas")).to_have_attribute(
            "data-visible-boxes", str(found)
        )
        first = await frame.locator("img.medmo-image").get_attribute("src")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-nifti-slice-5.png"))

        slider = frame.locator(".medmo-slider")
        await slider.focus()
        await slider.press("ArrowRight")
        await host.rendered(2)
        await expect(app).to_have_attribute("data-position", "6")
        assert host.calls[-1][0]["arguments"]["slice"] == 6
        assert await frame.locator("img.medmo-image").get_attribute("src") != first
        await expect(app.locator(".medmo-canvas")).to_have_attribute("data-visible-boxes", "0")
        await expect(frame.locator(".medmo-status")).to_contain_text("found on slice 5")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-nifti-slice-6.png"))

        await slider.press("ArrowLeft")
        await host.rendered(3)
        await expect(app).to_have_attribute("data-position", "5")
        assert await frame.locator("img.medmo-image").get_attribute("src") == first
        await expect(app.locator(".medmo-canvas")).to_have_attribute(
            "data-visible-boxes", str(found)
        )


async def test_on_the_tiny_checkpoint_the_view_shows_the_image_and_rewindows_it(
    browser, images, tiny_checkpoint
):
    from playwright.async_api import expect

    model = ("--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32")
    async with _serve(images, *model, "--max-new-tokens", "8", env={}) as client:
        host = await Host.open(browser, client, "ground", {"image": str(images / "ct.dcm")})
        await host.rendered(1)
        frame, app = host.frame, host.app
        # random text holds no boxes: the error comes with the held result, and the view
        # still shows its image
        assert host.result["isError"] is True
        assert host.result["structuredContent"]["backend"] == "transformers"
        await expect(frame.locator(".medmo-findings")).to_contain_text("No boxes.")
        await expect(frame.locator(".medmo-status")).to_contain_text("no bounding boxes")
        await frame.locator(".medmo-preset").select_option("lung")
        await host.rendered(2)
        await expect(app).to_have_attribute("data-window", "1500/-600")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-tiny-lung.png"))


async def test_a_volume_sweep_opens_on_its_key_slice_and_its_findings_jump_and_hide(
    browser, tmp_path
):
    from playwright.async_api import expect

    from medmo_agent.testing.volumes import Phantom, write_dicom_series

    root = tmp_path / "images"
    # a slice missing from the series: the sweep warns, and the view shows the warning
    study = write_dicom_series(Phantom(skip=(15,)), root / "study")
    env = scripted_env(responder="lesion")
    async with _serve(root, "--backend", "scripted", env=env) as client:
        arguments = {"image": str(study), "targets": ["nodule"], "slices": "2:20"}
        host = await Host.open(browser, client, "ground_volume", arguments)
        await host.rendered(1)
        frame, app = host.frame, host.app
        canvas = app.locator(".medmo-canvas")
        data = host.result["structuredContent"]
        assert not host.result.get("isError"), host.result["content"][0]["text"]
        (finding,) = data["findings"]
        assert finding["key_slice"] == 8 and finding["slice_range"] == [5, 11]
        assert data["warnings"], "a missing slice is reported"

        # it opens on the finding's key slice, the slider spanning the slices swept
        assert host.calls[0][0] == {"name": RENDER, "arguments": {"result": data["result_uri"]}}
        await expect(app).to_have_attribute("data-position", "8")
        slider = frame.locator(".medmo-slider")
        assert (await slider.get_attribute("min"), await slider.get_attribute("max")) == (
            "2",
            "19",
        )
        assert await slider.input_value() == "8"
        await expect(canvas).to_have_attribute("data-visible-boxes", "1")
        await expect(frame.locator(".medmo-slice-note")).to_have_text("Slice 8: 1 box(es)")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-volume-key-slice.png"))

        # the box is the sweep's box of that slice, at its pixels, around the bright lesion
        (swept,) = [e for e in data["per_slice"] if e["slice"] == 8]
        x1, y1, x2, y2 = swept["boxes"][0]["box"]
        view = host.calls[0][1]["structuredContent"]
        img = await frame.locator("img.medmo-image").bounding_box()
        scale_x, scale_y = img["width"] / view["width"], img["height"] / view["height"]
        rect = await frame.locator(".medmo-box[data-index='0']").bounding_box()
        assert abs(rect["x"] - (img["x"] + x1 * scale_x)) <= 1.5
        assert abs(rect["y"] - (img["y"] + y1 * scale_y)) <= 1.5
        assert abs(rect["width"] - (x2 - x1) * scale_x) <= 1.5
        assert abs(rect["height"] - (y2 - y1) * scale_y) <= 1.5
        shot = Image.open(io.BytesIO(await host.page.screenshot())).convert("RGB")
        centre = (round(rect["x"] + rect["width"] / 2), round(rect["y"] + rect["height"] / 2))
        assert min(shot.getpixel(centre)) > 200, "the lesion is bright inside its box"
        outside = (round(rect["x"] - 0.3 * rect["width"]), centre[1])
        # -50 HU through the series' 400/50 window is grey 64
        assert max(shot.getpixel(outside)) < 100, "the background is dark beside it"
        edge = (round(rect["x"] + 1), round(rect["y"] + rect["height"] * 0.6))
        assert _close(shot.getpixel(edge), _colour(view["boxes"][0]["color"]))

        # the findings list: label, slices, key slice, extents, volume, centre and frame
        row = frame.locator(".medmo-volume-finding")
        await expect(row).to_have_count(1)
        x_mm, y_mm, z_mm = finding["extent_mm"]
        for text in (
            f"#{finding['id']} nodule",
            "key slice 8",
            "slices 5–11",
            f"{x_mm:.1f} × {y_mm:.1f} × {z_mm:.1f} mm",
            f"≤ {finding['volume_ml']:.2f} ml",
            "(" + ", ".join(f"{v:.1f}" for v in finding["center_mm"]) + ") mm LPS",
        ):
            await expect(row).to_contain_text(text)
        assert await row.locator(".medmo-isolated").count() == 0
        await expect(frame.locator(".medmo-volume-notes")).to_contain_text(data["warnings"][0])

        # a swept slice without the lesion shows no box
        await slider.focus()
        await slider.press("Home")
        await host.rendered(2)
        await expect(app).to_have_attribute("data-position", "2")
        assert host.calls[-1][0]["arguments"]["slice"] == 2
        await expect(canvas).to_have_attribute("data-visible-boxes", "0")
        assert await frame.locator(".medmo-box").count() == 0
        await expect(frame.locator(".medmo-slice-note")).to_have_text("Slice 2: 0 box(es)")
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-volume-clear-slice.png"))

        # clicking the finding jumps to its key slice and highlights its box
        await row.locator(".medmo-finding-go").click()
        await host.rendered(3)
        await expect(app).to_have_attribute("data-position", "8")
        assert host.calls[-1][0]["arguments"]["slice"] == 8
        assert await slider.input_value() == "8"
        await expect(canvas).to_have_attribute("data-visible-boxes", "1")
        await expect(frame.locator(".medmo-box.medmo-selected")).to_have_count(1)
        await expect(row).to_have_class(re.compile("medmo-active"))
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-volume-finding-jump.png"))

        # toggling the finding off hides its boxes on every slice
        await row.locator("input[type='checkbox']").uncheck()
        await expect(canvas).to_have_attribute("data-visible-boxes", "0")
        await expect(frame.locator(".medmo-slice-note")).to_have_text(
            "Slice 8: 0 box(es), 1 hidden"
        )
        await slider.press("ArrowRight")
        await host.rendered(4)
        await expect(app).to_have_attribute("data-position", "9")
        assert len(host.calls[-1][1]["structuredContent"]["boxes"]) == 1, "slice 9 has a box"
        await expect(canvas).to_have_attribute("data-visible-boxes", "0")
        await expect(frame.locator(".medmo-slice-note")).to_have_text(
            "Slice 9: 0 box(es), 1 hidden"
        )
        await host.page.screenshot(path=str(ARTIFACTS / "mcp-app-volume-finding-hidden.png"))
        await row.locator("input[type='checkbox']").check()
        await expect(canvas).to_have_attribute("data-visible-boxes", "1")
