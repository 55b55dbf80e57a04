"""Stop strings, base URLs and error bodies: golden and property tests. (Server-sent
events are parsed by the ``openai`` client; the streaming tests in
test_openai_compat_logic.py and test_openai_compat_server.py cover them through the
backend.)"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medmo_agent.backends._openai_client import message_of, normalize_base_url
from medmo_agent.backends._stops import StopFilter, truncate_at_stop
from medmo_agent.errors import BackendUnavailableError

# ----- stop strings -----


def test_truncate_at_stop_cuts_before_the_earliest_stop():
    assert truncate_at_stop("a <box> b </box> c", ["</box>", "<box>"]) == ("a ", True)
    assert truncate_at_stop("no stop here", ["STOP", ""]) == ("no stop here", False)


def test_stop_filter_holds_back_a_possible_stop_split_across_pieces():
    f = StopFilter(["</answer>"])
    assert f.feed("yes </ans") == "yes "
    assert f.feed("wer> trailing") == ""
    assert f.stopped
    assert f.flush() == ""


def test_stop_filter_releases_held_text_that_was_not_a_stop():
    f = StopFilter(["</answer>"])
    assert f.feed("a </an") == "a "
    assert f.feed("d more") == "</and more"
    assert f.feed(" </") == " "
    assert f.flush() == "</"
    assert not f.stopped


def test_stop_filter_without_stops_passes_everything_through():
    f = StopFilter(None)
    assert [f.feed(p) for p in ["a", "b"]] + [f.flush()] == ["a", "b", ""]


@given(
    text=st.text(alphabet="ab<>/ x", max_size=40),
    stops=st.lists(st.text(alphabet="ab<>/", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
)
def test_stop_filter_streams_exactly_the_truncated_text(text, stops, cuts):
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    f = StopFilter(stops)
    emitted = "".join(f.feed(p) for p in pieces) + f.flush()
    expected, found = truncate_at_stop(text, stops)
    assert emitted == expected
    assert f.stopped == found


# ----- base URLs and error bodies -----


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("http://localhost:8000", "http://localhost:8000/v1"),
        ("http://localhost:8000/", "http://localhost:8000/v1"),
        ("http://localhost:8000/v1", "http://localhost:8000/v1"),
        ("http://localhost:8000/v1/", "http://localhost:8000/v1"),
        ("https://gateway.example/medmo/v1", "https://gateway.example/medmo/v1"),
    ],
)
def test_base_url_gets_v1_only_when_it_has_no_path(given_url, expected):
    assert normalize_base_url(given_url) == expected


@pytest.mark.parametrize("bad", ["localhost:8000", "ftp://host/v1", ""])
def test_base_url_that_is_not_http_is_a_clear_error(bad):
    with pytest.raises(BackendUnavailableError, match="not an http"):
        normalize_base_url(bad)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "The model `x` does not exist.", "code": 404}}, "The model `x`"),
        ({"detail": "Server is pinned to '/m'; requested 'x'."}, "Server is pinned to"),
        ({"detail": [{"msg": "field required"}, {"msg": "bad type"}]}, "field required; bad"),
        ({"error": "cb_worker_dead"}, "cb_worker_dead"),
        ({"message": "plain"}, "plain"),
        ("not a dict", ""),
    ],
)
def test_error_messages_are_found_in_every_common_body_shape(body, expected):
    assert message_of(body).startswith(expected)
