"""ChatMedMO: LangChain messages in, AIMessage (with tool calls) out, over project backends."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from medmo_agent.agent.chat_model import ChatMedMO
from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.errors import InputError
from medmo_agent.toolkit import Toolkit


@tool
def ground(image: str, targets: list[str] | None = None) -> str:
    """Localise findings with boxes."""
    return "none"


def chat(replies: list[str]) -> tuple[ChatMedMO, ScriptedBackend]:
    backend = ScriptedBackend(replies)
    return ChatMedMO(backend=backend, toolkit=Toolkit(backend=backend)), backend


CALL = '<tool_call>\n{"name": "ground", "arguments": {"image": "a.png"}}\n</tool_call>'


def test_invoke_returns_the_backend_text_with_usage_and_metadata():
    model, _ = chat(["A frontal chest radiograph."])
    msg = model.invoke("What is this?")
    assert msg.content == "A frontal chest radiograph."
    assert msg.tool_calls == []
    assert msg.usage_metadata["output_tokens"] == 4
    assert msg.response_metadata["model_provider"] == "medmo"


def test_bound_tools_are_rendered_in_the_system_turn_and_calls_parsed():
    model, backend = chat([f"Localising.\n{CALL}"])
    msg = model.bind_tools([ground]).invoke(
        [SystemMessage("Be careful."), HumanMessage("Find the nodule.")]
    )
    assert msg.content == "Localising."
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("ground", {"image": "a.png"})]
    system = backend.requests[0].messages[0]
    assert system.role == "system"
    assert system.content.startswith("Be careful.\n\n# Tools")
    assert '"name": "ground"' in system.content


def test_without_bound_tools_call_text_is_left_as_content():
    model, _ = chat([CALL])
    assert model.invoke("hi").content == CALL


def test_a_malformed_call_becomes_an_invalid_tool_call_with_the_reason():
    model, _ = chat(['<tool_call>{"name": "ground", "arguments": [1]}</tool_call>'])
    msg = model.bind_tools([ground]).invoke("Find it.")
    assert msg.tool_calls == []
    assert msg.invalid_tool_calls[0]["name"] == "ground"
    assert "not a JSON object" in msg.invalid_tool_calls[0]["error"]


def test_earlier_calls_and_tool_results_are_replayed_in_the_qwen_format():
    model, backend = chat(["Done."])
    history = [
        HumanMessage("Find it."),
        AIMessage("", tool_calls=[{"name": "ground", "args": {"image": "a.png"}, "id": "c1"}]),
        ToolMessage("1 box", tool_call_id="c1"),
        ToolMessage("2 boxes", tool_call_id="c2"),
    ]
    model.bind_tools([ground]).invoke(history)
    roles = [m.role for m in backend.requests[0].messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert backend.requests[0].messages[2].content == (
        '<tool_call>\n{"name": "ground", "arguments": {"image": "a.png"}}\n</tool_call>'
    )
    assert backend.requests[0].messages[3].content == (
        "<tool_response>\n1 box\n</tool_response>\n<tool_response>\n2 boxes\n</tool_response>"
    )


def test_image_blocks_become_project_images(chest_png: Path):
    model, backend = chat(["ok"])
    data = base64.b64encode(chest_png.read_bytes()).decode()
    model.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Compare."},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                    {"type": "image", "base64": data, "mime_type": "image/png"},
                    {"type": "image", "url": str(chest_png)},
                ]
            )
        ]
    )
    images = backend.requests[0].images
    assert [img.size for img in images] == [(96, 64)] * 3


def test_a_remote_image_url_is_refused_with_a_fix():
    model, _ = chat(["ok"])
    msg = HumanMessage(content=[{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    with pytest.raises(InputError, match="Remote image URLs"):
        model.invoke([msg])


def test_streaming_yields_prose_and_ends_with_the_tool_calls():
    model, _ = chat([f"Looking closely now {CALL}"])
    chunks = list(model.bind_tools([ground]).stream("Find it."))
    assert all("<tool_call>" not in str(c.content) for c in chunks)
    merged = chunks[0]
    for c in chunks[1:]:
        merged += c
    assert merged.content.strip() == "Looking closely now"
    assert [c["name"] for c in merged.tool_calls] == ["ground"]
    assert merged.usage_metadata["output_tokens"] > 0


def test_chat_medmo_on_the_tiny_checkpoint_invokes_and_streams_the_same_text(tiny_toolkit):
    model = ChatMedMO(backend=tiny_toolkit.backend, toolkit=tiny_toolkit, max_new_tokens=8)
    msg = model.invoke("Describe a chest X-ray.")
    assert isinstance(msg.content, str)
    assert msg.usage_metadata["output_tokens"] > 0
    assert msg.response_metadata["backend"] == tiny_toolkit.backend.name
    streamed = "".join(str(c.content) for c in model.stream("Describe a chest X-ray."))
    assert streamed == msg.response_metadata["raw_text"]  # greedy: the same text


def test_chat_medmo_on_the_tiny_checkpoint_takes_images_and_bound_tools(tiny_toolkit, chest_png):
    model = ChatMedMO(backend=tiny_toolkit.backend, toolkit=tiny_toolkit, max_new_tokens=8)
    plain = model.invoke([HumanMessage(content=[{"type": "text", "text": "Findings?"}])])
    with_image = model.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Findings?"},
                    {"type": "image", "url": str(chest_png)},
                ]
            )
        ]
    )
    assert with_image.usage_metadata["input_tokens"] > plain.usage_metadata["input_tokens"]
    bound = model.bind_tools([ground]).invoke("Find the nodule.")
    # Whatever random text the tiny model writes, parsing never fails the call.
    assert isinstance(bound.tool_calls, list) and isinstance(bound.invalid_tool_calls, list)
    assert bound.usage_metadata["input_tokens"] > plain.usage_metadata["input_tokens"]
