"""Every safety rule of the MCP server, each followed by a request that must still work."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from mcp import Client
from mcp_helpers import PHI_VALUES, FailingBackend, make_server, png_bytes

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.errors import ConfigError, GPUOutOfMemoryError
from medmo_agent.privacy import path_label


async def _refused_then_served(server, bad_call: tuple[str, dict], good_call: tuple[str, dict]):
    """Call ``bad_call`` (must be a tool error), then ``good_call`` (must succeed)."""
    async with Client(server) as client:
        bad = await client.call_tool(*bad_call)
        good = await client.call_tool(*good_call)
    assert bad.is_error, bad
    assert not good.is_error, good.content[0].text
    return bad.content[0].text


def _ok(image_dir: Path) -> tuple[str, dict]:
    return ("vqa", {"image": str(image_dir / "dark.png"), "question": "Is it dark?"})


async def test_a_path_outside_the_allowed_folders_is_denied(
    scripted_server, image_dir, outside_dir
):
    text = await _refused_then_served(
        scripted_server(),
        ("vqa", {"image": str(outside_dir / "secret.png"), "question": "?"}),
        _ok(image_dir),
    )
    assert text.startswith("AccessDeniedError:")
    assert "--allow-dir" in text


async def test_path_traversal_out_of_an_allowed_folder_is_denied(
    scripted_server, image_dir, outside_dir
):
    sneaky = str(image_dir / ".." / "outside" / "secret.png")
    text = await _refused_then_served(
        scripted_server(), ("ground", {"image": sneaky}), _ok(image_dir)
    )
    assert text.startswith("AccessDeniedError:")


async def test_a_symlink_pointing_out_of_an_allowed_folder_is_denied(
    scripted_server, image_dir, outside_dir
):
    (image_dir / "link.png").symlink_to(outside_dir / "secret.png")
    text = await _refused_then_served(
        scripted_server(), ("report", {"image": str(image_dir / "link.png")}), _ok(image_dir)
    )
    assert text.startswith("AccessDeniedError:")


async def test_resources_outside_the_allowed_folders_cannot_be_read(
    scripted_server, image_dir, outside_dir
):
    from mcp.shared.exceptions import MCPError

    async with Client(scripted_server()) as client:
        with pytest.raises(MCPError, match="AccessDeniedError"):
            await client.read_resource((outside_dir / "secret.png").as_uri())
        with pytest.raises(MCPError, match="NotFoundError"):
            await client.read_resource("medmo://results/0123456789abcdef")
        ok = await client.read_resource((image_dir / "dark.png").as_uri())
    assert ok.contents[0].mime_type == "image/png"


async def test_over_http_nothing_is_readable_unless_folders_are_allowed(image_dir):
    server = make_server(ScriptedBackend(["bright"]), None, transport="http")
    inline = (
        "data:image/png;base64,"
        + base64.b64encode(png_bytes(np.full((40, 40, 3), 200, np.uint8))).decode()
    )
    text = await _refused_then_served(
        server,
        ("vqa", {"image": str(image_dir / "dark.png"), "question": "?"}),
        ("vqa", {"image": inline, "question": "?"}),
    )
    assert "outside the allowed folders (none)" in text
    async with Client(server) as client:
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
    # the viewer app's document is listed too (hosts may prefetch and review it)
    files = [uri for uri in listed if not uri.startswith("ui://")]
    assert files == ["medmo://server"]


async def test_over_stdio_the_working_directory_is_the_default_allowed_folder(
    image_dir, outside_dir, monkeypatch
):
    monkeypatch.chdir(image_dir)
    server = make_server(ScriptedBackend(["dark"]), None)
    text = await _refused_then_served(
        server,
        ("vqa", {"image": str(outside_dir / "secret.png"), "question": "?"}),
        ("vqa", {"image": "dark.png", "question": "?"}),
    )
    assert str(image_dir.resolve()) in text


async def test_an_image_over_the_byte_limit_is_a_clear_tool_error(scripted_server, image_dir):
    big = (
        "data:image/png;base64,"
        + base64.b64encode(
            png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        ).decode()
    )
    server = scripted_server(settings=Settings(max_image_bytes=4000))
    text = await _refused_then_served(
        server, ("vqa", {"image": big, "question": "?"}), _ok(image_dir)
    )
    assert text.startswith("ImageTooLargeError:")
    assert "4,000-byte cap" in text


async def test_an_image_over_the_pixel_limit_is_a_clear_tool_error(scripted_server, image_dir):
    server = scripted_server(settings=Settings(max_image_pixels=10_000))
    text = await _refused_then_served(
        server,
        ("vqa", {"image": str(image_dir / "dark.png"), "question": "?"}),  # 200x100
        ("vqa", {"image": str(image_dir / "sub" / "small.png"), "question": "?"}),  # 64x64
    )
    assert text.startswith("ImageTooLargeError:")


async def test_too_many_new_tokens_is_a_clear_tool_error(scripted_server, image_dir):
    server = scripted_server(settings=Settings(max_new_tokens_limit=64))
    text = await _refused_then_served(
        server,
        ("report", {"image": str(image_dir / "dark.png"), "max_new_tokens": 65}),
        ("report", {"image": str(image_dir / "dark.png"), "max_new_tokens": 64}),
    )
    assert text.startswith("LimitExceededError:")
    assert "64" in text


async def test_arguments_that_break_the_schema_are_refused(scripted_server, image_dir):
    text = await _refused_then_served(
        scripted_server(),
        ("vqa", {"image": str(image_dir / "dark.png"), "question": "?", "max_new_tokens": 0}),
        _ok(image_dir),
    )
    assert "max_new_tokens" in text


async def test_a_corrupt_image_is_a_clear_tool_error(scripted_server, image_dir):
    (image_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    text = await _refused_then_served(
        scripted_server(), ("classify", {"image": str(image_dir / "broken.png")}), _ok(image_dir)
    )
    assert text.startswith("ImageLoadError:")
    # the file is named by its label (MEDMO_INCLUDE_PATHS shows the path)
    assert path_label(str(image_dir / "broken.png")) in text and str(image_dir) not in text


async def test_bad_task_input_is_a_clear_tool_error(scripted_server, image_dir):
    text = await _refused_then_served(
        scripted_server(),
        ("vqa", {"image": str(image_dir / "dark.png"), "question": "?", "options": ["only one"]}),
        _ok(image_dir),
    )
    assert text.startswith("InputError:")


async def test_an_unreadable_box_answer_is_a_tool_error_that_keeps_the_raw_answer(
    scripted_server, image_dir
):
    server = scripted_server(["There is something odd near the top, hard to say where", "yes"])
    async with Client(server) as client:
        bad = await client.call_tool("ground", {"image": str(image_dir / "dark.png")})
        good = await client.call_tool(*_ok(image_dir))
    assert bad.is_error and not good.is_error
    text = bad.content[0].text
    assert "no bounding boxes could be read" in text
    assert "something odd near the top" in text
    assert "`vqa`" in text
    assert bad.structured_content["raw_text"].startswith("There is something odd")


async def test_an_empty_answer_is_a_tool_error(scripted_server, image_dir):
    text = await _refused_then_served(
        scripted_server(["", "yes"]),
        ("report", {"image": str(image_dir / "dark.png")}),
        _ok(image_dir),
    )
    assert "empty answer" in text


async def test_gpu_out_of_memory_is_a_tool_error_and_the_next_request_is_served(image_dir):
    oom = GPUOutOfMemoryError("CUDA ran out of memory while generating.")
    backend = FailingBackend(oom, trigger="radiology report", replies=["yes"])
    text = await _refused_then_served(
        make_server(backend, image_dir),
        ("report", {"image": str(image_dir / "dark.png")}),
        _ok(image_dir),
    )
    assert text.startswith("GPUOutOfMemoryError: CUDA ran out of memory")
    assert "MedMO-4B" in text


async def test_dicom_patient_identifiers_never_reach_any_output(
    scripted_server, image_dir, tmp_path
):
    log = tmp_path / "audit.jsonl"
    server = scripted_server(
        ["Findings: normal. Impression: normal.", "Mass <box>[[10, 10, 40, 40]]</box>", "yes"],
        audit_log=log,
    )
    seen: list[str] = []
    async with Client(server) as client:
        for tool, args in [
            ("report", {"image": str(image_dir / "ct.dcm")}),
            ("ground", {"image": str(image_dir / "ct.dcm"), "window": "abdomen"}),
            ("vqa", {"image": str(image_dir / "ct.dcm"), "question": "Who is the patient?"}),
        ]:
            result = await client.call_tool(tool, args)
            assert not result.is_error, result.content[0].text
            seen.append(json.dumps(result.structured_content))
            seen.extend(c.text for c in result.content if c.type == "text")
            stored = await client.read_resource(result.structured_content["result_uri"])
            seen.append(stored.contents[0].text)
    meta = json.loads(seen[0])["image"]["meta"]
    assert meta["format"] == "dicom" and meta["modality"] == "CT"
    prompts = [m.text for r in server.backend.requests for m in r.messages]
    everything = "\n".join(seen + prompts + [log.read_text()])
    for value in PHI_VALUES:
        assert value not in everything


def test_binding_beyond_loopback_requires_a_token():
    from mcp_server import ServerConfig

    with pytest.raises(ConfigError, match="bearer token is required"):
        ServerConfig(transport="http", host="0.0.0.0").validate()
    with pytest.raises(ConfigError, match="too short"):
        ServerConfig(transport="http", host="0.0.0.0", auth_token="abc").validate()
    ServerConfig(transport="http", host="0.0.0.0", auth_token="x" * 32).validate()
    ServerConfig(transport="http", host="127.0.0.1").validate()


def test_binding_beyond_loopback_sets_the_allowed_host_headers():
    from mcp_server import ServerConfig
    from mcp_server.http_app import transport_security

    local = transport_security(ServerConfig(transport="http"))
    public = transport_security(
        ServerConfig(
            transport="http",
            host="10.1.2.3",
            auth_token="x" * 32,
            allowed_hosts=("medmo.example.org:*",),
        )
    )
    assert local.enable_dns_rebinding_protection and public.enable_dns_rebinding_protection
    assert "10.1.2.3:*" not in local.allowed_hosts
    assert {"10.1.2.3:*", "127.0.0.1:*", "medmo.example.org:*"} <= set(public.allowed_hosts)
    assert "evil.example.com:*" not in public.allowed_hosts
