"""The OpenAI-compatible backend against a real server: ``transformers serve`` on the tiny
random Qwen3-VL checkpoint, run as a subprocess on a free loopback port."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from servers import ServerProcess, transformers_serve

from medmo_agent.backends.base import GenerationRequest
from medmo_agent.backends.openai_compat import OpenAICompatBackend
from medmo_agent.errors import BackendUnavailableError
from medmo_agent.imaging.geometry import model_input_size, visual_tokens
from medmo_agent.types import ImageMeta, ImagePart, MedImage, Message, TextPart

pytestmark = pytest.mark.slow

PROMPT = "Describe the image briefly."


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path):
    base_url, ctx = transformers_serve(tiny_checkpoint)
    with ctx as proc:
        yield base_url, proc


@pytest.fixture()
def backend(server, tiny_checkpoint: Path):
    base_url, _ = server
    b = OpenAICompatBackend(base_url, str(tiny_checkpoint), timeout_s=120, backoff_s=0.01)
    yield b
    b.close()


def _image(width: int, height: int, seed: int = 0) -> MedImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return MedImage(pixels, ImageMeta(source="inline", format="png", original_size=(width, height)))


def _text_request(max_new_tokens: int = 12, **kw) -> GenerationRequest:
    return GenerationRequest(
        [Message("user", [TextPart(PROMPT)])], max_new_tokens=max_new_tokens, **kw
    )


def _image_request(image: MedImage, max_new_tokens: int = 4) -> GenerationRequest:
    return GenerationRequest(
        [Message("user", [ImagePart(image), TextPart(PROMPT)])], max_new_tokens=max_new_tokens
    )


def test_text_chat_returns_generated_text_with_usage(backend, tiny_checkpoint):
    completion = backend.generate(_text_request())

    assert completion.text.strip()
    assert completion.backend == "openai"
    assert completion.model == str(tiny_checkpoint)
    assert completion.prompt_tokens > 0
    assert completion.completion_tokens == 12  # a random model rarely stops early
    assert completion.finish_reason == "length"
    assert completion.image_input_sizes == []
    assert completion.total_seconds > 0


def test_system_and_assistant_turns_are_accepted(backend):
    request = GenerationRequest(
        [
            Message("system", "You are a medical imaging expert."),
            Message("user", "Hello."),
            Message("assistant", "Hello. Which image?"),
            Message("user", [TextPart(PROMPT)]),
        ],
        max_new_tokens=4,
    )
    completion = backend.generate(request)
    assert completion.completion_tokens > 0
    assert completion.prompt_tokens > backend.generate(_text_request(4)).prompt_tokens


def test_image_chat_reports_the_size_the_server_saw(backend):
    small, large = _image(300, 200), _image(700, 500)

    first = backend.generate(_image_request(small))
    second = backend.generate(_image_request(large))

    assert first.text.strip() and second.text.strip()
    assert first.image_input_sizes == [model_input_size((300, 200))] == [(320, 224)]
    assert second.image_input_sizes == [model_input_size((700, 500))] == [(704, 512)]
    # Same text, so the prompt grows by exactly the visual-token difference: the server
    # used the size sent, with no resize of its own.
    expected = visual_tokens((700, 500)) - visual_tokens((300, 200))
    assert second.prompt_tokens - first.prompt_tokens == expected == 282


def test_streamed_pieces_concatenate_to_the_greedy_non_streamed_text(backend):
    plain = backend.generate(_text_request())
    pieces: list[str] = []

    streamed = backend.generate(_text_request(), on_text=pieces.append)

    assert len(pieces) > 1
    assert "".join(pieces) == streamed.text
    # transformers serve strips the non-streamed reply; streamed pieces keep the space
    assert streamed.text.strip() == plain.text.strip()
    assert streamed.prompt_tokens == plain.prompt_tokens > 0
    assert streamed.completion_tokens == plain.completion_tokens > 0
    assert streamed.first_token_seconds is not None
    assert 0 < streamed.first_token_seconds <= streamed.total_seconds


def test_stop_strings_work_though_the_server_fails_on_them(server, tiny_checkpoint, caplog):
    base_url, _ = server
    backend = OpenAICompatBackend(base_url, str(tiny_checkpoint), timeout_s=120)
    pieces: list[str] = []
    full = backend.generate(_text_request(), on_text=pieces.append).text
    stop = full[6:9]
    expected = full[: full.index(stop)]

    with caplog.at_level(logging.WARNING, logger="medmo_agent.backends.openai_compat"):
        streamed_pieces: list[str] = []
        streamed = backend.generate(_text_request(stop=[stop]), on_text=streamed_pieces.append)
        plain = backend.generate(_text_request(stop=[stop]))

    assert streamed.text == "".join(streamed_pieces) == expected
    assert streamed.finish_reason == plain.finish_reason == "stop"
    assert plain.text == expected.lstrip()
    fallbacks = [r for r in caplog.records if "failed on stop" in r.getMessage()]
    assert len(fallbacks) == 1  # learnt once, then not sent again
    backend.close()


def test_cancel_closes_the_stream_early(backend):
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        cancel.set()

    completion = backend.generate(_text_request(64), on_text=on_text, cancel=cancel)

    assert completion.finish_reason == "cancelled"
    assert completion.text == "".join(pieces)
    assert len(pieces) == 1  # the next event found the cancel set


def test_concurrent_requests_from_threads_all_succeed(backend):
    sizes = [(256, 256), (320, 200), (200, 320), (512, 256)]
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(sizes))

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = backend.generate(_image_request(_image(*sizes[i], seed=i)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    for i, size in enumerate(sizes):
        completion = results[i]
        assert completion.image_input_sizes == [model_input_size(size)]
        assert completion.completion_tokens > 0


def test_list_models_names_the_served_checkpoint(backend, tiny_checkpoint):
    assert backend.list_models() == [str(tiny_checkpoint)]


def test_wrong_model_name_is_a_clear_error_listing_the_served_models(server, tiny_checkpoint):
    base_url, _ = server
    backend = OpenAICompatBackend(base_url, "MBZUAI/MedMO-8B-Next", retries=0)

    with pytest.raises(BackendUnavailableError) as info:
        backend.generate(_text_request(4))

    message = str(info.value)
    assert "does not serve model 'MBZUAI/MedMO-8B-Next'" in message
    assert str(tiny_checkpoint) in message
    assert "MEDMO_SERVED_MODEL" in message
    backend.close()


def test_killed_server_is_unavailable_with_url_and_fix_after_retries(tiny_checkpoint, caplog):
    base_url, ctx = transformers_serve(tiny_checkpoint)
    with ctx as proc:
        proc: ServerProcess
        backend = OpenAICompatBackend(
            base_url, str(tiny_checkpoint), retries=2, backoff_s=0.01, timeout_s=60
        )
        assert backend.generate(_text_request(2)).completion_tokens > 0
        proc.kill()

        with (
            caplog.at_level(logging.WARNING, logger="medmo_agent.backends.openai_compat"),
            pytest.raises(BackendUnavailableError) as info,
        ):
            backend.generate(_text_request(2))

    message = str(info.value)
    assert base_url in message
    assert "3 attempts" in message
    assert "vllm serve MBZUAI/MedMO-8B-Next" in message
    assert "--base-url" in message
    retries = [r for r in caplog.records if r.getMessage().startswith("Retrying POST")]
    assert len(retries) == 2
    backend.close()
