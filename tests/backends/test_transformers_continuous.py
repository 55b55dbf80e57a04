"""TransformersBackend with the continuous-batching engine (the default on a GPU), run on
the CPU here: the same answers as the batched engine, streaming, stops, cancel, sampling."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medmo_agent.backends.base import GenerationRequest
from medmo_agent.errors import LimitExceededError
from medmo_agent.types import ImageMeta, ImagePart, MedImage, Message, TextPart

pytest.importorskip("torch")
pytest.importorskip("transformers")
from medmo_agent.backends.transformers import TransformersBackend


def _image(width: int, height: int, seed: int) -> MedImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return MedImage(pixels, ImageMeta(source="inline", format="png", original_size=(width, height)))


def _ask(text: str, *images: MedImage, **kwargs) -> GenerationRequest:
    parts = [ImagePart(i) for i in images] + [TextPart(text)]
    return GenerationRequest(messages=[Message("user", parts)], **kwargs)


REQUESTS = [
    _ask("Detect and localize all abnormalities in this image.", _image(500, 300, 1)),
    _ask("Findings?", _image(320, 640, 2), max_new_tokens=9),
    _ask("Is there a pleural effusion? Answer yes or no."),
    _ask("Compare.", _image(256, 256, 3), _image(400, 200, 4), max_new_tokens=20),
]


@pytest.fixture(scope="module")
def continuous(tiny_settings):
    backend = TransformersBackend.from_settings(tiny_settings.replace(engine="continuous"))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def reference(tiny_backend):
    """The batched engine's answers, one request at a time."""
    return [tiny_backend.generate(r) for r in REQUESTS]


def test_continuous_engine_is_selected_and_reported(continuous):
    assert continuous.engine_mode == "continuous"
    assert continuous.info()["engine"] == "continuous"


def test_answers_equal_the_batched_engine_one_at_a_time(continuous, reference):
    for request, expected in zip(REQUESTS, reference, strict=True):
        got = continuous.generate(request)
        assert got.text == expected.text
        assert got.completion_tokens == expected.completion_tokens
        assert got.prompt_tokens == expected.prompt_tokens
        assert got.finish_reason == expected.finish_reason
        assert got.image_input_sizes == expected.image_input_sizes


def test_concurrent_callers_share_decode_steps_and_get_their_own_answers(continuous, reference):
    before = dict(continuous.stats)
    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        results = list(pool.map(continuous.generate, REQUESTS))
    assert [r.text for r in results] == [r.text for r in reference]
    steps = continuous.stats["steps"] - before["steps"]
    tokens = sum(r.completion_tokens for r in results)
    assert steps < tokens  # some steps decoded several requests at once


def test_streamed_pieces_add_up_to_the_answer(continuous):
    pieces: list[str] = []
    completion = continuous.generate(REQUESTS[0], on_text=pieces.append)
    assert "".join(pieces) == completion.text
    assert completion.first_token_seconds is not None


def test_a_stop_string_ends_the_answer_before_it(continuous, reference):
    full = reference[0].text
    cut = full[len(full) // 2 :][:3]
    if not cut.strip():
        pytest.skip("the tiny model's answer has no usable stop string")
    request = _ask(
        "Detect and localize all abnormalities in this image.", _image(500, 300, 1), stop=[cut]
    )
    completion = continuous.generate(request)
    assert completion.text == full[: full.index(cut)]
    assert completion.finish_reason == "stop"


def test_cancel_stops_one_request_and_keeps_its_text(continuous):
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        cancel.set()

    request = _ask("Describe everything you see.", _image(200, 200, 5), max_new_tokens=40)
    completion = continuous.generate(request, on_text=on_text, cancel=cancel)
    assert completion.finish_reason == "cancelled"
    assert completion.completion_tokens < 40
    assert completion.text == "".join(pieces)


def test_sampled_requests_run_on_the_engine_thread(continuous):
    completion = continuous.generate(_ask("Findings?", temperature=0.8, max_new_tokens=6))
    assert completion.completion_tokens >= 1
    assert completion.finish_reason in {"stop", "length"}


def test_a_prompt_too_long_for_the_cache_is_a_limit_error_and_the_engine_goes_on(
    tiny_settings, tmp_path
):
    from medmo_agent.testing.tiny import build_tiny_checkpoint

    short = build_tiny_checkpoint(tmp_path / "short-context", max_position_embeddings=4096)
    backend = TransformersBackend.from_settings(
        tiny_settings.replace(model=str(short), engine="continuous", max_pixels=4_194_304)
    )
    try:
        big = _ask("Findings?", _image(2048, 2048, 6))  # ~4096 visual tokens > the 4096 cap
        with pytest.raises(LimitExceededError, match="KV cache"):
            backend.generate(big)
        assert backend.generate(_ask("Findings?", max_new_tokens=3)).completion_tokens >= 1
    finally:
        backend.close()


def test_max_new_tokens_beyond_the_kv_cache_is_refused_not_cut_short(tiny_settings, tmp_path):
    from medmo_agent.testing.tiny import build_tiny_checkpoint

    short = build_tiny_checkpoint(tmp_path / "short-context", max_position_embeddings=512)
    backend = TransformersBackend.from_settings(
        tiny_settings.replace(model=str(short), engine="continuous")
    )
    try:
        positions = backend.runner.batcher.max_len
        assert positions == 512  # the whole context: far below max_new_tokens_limit
        question = _ask("Findings?", max_new_tokens=positions)
        with pytest.raises(LimitExceededError) as info:
            backend.generate(question)
        prompt = backend.generate(_ask("Findings?", max_new_tokens=1)).prompt_tokens
        room = positions - prompt
        assert info.value.input == "max_new_tokens"
        assert f"max_new_tokens={positions}" in info.value.message
        assert f"room for {room} new tokens" in info.value.message
        assert f"at most {room} new tokens" in info.value.fix
        assert "MEDMO_MAX_BATCH_SIZE" in info.value.fix
        # the most that fits is served in full (up to an end-of-sequence token)
        fits = backend.generate(_ask("Findings?", max_new_tokens=room))
        assert fits.finish_reason in {"stop", "length"}
        assert fits.completion_tokens <= room
    finally:
        backend.close()


def test_the_kernels_setting_reaches_the_engine_and_leaves_a_cpu_model_stock(tiny_settings):
    from medmo_agent.backends.engine.fused import fused_kernels_installed
    from medmo_agent.config import Settings

    assert Settings.from_env({"MEDMO_KERNELS": "0"}).kernels is False
    assert Settings().kernels is True
    for kernels in (True, False):
        backend = TransformersBackend.from_settings(
            tiny_settings.replace(engine="continuous", kernels=kernels)
        )
        try:
            # Triton's kernels run on CUDA GPUs only: on the CPU the engine keeps the model's
            # stock modules whatever the setting, and prefills on its decode thread
            assert backend.runner.batcher.step.kernels is False
            assert not fused_kernels_installed(backend.model)
            assert not backend.runner.batcher.overlap_prefill
            assert backend.generate(REQUESTS[2]).completion_tokens >= 1
        finally:
            backend.close()


def test_prefill_batch_size_bounds_the_prompts_prefilled_together(tiny_settings, reference):
    alone = TransformersBackend.from_settings(
        tiny_settings.replace(engine="continuous", prefill_batch_size=1)
    )
    try:
        assert alone.runner.batcher.prefiller.batch == 1
        with ThreadPoolExecutor(len(REQUESTS)) as pool:
            results = list(pool.map(alone.generate, REQUESTS))
        assert [r.text for r in results] == [r.text for r in reference]
        assert alone.stats["prefills"] == len(REQUESTS)
        assert alone.stats["batched_prefills"] == 0  # every prompt in a call of its own
    finally:
        alone.close()
