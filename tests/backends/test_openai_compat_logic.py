"""Deterministic behaviour of the OpenAI-compatible backend against a scripted loopback
server: retries, error translation, request shape, streaming details. The same backend
is tested against a real server in test_openai_compat_server.py."""

from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medmo_agent.backends import create_backend
from medmo_agent.backends.base import GenerationRequest
from medmo_agent.backends.openai_compat import OpenAICompatBackend
from medmo_agent.config import Settings
from medmo_agent.errors import BackendError, BackendUnavailableError, LimitExceededError
from medmo_agent.types import ImageMeta, ImagePart, MedImage, Message, TextPart

LOGGER = "medmo_agent.backends.openai_compat"
CHAT = "/v1/chat/completions"
MODELS = "/v1/models"


@dataclass
class Reply:
    """One scripted answer: a JSON body, or server-sent events when ``sse`` is set."""

    status: int = 200
    json: Any = None
    sse: list[str] | None = None
    raw: str | None = None
    content_type: str = "text/html"  # of ``raw``
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # answer only once this is set


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeServer:
    """A loopback HTTP server answering each path from a script (the last reply repeats)."""

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None,
                    )
                )
                replies = server.script.get(self.path) or [Reply(404, {"detail": "Not Found"})]
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if reply.hold is not None:
                    reply.hold.wait(10)
                if reply.sse is not None:
                    body = "".join(f"data: {p}\n\n" for p in reply.sse).encode()
                    ctype = "text/event-stream"
                elif reply.raw is not None:
                    body, ctype = reply.raw.encode(), reply.content_type
                else:
                    body, ctype = json.dumps(reply.json).encode(), "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(body)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def on(self, path: str, *replies: Reply) -> None:
        self.script[path] = list(replies)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@pytest.fixture()
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    server.thread.start()
    server.on(MODELS, Reply(json={"object": "list", "data": [{"id": "medmo"}, {"id": "other"}]}))
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _completion(text: str = "Findings: clear.", finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "medmo",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def _chunk(content: str | None = None, finish: str | None = None, usage=None) -> str:
    choices = (
        []
        if content is None and finish is None
        else [
            {"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}
        ]
    )
    data: dict[str, Any] = {"object": "chat.completion.chunk", "model": "medmo", "choices": choices}
    if usage is not None:
        data["usage"] = usage
    return json.dumps(data)


def _backend(fake: FakeServer, **kw: Any) -> OpenAICompatBackend:
    kw.setdefault("backoff_s", 0.001)
    return OpenAICompatBackend(fake.url, kw.pop("model", "medmo"), **kw)


def _request(**kw: Any) -> GenerationRequest:
    return GenerationRequest([Message("user", [TextPart("What is shown?")])], **kw)


def _image(width: int, height: int) -> MedImage:
    pixels = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return MedImage(pixels, ImageMeta(source="inline", format="png", original_size=(width, height)))


# ----- request shape -----


def test_request_carries_model_greedy_settings_and_resized_images(fake):
    fake.on(CHAT, Reply(json=_completion()))
    backend = _backend(fake, api_key="sk-secret")
    request = GenerationRequest(
        [
            Message("system", "You are a medical imaging expert."),
            Message("user", [ImagePart(_image(300, 200)), TextPart("Detect all nodules.")]),
        ],
        max_new_tokens=64,
        stop=["</answer>"],
    )

    completion = backend.generate(request)

    (seen,) = fake.requests_to(CHAT)
    assert seen.headers["authorization"] == "Bearer sk-secret"
    body = seen.body
    assert body["model"] == "medmo"
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 64
    assert body["stop"] == ["</answer>"]
    assert "stream" not in body
    assert body["messages"][0] == {"role": "system", "content": "You are a medical imaging expert."}
    image_part, text_part = body["messages"][1]["content"]
    assert text_part == {"type": "text", "text": "Detect all nodules."}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (320, 224)  # the model-input size, multiples of 32
    assert completion.image_input_sizes == [(320, 224)]
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == (
        "Findings: clear.",
        11,
        3,
    )
    assert completion.first_token_seconds is None


def test_streaming_asks_for_usage_and_reads_it_from_a_choiceless_last_chunk(fake):
    fake.on(
        CHAT,
        Reply(
            sse=[
                _chunk("Find"),
                _chunk("ings"),
                _chunk(finish="length"),
                _chunk(usage={"prompt_tokens": 9, "completion_tokens": 2}),
                "[DONE]",
                _chunk("never shown"),
            ]
        ),
    )
    pieces: list[str] = []

    completion = _backend(fake).generate(_request(), on_text=pieces.append)

    body = fake.requests_to(CHAT)[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert pieces == ["Find", "ings"]
    assert completion.text == "Findings"
    assert completion.finish_reason == "length"
    assert (completion.prompt_tokens, completion.completion_tokens) == (9, 2)


def test_a_stream_with_comments_other_fields_and_crlf_but_no_done_is_read_whole(fake):
    # SSE framing other servers use: keep-alive comments, event/id fields, CRLF line ends,
    # and (like transformers serve) no [DONE] before the stream closes
    events = [
        ": keep-alive",
        f"event: message\r\nid: 1\r\ndata: {_chunk('Find')}",
        f"data: {_chunk('ings', finish='stop')}",
        f"data: {_chunk(usage={'prompt_tokens': 5, 'completion_tokens': 2})}",
    ]
    fake.on(
        CHAT, Reply(raw="".join(e + "\r\n\r\n" for e in events), content_type="text/event-stream")
    )
    pieces: list[str] = []

    completion = _backend(fake).generate(_request(), on_text=pieces.append)

    assert pieces == ["Find", "ings"]
    assert (completion.text, completion.finish_reason) == ("Findings", "stop")
    assert (completion.prompt_tokens, completion.completion_tokens) == (5, 2)


def test_stop_strings_are_enforced_even_when_the_server_ignores_them(fake):
    fake.on(CHAT, Reply(sse=[_chunk("yes </ans"), _chunk("wer> more"), _chunk(" text")]))
    pieces: list[str] = []

    completion = _backend(fake).generate(_request(stop=["</answer>"]), on_text=pieces.append)

    assert pieces == ["yes "]
    assert (completion.text, completion.finish_reason) == ("yes ", "stop")


def test_a_server_rejecting_stream_options_is_asked_again_without_them(fake, caplog):
    old_server = Reply(422, {"detail": "Unexpected fields in the request: {'stream_options'}"})
    ok = Reply(sse=[_chunk("ok", finish="stop")])
    fake.on(CHAT, old_server, ok)
    backend = _backend(fake)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert backend.generate(_request(), on_text=lambda _: None).text == "ok"
        assert backend.generate(_request(), on_text=lambda _: None).text == "ok"

    first, retried, later = (s.body for s in fake.requests_to(CHAT))
    assert "stream_options" in first
    assert "stream_options" not in retried
    assert "stream_options" not in later
    assert sum("failed on stream_options" in r.getMessage() for r in caplog.records) == 1


def test_an_error_event_mid_stream_is_a_backend_error(fake):
    fake.on(CHAT, Reply(sse=[_chunk("Find"), json.dumps({"error": "CUDA error: device lost"})]))

    with pytest.raises(BackendError, match="CUDA error: device lost"):
        _backend(fake).generate(_request(), on_text=lambda _: None)


def test_an_already_set_cancel_sends_nothing(fake):
    cancel = threading.Event()
    cancel.set()

    completion = _backend(fake).generate(_request(), cancel=cancel)

    assert (completion.text, completion.finish_reason) == ("", "cancelled")
    assert fake.requests_to(CHAT) == []


# ----- retries -----


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_busy_statuses_are_retried_with_backoff_until_success(fake, caplog, status):
    fake.on(
        CHAT,
        Reply(status, {"error": "busy"}),
        Reply(status, {"error": "busy"}),
        Reply(json=_completion()),
    )

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        completion = _backend(fake, retries=2).generate(_request())

    assert completion.text == "Findings: clear."
    assert len(fake.requests_to(CHAT)) == 3
    assert sum(r.getMessage().startswith("Retrying POST") for r in caplog.records) == 2


def test_retry_after_header_sets_the_delay(fake, caplog):
    fake.on(
        CHAT,
        Reply(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
        Reply(json=_completion()),
    )

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        _backend(fake, backoff_s=5.0).generate(_request())

    (record,) = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert " in 0.00s after HTTP 429" in record.getMessage()


def test_a_server_busy_past_all_retries_is_unavailable(fake):
    fake.on(CHAT, Reply(503, {"error": {"message": "overloaded"}}))

    with pytest.raises(BackendUnavailableError) as info:
        _backend(fake, retries=1).generate(_request())

    assert "overloaded" in str(info.value)
    assert "after 2 attempts" in str(info.value)
    assert len(fake.requests_to(CHAT)) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(fake, status):
    fake.on(CHAT, Reply(status, {"error": {"message": "no"}}))

    with pytest.raises(BackendError):
        _backend(fake, retries=3).generate(_request())

    assert len(fake.requests_to(CHAT)) == 1


def test_an_unreachable_server_names_the_url_and_how_to_start_one(fake):
    url = fake.url
    fake.httpd.shutdown()
    fake.httpd.server_close()  # the port now refuses connections
    backend = OpenAICompatBackend(url, "medmo", retries=1, backoff_s=0.001)

    with pytest.raises(BackendUnavailableError) as info:
        backend.generate(_request())

    message = str(info.value)
    assert f"{url}/v1" in message
    assert "connection refused" in message
    assert "2 attempts" in message
    assert "vllm serve MBZUAI/MedMO-8B-Next" in message


# ----- error translation -----


def test_401_says_to_set_the_api_key_and_never_shows_it(fake):
    fake.on(CHAT, Reply(401, {"error": {"message": "Unauthorized"}}))
    backend = _backend(fake, api_key="sk-very-secret")

    with pytest.raises(BackendUnavailableError) as info:
        backend.generate(_request())

    assert "MEDMO_API_KEY" in str(info.value)
    assert "refused the API key" in str(info.value)
    assert "sk-very-secret" not in str(info.value)
    assert "sk-very-secret" not in json.dumps(backend.info())
    assert backend.info()["api_key_set"] is True


def test_vllm_style_404_for_an_unknown_model_lists_the_served_models(fake):
    fake.on(CHAT, Reply(404, {"error": {"message": "The model `medmo-9b` does not exist."}}))

    with pytest.raises(BackendUnavailableError) as info:
        _backend(fake, model="medmo-9b").generate(_request())

    message = str(info.value)
    assert "does not serve model 'medmo-9b'" in message
    assert "it serves: medmo, other" in message
    assert "MEDMO_SERVED_MODEL" in message


def test_404_without_a_models_list_points_at_the_base_url(fake):
    fake.on(MODELS, Reply(404, {"detail": "Not Found"}))
    fake.on(CHAT, Reply(404, {"detail": "Not Found"}))

    with pytest.raises(BackendUnavailableError) as info:
        _backend(fake).generate(_request())

    assert "has no /v1/chat/completions endpoint" in str(info.value)
    assert "/v1" in info.value.fix


def test_400_carries_the_servers_own_message(fake):
    msg = "This model's maximum context length is 4096 tokens. However, you requested 9000."
    fake.on(CHAT, Reply(400, {"error": {"message": msg}}))

    with pytest.raises(BackendError) as info:
        _backend(fake).generate(_request())

    assert not isinstance(info.value, BackendUnavailableError)
    assert "HTTP 400" in str(info.value)
    assert msg in str(info.value)


def test_a_slow_server_times_out_without_retrying(fake):
    release = threading.Event()
    fake.on(CHAT, Reply(json=_completion(), hold=release))
    try:
        with pytest.raises(BackendUnavailableError) as info:
            _backend(fake, timeout_s=0.3, retries=2).generate(_request())
    finally:
        release.set()

    assert "did not answer within 0.3s" in str(info.value)
    assert "MEDMO_REQUEST_TIMEOUT_S" in str(info.value)
    assert len(fake.requests_to(CHAT)) == 1


def test_a_non_openai_answer_is_a_clear_error(fake):
    fake.on(CHAT, Reply(raw="<html>login page</html>"))

    with pytest.raises(BackendError, match="not an OpenAI chat completion"):
        _backend(fake).generate(_request())


def test_too_many_new_tokens_is_refused_before_sending(fake):
    with pytest.raises(LimitExceededError, match="max_new_tokens=5000"):
        _backend(fake, max_new_tokens_limit=4096).generate(_request(max_new_tokens=5000))
    assert fake.requests_to(CHAT) == []


# ----- configuration -----


def test_from_settings_uses_served_model_base_url_and_key_from_the_environment(fake):
    env = {
        "MEDMO_BACKEND": "openai",
        "MEDMO_BASE_URL": fake.url,
        "OPENAI_API_KEY": "sk-env",
        "MEDMO_SERVED_MODEL": "medmo",
        "MEDMO_RETRIES": "0",
    }
    fake.on(CHAT, Reply(json=_completion()))

    backend = create_backend(Settings.from_env(env))
    backend.generate(_request())

    assert isinstance(backend, OpenAICompatBackend)
    assert backend.info()["base_url"] == fake.url + "/v1"
    assert backend.info()["model"] == "medmo"
    assert backend.info()["retries"] == 0
    seen = fake.requests_to(CHAT)[0]
    assert seen.headers["authorization"] == "Bearer sk-env"
    assert seen.body["model"] == "medmo"
    assert backend.list_models() == ["medmo", "other"]


def test_from_settings_without_a_base_url_says_how_to_set_it():
    with pytest.raises(BackendUnavailableError, match="MEDMO_BASE_URL"):
        OpenAICompatBackend.from_settings(Settings(backend="openai"))


def test_importing_the_backend_loads_neither_torch_nor_transformers():
    code = (
        "import sys, medmo_agent.backends.openai_compat\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
