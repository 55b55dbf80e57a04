"""Every tool through the real transformers path: a tiny random Qwen3-VL checkpoint behind
the server, driven by the SDK's in-process client.

The tiny model's answers are random text, so the box tools cannot find boxes in them:
they must come back as tool errors that still carry the parsed result. Overlays on real
boxes are checked in test_mcp_tools.py and over the real transports.
"""

from __future__ import annotations

import json

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
        # the CT file is a one-slice volume: the sweep's plumbing, on the real model
        "ground_volume": {"image": str(image_dir / "ct.dcm"), "slices": "all"},
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
        # every answered call links its result (and a sweep its slices), and the links read
        links = {
            name: {c.name: c.uri for c in r.content if c.type == "resource_link"}
            for name, r in results.items()
            if not r.is_error
        }
        linked = {
            (name, kind): await client.read_resource(uri)
            for name, found in links.items()
            for kind, uri in found.items()
            if kind in ("result", "slices")
        }
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
    for name, found in links.items():
        assert found["result"] == results[name].structured_content["result_uri"], name
        read = json.loads(linked[name, "result"].contents[0].text)
        assert read["raw_text"] == results[name].structured_content["raw_text"], name
    sweep = results["ground_volume"].structured_content
    assert links["ground_volume"]["slices"] == sweep["result_uri"] + "/slices"
    per_slice = json.loads(linked["ground_volume", "slices"].contents[0].text)
    assert sorted(per_slice) == ["0"] and per_slice["0"]["raw_text"]


@pytest.mark.parametrize("include", [False, True])
async def test_image_paths_reach_results_and_the_audit_log_only_with_include_paths(
    tiny_backend, tiny_settings, image_dir, tmp_path, include
):
    import json
    import shutil

    from medmo_agent.privacy import path_label

    patient = image_dir / "Jane_Doe_1961"
    patient.mkdir()
    png = patient / "chest.png"
    shutil.copy(image_dir / "dark.png", png)
    missing = patient / "missing.png"
    log = tmp_path / "audit.jsonl"
    settings = tiny_settings.replace(include_paths=include)
    server = make_server(tiny_backend, image_dir, settings=settings, audit_log=log)
    async with Client(server) as client:
        ok = await client.call_tool("vqa", {"image": str(png), "question": "Normal?"})
        uri = ok.structured_content["result_uri"]
        again = await client.call_tool("vqa", {"image": uri, "question": "Sure?"})
        failed = await client.call_tool("vqa", {"image": str(missing), "question": "Normal?"})
        reread = await client.read_resource(uri)
    assert not ok.is_error and not again.is_error, again.content[0].text
    assert failed.is_error
    shown = [
        json.dumps(ok.structured_content),
        ok.content[0].text,
        json.dumps(again.structured_content),
        failed.content[0].text,
        reread.contents[0].text,
        log.read_text(),
    ]
    for text in shown:
        assert ("Jane_Doe_1961" in text) is include, text
        # the allowed folder itself is the server's setting, named in error fixes
        assert (str(patient) in text) is include, text
    source = ok.structured_content["image"]["meta"]["source"]
    assert source == (str(png) if include else path_label(str(png)))
    # a reused result reopens the image from its real path, and labels it the same way
    assert again.structured_content["image"]["meta"]["source"] == source
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[0]["arguments"]["image"] == source
    assert entries[2]["outcome"] == "error"
