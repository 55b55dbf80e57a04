"""Incremental text assembly: streamed pieces always add up to the final text."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from medmo_agent.backends._rows import TextAssembler


def _byte_tokens(text: str, cuts: list[int]) -> tuple[list[bytes], dict[int, bytes]]:
    """Split ``text``'s UTF-8 bytes at ``cuts``: each chunk is one 'token'."""
    data = text.encode()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points) if b > a]
    return chunks, dict(enumerate(chunks))


def _assemble(chunks: list[bytes], stop=None):
    vocab = dict(enumerate(chunks))
    pieces: list[str] = []

    def decode(ids: list[int]) -> str:
        return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")

    asm = TextAssembler(decode, stop, pieces.append)
    stopped = False
    for i in range(len(chunks)):
        if asm.add(i):
            stopped = True
            break
    return asm.finish(), pieces, stopped


def test_a_character_split_across_tokens_is_emitted_only_when_complete():
    chunks = [b"ok ", "é".encode()[:1], "é".encode()[1:], b"!"]
    text, pieces, _ = _assemble(chunks)
    assert text == "ok é!"
    assert pieces == ["ok ", "é", "!"]
    assert all("\ufffd" not in p for p in pieces)


def test_text_stops_before_the_stop_string_and_it_is_never_streamed():
    chunks = [b"Findings: clear", b". EN", b"D more"]
    text, pieces, stopped = _assemble(chunks, stop=["END"])
    assert stopped
    assert text == "Findings: clear. "
    assert "".join(pieces) == text


def test_a_held_back_stop_prefix_is_released_when_it_does_not_complete():
    chunks = [b"a E", b"N", b"x"]
    text, pieces, stopped = _assemble(chunks, stop=["END"])
    assert not stopped
    assert text == "a ENx"
    assert pieces == ["a ", "ENx"]


def test_an_invalid_byte_at_the_end_is_flushed_on_finish():
    text, pieces, _ = _assemble([b"ab", b"\xe2\x82"])
    assert text == "ab\ufffd"
    assert "".join(pieces) == text


@given(
    text=st.text(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=30),
)
def test_streamed_pieces_concatenate_to_the_final_text(text, cuts):
    chunks, _ = _byte_tokens(text, cuts)
    final, pieces, _ = _assemble(chunks)
    assert final == text
    assert "".join(pieces) == final


@given(
    text=st.text(alphabet="abcXYé\n ", max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=30),
    stop=st.lists(st.text(alphabet="abXYé", min_size=1, max_size=3), min_size=1, max_size=3),
)
def test_with_stop_strings_the_text_is_cut_just_before_one(text, cuts, stop):
    chunks, _ = _byte_tokens(text, cuts)
    final, pieces, stopped = _assemble(chunks, stop=stop)
    assert text.startswith(final)
    assert not any(s in final for s in stop)
    assert stopped == any(s in text for s in stop)
    if stopped:
        assert any(text[len(final) :].startswith(s) for s in stop)
    else:
        assert final == text
    assert "".join(pieces) == final
