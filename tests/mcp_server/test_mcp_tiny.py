"""Every tool through the real transformers path: a tiny random Qwen3-VL checkpoint behind
the server, driven by the SDK's in-process client.

The tiny model's answers are random text, so the box tools cannot find boxes in them:
they must come back as tool errors that still carry the parsed result. Overlays on real
boxes are checked in test_mcp_tools.py and over the real transports.
"""

from __future__ import annotations

import jsonschema
import pytest
from mcp import Client
from mcp_helpers import make_server

from mcp_server.tools import TOOL_NAMES


@pytest.fixture
def tiny_server(tiny_backend, tiny_settings, image_dir):
    return make_server(tiny_backend, image_dir, settings=tiny_settings)


def _calls(image_dir):
    png = str(image_dir / "dark.png")
    return {
        "vqa": {"image": png, "question": "Is there an abnormality?"},
        "ground": {"image": png, "targets": ["nodule"]},
        "report": {"image": png, "context": "58F, cough"},
        "reason": {"image": png, "question": "What is the most likely diagnosis?"},
        "classify": {"image": png, "labels": ["Nodule", "Mass", "No Finding"]},
        "detect": {"image": png, "label": "cell"},
        "summarize_report": {"report_text": "Findings: small left effusion. Impression: effusion."},
        "text_qa": {"question": "Which organ makes insulin?", "options": ["liver", "pancreas"]},
    }


async def test_every_tool_answers_from_the_tiny_checkpoint_within_its_output_schema(
    tiny_server, tiny_checkpoint, image_dir
):
    calls = _calls(image_dir)
    assert set(calls) == set(TOOL_NAMES)
    async with Client(tiny_server) as client:
        schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}
        results = {name: await client.call_tool(name, args) for name, args in calls.items()}
        reread = await client.read_resource(results["vqa"].structured_content["result_uri"])
    for name, result in results.items():
        structured = result.structured_content
        jsonschema.validate(structured, schemas[name])
        assert structured["backend"] == "transformers", name
        assert structured["model"] == str(tiny_checkpoint), name
        assert structured["usage"]["completion_tokens"] > 0, name
        assert structured["raw_text"], name
        if name in ("ground", "detect"):
            assert result.is_error, name
            assert "no bounding boxes could be read" in result.content[0].text
        else:
            assert not result.is_error, result.content[0].text
            assert structured["result_uri"] in result.content[0].text
    assert results["vqa"].structured_content["image"]["meta"]["original_size"] == [200, 100]
    assert reread.contents[0].text.startswith("{")
