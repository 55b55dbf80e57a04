"""The MCP tools over a scripted model, through the SDK's in-process client: exact
behaviour of boxes and overlays, result reuse, resources, prompts, progress,
cancellation and the audit log."""

from __future__ import annotations

import base64
import io
import json

import anyio
import jsonschema
import numpy as np
from mcp import Client
from mcp_helpers import BlockingBackend, make_server, model_tools, png_bytes
from PIL import Image

from mcp_server.tools import TOOL_NAMES
from medmo_agent.privacy import path_label

BOX_REPLY = "Fracture <box>[[40, 30, 120, 80]]</box>"


def _image_blocks(result):
    return [c for c in result.content if c.type == "image"]


async def _schemas(client: Client) -> dict[str, dict]:
    return {t.name: t.output_schema for t in (await client.list_tools()).tools}


async def test_server_lists_eight_read_only_closed_world_tools_with_schemas(scripted_server):
    async with Client(scripted_server()) as client:
        tools = {t.name: t for t in model_tools((await client.list_tools()).tools)}
    assert set(tools) == set(TOOL_NAMES)
    for tool in tools.values():
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.open_world_hint is False
        assert tool.annotations.destructive_hint is False
        assert tool.output_schema["type"] == "object"
        assert "raw_text" in tool.output_schema["properties"]
        assert len(tool.description) > 100, "the description is the caller's prompt"
        assert not tool.description.startswith(" ")
    image_schema = tools["vqa"].input_schema["properties"]["image"]
    assert "data URI" in image_schema["description"]
    assert "medmo://results/" in image_schema["description"]
    assert set(tools["ground"].input_schema["properties"]) >= {"window", "slice", "frame"}
    assert tools["vqa"].input_schema["required"] == ["image", "question"]
    assert "image" not in tools["text_qa"].input_schema["properties"]


async def test_ground_returns_boxes_in_original_pixels_and_an_overlay_with_them_drawn(
    scripted_server, image_dir
):
    server = scripted_server([BOX_REPLY])
    async with Client(server) as client:
        schema = (await _schemas(client))["ground"]
        result = await client.call_tool("ground", {"image": str(image_dir / "dark.png")})
    assert not result.is_error
    jsonschema.validate(result.structured_content, schema)
    (box,) = result.structured_content["boxes"]
    assert box["label"] == "Fracture"
    # the model saw the 200x100 image resized; boxes come back in the original's pixels
    sent = server.backend.requests[-1].images[0]
    assert sent.size == (200, 100)
    assert 0 < box["x1"] < box["x2"] <= 200 and 0 < box["y1"] < box["y2"] <= 100
    assert "Fracture" in result.content[0].text
    (block,) = _image_blocks(result)
    assert block.mime_type == "image/png"
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(block.data))).convert("RGB"))
    assert overlay.shape[:2] == (100, 200)
    mid_y = int((box["y1"] + box["y2"]) / 2)
    left = round(box["x1"])
    edge = overlay[mid_y, max(0, left - 1) : left + 2].astype(int)
    assert (np.abs(edge - 20).max(axis=1) > 60).any(), "the box's left edge is drawn"
    inside = overlay[mid_y, int((box["x1"] + box["x2"]) / 2)]
    assert inside.tolist() == [20, 20, 20], "the inside of the box is untouched"
    assert overlay[5, 195].tolist() == [20, 20, 20], "far from the box nothing is drawn"


async def test_detect_counts_objects_and_returns_the_overlay(scripted_server, image_dir):
    reply = "Cell: <box> [10, 10, 30, 30] [50, 20, 70, 40] [100, 50, 130, 80] </box>"
    async with Client(scripted_server([reply])) as client:
        schema = (await _schemas(client))["detect"]
        result = await client.call_tool("detect", {"image": str(image_dir / "dark.png")})
    assert not result.is_error
    jsonschema.validate(result.structured_content, schema)
    assert sum(result.structured_content["counts"].values()) == 3
    assert len(result.structured_content["boxes"]) == 3
    assert "Detected 3" in result.content[0].text
    (block,) = _image_blocks(result)
    Image.open(io.BytesIO(base64.b64decode(block.data))).verify()


async def test_overlay_of_a_large_image_is_downscaled_well_under_one_mebibyte(
    scripted_server, image_dir
):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    (image_dir / "big.png").write_bytes(png_bytes(noisy))
    async with Client(scripted_server(["Mass <box>[[100, 100, 600, 500]]</box>"])) as client:
        result = await client.call_tool("ground", {"image": str(image_dir / "big.png")})
    (block,) = _image_blocks(result)
    png = base64.b64decode(block.data)
    assert len(png) <= 512 * 1024
    assert max(Image.open(io.BytesIO(png)).size) <= 768


async def test_a_result_uri_passed_as_image_reuses_that_image_with_its_window(
    scripted_server, image_dir
):
    server = scripted_server(["Nodule <box>[[10, 10, 40, 40]]</box>", "yes"])
    async with Client(server) as client:
        first = await client.call_tool(
            "ground", {"image": str(image_dir / "ct.dcm"), "window": "lung"}
        )
        uri = first.structured_content["result_uri"]
        assert uri.startswith("medmo://results/")
        assert uri in first.content[0].text
        second = await client.call_tool("vqa", {"image": uri, "question": "Is there a nodule?"})
    assert not second.is_error, second.content[0].text
    # the result kept the real path to reopen the image; the client sees its label
    assert second.structured_content["image"]["handle"] == path_label(str(image_dir / "ct.dcm"))
    assert second.structured_content["image"]["meta"]["window"]["name"] == "lung"
    first_pixels = server.backend.requests[0].images[0].pixels
    second_pixels = server.backend.requests[1].images[0].pixels
    assert np.array_equal(first_pixels, second_pixels)


async def test_an_inline_image_gets_a_handle_readable_as_a_resource(scripted_server):
    data_uri = (
        "data:image/png;base64,"
        + base64.b64encode(png_bytes(np.full((48, 96, 3), 200, np.uint8))).decode()
    )
    async with Client(scripted_server(["a bright square"])) as client:
        result = await client.call_tool("vqa", {"image": data_uri, "question": "What is it?"})
        handle = result.structured_content["image"]["handle"]
        assert handle.startswith("medmo://images/")
        read = await client.read_resource(handle)
        again = await client.call_tool("vqa", {"image": handle, "question": "And now?"})
    (content,) = read.contents
    assert content.mime_type == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(content.blob))).size == (96, 48)
    assert not again.is_error


async def test_results_are_readable_as_json_resources(scripted_server, image_dir):
    async with Client(scripted_server(["Findings: clear lungs. Impression: normal."])) as client:
        result = await client.call_tool("report", {"image": str(image_dir / "dark.png")})
        read = await client.read_resource(result.structured_content["result_uri"])
    body = json.loads(read.contents[0].text)
    assert body["task"] == "report"
    assert body["impression"].startswith("normal")
    assert body == result.structured_content


async def test_resources_list_the_images_in_allowed_folders_only(
    scripted_server, image_dir, outside_dir
):
    (image_dir / "escape.png").symlink_to(outside_dir / "secret.png")
    async with Client(scripted_server()) as client:
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        listing = await client.list_resource_templates()
        templates = [t.uri_template for t in listing.resource_templates]
        info = json.loads((await client.read_resource("medmo://server")).contents[0].text)
        png = await client.read_resource((image_dir / "sub" / "small.png").as_uri())
    assert (image_dir / "dark.png").as_uri() in listed
    assert (image_dir / "sub" / "small.png").as_uri() in listed
    assert (image_dir / "ct.dcm").as_uri() in listed
    assert not any("secret" in u or "escape" in u for u in listed)
    assert {"medmo://results/{result_id}", "medmo://images/{image_id}"} <= set(templates)
    assert info["allowed_dirs"] == [str(image_dir.resolve())]
    assert Image.open(io.BytesIO(base64.b64decode(png.contents[0].blob))).size == (64, 64)


async def test_prompts_describe_workflows_with_the_image_argument(scripted_server):
    async with Client(scripted_server()) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("review_chest_xray", {"image": "cxr/case1.png"})
    assert {"review_chest_xray", "review_ct_slice", "count_cells", "second_opinion"} <= names
    text = prompt.messages[0].content.text
    assert "cxr/case1.png" in text
    assert "`classify`" in text and "`ground`" in text and "`report`" in text


async def test_text_tools_need_no_image(scripted_server):
    async with Client(scripted_server(["- Small effusion\n- No pneumothorax", "B"])) as client:
        schemas = await _schemas(client)
        summary = await client.call_tool(
            "summarize_report", {"report_text": "Findings: small effusion. No pneumothorax."}
        )
        answer = await client.call_tool(
            "text_qa", {"question": "Which drug?", "options": ["aspirin", "heparin"]}
        )
    jsonschema.validate(summary.structured_content, schemas["summarize_report"])
    jsonschema.validate(answer.structured_content, schemas["text_qa"])
    assert summary.structured_content["key_findings"][0] == "Small effusion"
    assert answer.structured_content["choice"] == "B"
    assert answer.structured_content["image"] is None


async def test_progress_notifications_arrive_while_generating(scripted_server, image_dir):
    reply = " ".join(f"word{i}" for i in range(40))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with Client(scripted_server([reply])) as client:
        result = await client.call_tool(
            "report",
            {"image": str(image_dir / "dark.png"), "max_new_tokens": 100},
            progress_callback=on_progress,
        )
    assert not result.is_error
    assert len(seen) == 5  # one every 8 pieces of the 40-word answer
    assert [p for p, _, _ in seen] == [8, 16, 24, 32, 40]
    assert all(total == 100 for _, total, _ in seen)
    assert seen[-1][2] == "40 tokens generated"


async def test_toolkit_calls_run_off_the_event_loop_so_other_requests_are_served(image_dir):
    backend = BlockingBackend()
    server = make_server(backend, image_dir)
    ask = {"image": str(image_dir / "dark.png"), "question": "?"}
    async with Client(server) as client, anyio.create_task_group() as tg:
        results = []

        async def call():
            results.append(await client.call_tool("vqa", ask))

        tg.start_soon(call)
        await anyio.to_thread.run_sync(backend.started.wait, 10)
        tools = await client.list_tools()  # answered while the model is busy
        assert len(model_tools(tools.tools)) == 9
        backend.release.set()
    assert results[0].structured_content["answer"] == "no"


async def test_a_cancelled_call_stops_generation_and_the_server_keeps_serving(image_dir):
    backend = BlockingBackend()
    server = make_server(backend, image_dir)
    ask = {"image": str(image_dir / "dark.png"), "question": "?"}
    async with Client(server) as client:
        async with anyio.create_task_group() as tg:

            async def call():
                await client.call_tool("vqa", ask)

            tg.start_soon(call)
            await anyio.to_thread.run_sync(backend.started.wait, 10)
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(backend.stopped.wait, 10)
        assert backend.saw_cancel, "the model saw the cancel event"
        backend.started.clear()
        backend.release.set()
        after = await client.call_tool("vqa", ask)
    assert not after.is_error


async def test_audit_log_records_each_call_without_pixel_data(scripted_server, tmp_path, image_dir):
    log = tmp_path / "audit" / "calls.jsonl"
    data_uri = (
        "data:image/png;base64,"
        + base64.b64encode(png_bytes(np.full((40, 40, 3), 9, np.uint8))).decode()
    )
    async with Client(scripted_server(["yes"], audit_log=log)) as client:
        await client.call_tool("vqa", {"image": data_uri, "question": "Normal?"})
        await client.call_tool(
            "vqa", {"image": str(image_dir / "missing.png"), "question": "Normal?"}
        )
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["tool"] == "vqa" and first["outcome"] == "ok"
    assert first["arguments"]["question"] == "Normal?"
    assert data_uri[30:80] not in log.read_text()
    assert first["arguments"]["image"].startswith("<data:image/png;base64")
    assert "sha256:" in first["arguments"]["image"]
    assert first["result_uri"].startswith("medmo://results/")
    assert first["duration_s"] >= 0 and "time" in first
    assert second["outcome"] == "error" and second["error"] == "ImageLoadError"


def test_result_store_forgets_the_oldest_results_first():
    from mcp_server.store import ResultStore
    from medmo_agent.errors import NotFoundError
    from medmo_agent.tasks.results import TextQAResult

    store = ResultStore(capacity=2)
    uris = [store.add(TextQAResult(raw_text=str(i), question="q", answer=str(i))) for i in range(3)]
    assert store.uris() == uris[1:]
    assert store.get(uris[2]).answer == "2"
    try:
        store.get(uris[0])
    except NotFoundError as exc:
        assert "last 2 results" in str(exc)
    else:
        raise AssertionError("a forgotten result must raise NotFoundError")
