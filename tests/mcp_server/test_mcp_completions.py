"""Completions: the server suggests image files inside the allowed folders and window
presets while a client fills in a prompt argument or the file resource template."""

from __future__ import annotations

from mcp import Client
from mcp_types import PromptReference, ResourceTemplateReference


def _prompt(name: str) -> PromptReference:
    return PromptReference(type="ref/prompt", name=name)


async def test_the_server_declares_completions(scripted_server):
    async with Client(scripted_server()) as client:
        assert client.server_capabilities.completions is not None


async def test_image_arguments_complete_to_files_in_the_allowed_folders(
    scripted_server, image_dir, outside_dir
):
    async with Client(scripted_server()) as client:
        by_path = await client.complete(
            _prompt("review_chest_xray"), {"name": "image", "value": str(image_dir / "d")}
        )
        by_name = await client.complete(_prompt("count_cells"), {"name": "image", "value": "sma"})
        outside = await client.complete(
            _prompt("second_opinion"), {"name": "image", "value": str(outside_dir)}
        )
    assert by_path.completion.values == [str(image_dir / "dark.png")]
    assert by_path.completion.total == 1
    assert by_name.completion.values == [str(image_dir / "sub" / "small.png")]
    assert outside.completion.values == []


async def test_the_file_template_completes_its_path_without_the_leading_slash(
    scripted_server, image_dir
):
    ref = ResourceTemplateReference(type="ref/resource", uri="file:///{+path}")
    typed = str(image_dir / "sub").lstrip("/")
    async with Client(scripted_server()) as client:
        done = await client.complete(ref, {"name": "path", "value": typed})
    assert done.completion.values == [str(image_dir / "sub" / "small.png").lstrip("/")]


async def test_window_completes_to_the_presets_and_other_arguments_to_nothing(scripted_server):
    async with Client(scripted_server()) as client:
        window = await client.complete(_prompt("review_ct_slice"), {"name": "window", "value": "L"})
        question = await client.complete(
            _prompt("second_opinion"), {"name": "question", "value": "Is"}
        )
    assert window.completion.values == ["lung", "liver"]
    assert question.completion.values == []
