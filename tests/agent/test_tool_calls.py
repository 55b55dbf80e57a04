"""Golden and property tests of the Qwen tool-call parser and renderer."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medmo_agent.agent.tool_calls import (
    ToolCallStreamSplitter,
    parse_tool_calls,
    render_tool_call,
    render_tools_section,
)


def ids():
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


def test_a_qwen_call_block_becomes_a_tool_call_and_prose_stays_content():
    text = (
        "I will localise first.\n<tool_call>\n"
        '{"name": "ground", "arguments": {"image": "chest.png", "targets": ["nodule"]}}\n'
        "</tool_call>"
    )
    out = parse_tool_calls(text, make_id=ids())
    assert out.content == "I will localise first."
    assert [(c.name, c.arguments, c.id) for c in out.tool_calls] == [
        ("ground", {"image": "chest.png", "targets": ["nodule"]}, "call_0")
    ]
    assert out.invalid_calls == []


def test_several_calls_in_one_turn_are_read_in_order():
    text = (
        '<tool_call>\n{"name": "vqa", "arguments": {"question": "a"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "classify", "arguments": {}}\n</tool_call>'
    )
    out = parse_tool_calls(text)
    assert [c.name for c in out.tool_calls] == ["vqa", "classify"]
    assert out.content == ""


def test_arguments_encoded_as_a_json_string_are_decoded():
    out = parse_tool_calls(
        '<tool_call>{"name": "vqa", "arguments": "{\\"question\\": \\"x\\"}"}</tool_call>'
    )
    assert out.tool_calls[0].arguments == {"question": "x"}


def test_a_call_cut_off_before_its_closing_tag_is_still_read_when_its_json_is_whole():
    out = parse_tool_calls(
        'Checking.<tool_call>\n{"name": "report", "arguments": {"image": "a.png"}}'
    )
    assert out.tool_calls[0].name == "report"
    assert out.content == "Checking."


def test_python_literal_quoting_is_tolerated():
    out = parse_tool_calls(
        "<tool_call>{'name': 'vqa', 'arguments': {'question': 'ok?'}}</tool_call>"
    )
    assert out.tool_calls[0].arguments == {"question": "ok?"}


def test_a_call_without_arguments_gets_empty_arguments():
    out = parse_tool_calls('<tool_call>{"name": "classify"}</tool_call>')
    assert out.tool_calls[0].arguments == {}


@pytest.mark.parametrize(
    ("block", "error", "name"),
    [
        ("{not json", "not valid JSON", None),
        ("", "empty", None),
        ('["vqa"]', "not a JSON object", None),
        ('{"arguments": {}}', 'no "name"', None),
        ('{"name": "vqa", "arguments": [1, 2]}', '"arguments" is not a JSON object', "vqa"),
        ('{"name": "vqa", "arguments": "{oops"}', '"arguments" is not a JSON object', "vqa"),
    ],
)
def test_malformed_calls_become_invalid_calls_with_the_reason(block, error, name):
    out = parse_tool_calls(f"Let me try.<tool_call>{block}</tool_call>", make_id=ids())
    assert out.tool_calls == []
    assert len(out.invalid_calls) == 1
    bad = out.invalid_calls[0]
    assert error in bad.error
    assert bad.name == name
    assert bad.id == "call_0"
    assert out.content == "Let me try."


def test_text_without_calls_is_all_content():
    out = parse_tool_calls("  The lungs are clear.  ")
    assert out.content == "The lungs are clear."
    assert out.tool_calls == [] and out.invalid_calls == []


def test_a_stray_closing_tag_is_dropped_from_the_content():
    assert parse_tool_calls("Done.</tool_call>").content == "Done."


def test_the_tools_section_matches_the_qwen_template_text():
    tool = {
        "type": "function",
        "function": {"name": "vqa", "description": "Ask.", "parameters": {}},
    }
    text = render_tools_section([tool], "Be careful.")
    assert text.startswith("Be careful.\n\n# Tools\n\nYou may call one or more functions")
    assert "<tools>\n" + json.dumps(tool) + "\n</tools>" in text
    assert text.endswith('{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def test_a_rendered_call_parses_back_to_the_same_call():
    text = render_tool_call("ground", {"image": "a.png", "targets": ["mass"]})
    assert (
        text == '<tool_call>\n{"name": "ground", "arguments": '
        '{"image": "a.png", "targets": ["mass"]}}\n</tool_call>'
    )
    call = parse_tool_calls(text).tool_calls[0]
    assert (call.name, call.arguments) == ("ground", {"image": "a.png", "targets": ["mass"]})


def test_the_stream_splitter_holds_back_call_text_and_partial_tags():
    splitter = ToolCallStreamSplitter()
    shown = [
        splitter.feed(p) for p in ["Look", "ing <tool", '_call>{"name"', ": 1}", "</tool_call>"]
    ]
    assert "".join(shown) + splitter.flush() == "Looking "
    assert shown[1] == "ing "  # "<tool" was held back until it proved to be a tag


def test_the_stream_splitter_releases_a_held_tail_that_was_not_a_tag():
    splitter = ToolCallStreamSplitter()
    assert splitter.feed("a <to") == "a "
    assert splitter.feed("p") == "<top"
    assert splitter.flush() == ""


_FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    "{",
    "}",
    '"name"',
    ":",
    '"vqa"',
    ",",
    '"arguments"',
    "[",
    "]",
    " ",
    "\n",
    "x",
    "'",
    '"',
]


@given(st.one_of(st.text(), st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join)))
def test_arbitrary_text_never_raises_and_no_call_tag_leaks_into_the_content(text):
    out = parse_tool_calls(text)
    assert "<tool_call>" not in out.content and "</tool_call>" not in out.content
    assert len(out.tool_calls) + len(out.invalid_calls) <= text.count("<tool_call>")
    if "<tool_call>" in text:
        assert out.tool_calls or out.invalid_calls
    for call in out.tool_calls:
        assert call.name and isinstance(call.arguments, dict)


@given(
    st.text(st.characters(blacklist_characters="<"), max_size=40),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8)), max_size=4),
    st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
)
def test_prose_and_a_rendered_call_round_trip(prose, arguments, name):
    out = parse_tool_calls(prose + render_tool_call(name, arguments))
    assert out.content == prose.strip()
    assert [(c.name, c.arguments) for c in out.tool_calls] == [(name, arguments)]


@given(st.lists(st.text(max_size=6), max_size=12))
def test_streamed_prose_equals_the_text_before_the_first_call(pieces):
    splitter = ToolCallStreamSplitter()
    shown = "".join(splitter.feed(p) for p in pieces) + splitter.flush()
    whole = "".join(pieces)
    assert shown == whole.split("<tool_call>")[0]
