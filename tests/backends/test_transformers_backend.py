"""TransformersBackend on a real (tiny, random) Qwen3-VL checkpoint, CPU, fp32."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medmo_agent.backends.base import Completion, GenerationRequest
from medmo_agent.config import Settings
from medmo_agent.errors import BackendError, LimitExceededError, ModelLoadError
from medmo_agent.imaging.geometry import model_input_size
from medmo_agent.types import ImageMeta, ImagePart, MedImage, Message, TextPart

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from medmo_agent.backends.transformers import TransformersBackend  # noqa: E402


def _image(width: int, height: int, seed: int = 0) -> MedImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    meta = ImageMeta(source="inline", format="png", original_size=(width, height))
    return MedImage(pixels=pixels, meta=meta)


def _ask(text: str, *images: MedImage, **kwargs) -> GenerationRequest:
    parts = [ImagePart(img) for img in images] + [TextPart(text)]
    return GenerationRequest(messages=[Message("user", parts)], **kwargs)


# Mixed prompts: different lengths, images of different sizes, and text only, so that
# a batch needs real left padding and per-row M-RoPE positions.
MIXED = [
    _ask("Detect and localize all abnormalities in this image.", _image(500, 300, 1)),
    _ask("Findings?", _image(320, 640, 2)),
    _ask("Is there a pleural effusion? Answer yes or no."),
    _ask("Compare.", _image(256, 256, 3), _image(400, 200, 4)),
    _ask("Generate a detailed radiology report based on the given medical image." * 3),
]


@pytest.fixture(scope="module")
def singles(tiny_backend):
    """Each MIXED request answered alone (the reference for batching)."""
    return [tiny_backend.generate(r) for r in MIXED]


def test_backend_reports_what_it_loaded(tiny_backend, tiny_checkpoint):
    info = tiny_backend.info()
    assert info["backend"] == "transformers"
    assert info["model"] == str(tiny_checkpoint)
    assert info["device"] == "cpu"
    assert info["dtype"] == "float32"
    assert info["attn_implementation"] == "sdpa"
    assert info["max_batch_size"] == Settings().max_batch_size
    assert info["engine"] == "batched"  # "auto" on the CPU
    assert type(tiny_backend.model).__name__ == "Qwen3VLForConditionalGeneration"
    assert tiny_backend.model.dtype == torch.float32


def test_generate_returns_a_completion_with_sane_counts(tiny_backend, singles):
    completion = singles[0]
    assert isinstance(completion, Completion)
    assert completion.backend == "transformers"
    prompt = tiny_backend.render_prompt(MIXED[0].messages)
    text_tokens = len(tiny_backend.processor.tokenizer(prompt)["input_ids"])
    (w, h) = completion.image_input_sizes[0]
    assert completion.prompt_tokens == text_tokens - 1 + (w // 32) * (h // 32)
    assert 1 <= completion.completion_tokens <= 16
    assert completion.finish_reason in {"stop", "length"}
    if completion.finish_reason == "length":
        assert completion.completion_tokens == 16
    assert completion.text
    assert 0 <= completion.queue_seconds <= completion.total_seconds
    assert completion.first_token_seconds is not None


@pytest.mark.parametrize("size", [(500, 300), (64, 64), (2000, 1500), (300, 1200)])
def test_image_input_sizes_follow_smart_resize(tiny_backend, size):
    completion = tiny_backend.generate(_ask("Findings?", _image(*size), max_new_tokens=1))
    settings = tiny_backend.settings
    assert completion.image_input_sizes == [
        model_input_size(size, settings.min_pixels, settings.max_pixels)
    ]


def test_image_sizes_are_reported_per_image_in_order(singles):
    assert singles[3].image_input_sizes == [
        model_input_size((256, 256)),
        model_input_size((400, 200)),
    ]
    assert singles[2].image_input_sizes == []


def test_greedy_decoding_is_deterministic(tiny_backend, singles):
    again = tiny_backend.generate(MIXED[0])
    assert again.text == singles[0].text
    assert again.completion_tokens == singles[0].completion_tokens


def test_sampling_with_a_temperature_departs_from_greedy(tiny_backend, singles):
    torch.manual_seed(0)
    sampled = tiny_backend.generate(GenerationRequest(MIXED[0].messages, temperature=5.0))
    assert sampled.text != singles[0].text


def test_streamed_pieces_concatenate_to_the_returned_text(tiny_backend, singles):
    for request, reference in zip(MIXED[:3], singles[:3], strict=True):
        pieces: list[str] = []
        completion = tiny_backend.generate(request, on_text=pieces.append)
        assert len(pieces) > 1
        assert "".join(pieces) == completion.text == reference.text


def test_concurrent_requests_are_batched_and_match_single_requests(tiny_settings, singles):
    backend = TransformersBackend.from_settings(
        tiny_settings.replace(max_batch_size=len(MIXED), batch_wait_ms=60_000)
    )
    try:
        with ThreadPoolExecutor(len(MIXED)) as pool:
            batched = list(pool.map(backend.generate, MIXED))
        assert backend.stats["generate_calls"] == 1 < len(MIXED)
        assert backend.stats["largest_batch"] == len(MIXED)
        for one, many in zip(singles, batched, strict=True):
            assert many.text == one.text
            assert many.completion_tokens == one.completion_tokens
            assert many.prompt_tokens == one.prompt_tokens
            assert many.finish_reason == one.finish_reason
            assert many.image_input_sizes == one.image_input_sizes
    finally:
        backend.close()


@pytest.mark.parametrize("order", [(2, 0, 1), (4, 3, 2, 1, 0), (1, 2)])
def test_batch_results_do_not_depend_on_row_order(tiny_backend, singles, order):
    # text-only rows first: the batch must still carry the later rows' images
    from medmo_agent.backends._runner import Job

    jobs = [Job(tiny_backend._prepare(MIXED[i])) for i in order]
    results = tiny_backend.runner.engine.run_batch(jobs)
    assert [r.text for r in results] == [singles[i].text for i in order]


def test_streaming_inside_a_batch_goes_to_each_request_separately(tiny_settings, singles):
    backend = TransformersBackend.from_settings(
        tiny_settings.replace(max_batch_size=3, batch_wait_ms=60_000)
    )
    streams: list[list[str]] = [[], [], []]
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(backend.generate, MIXED[i], streams[i].append) for i in range(3)]
            results = [f.result() for f in futures]
        assert backend.stats["generate_calls"] == 1
        for i in range(3):
            assert "".join(streams[i]) == results[i].text == singles[i].text
    finally:
        backend.close()


def test_max_new_tokens_is_respected(tiny_backend, singles):
    assert singles[0].completion_tokens > 3
    short = tiny_backend.generate(GenerationRequest(messages=MIXED[0].messages, max_new_tokens=3))
    assert short.finish_reason == "length"
    assert short.completion_tokens == 3
    assert singles[0].text.startswith(short.text)


def test_requests_over_the_token_limit_are_refused(tiny_backend):
    limit = tiny_backend.settings.max_new_tokens_limit
    with pytest.raises(LimitExceededError, match="MEDMO_MAX_NEW_TOKENS_LIMIT"):
        tiny_backend.generate(_ask("hi", max_new_tokens=limit + 1))


def test_stop_strings_end_the_answer_before_them(tiny_backend, singles):
    reference = singles[0].text
    stop = reference[len(reference) // 2 : len(reference) // 2 + 3]
    cut = reference.find(stop)
    pieces: list[str] = []
    completion = tiny_backend.generate(
        GenerationRequest(messages=MIXED[0].messages, stop=[stop]), on_text=pieces.append
    )
    assert completion.text == reference[:cut]
    assert completion.finish_reason == "stop"
    assert "".join(pieces) == completion.text
    assert completion.completion_tokens < singles[0].completion_tokens


def test_cancel_stops_the_request_and_keeps_the_text_so_far(tiny_backend, singles):
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        cancel.set()

    completion = tiny_backend.generate(MIXED[0], on_text=on_text, cancel=cancel)
    assert completion.finish_reason == "cancelled"
    assert completion.completion_tokens < singles[0].completion_tokens
    assert singles[0].text.startswith(completion.text)
    assert "".join(pieces) == completion.text


def test_a_request_cancelled_before_it_runs_generates_nothing(tiny_backend):
    cancel = threading.Event()
    cancel.set()
    completion = tiny_backend.generate(MIXED[0], cancel=cancel)
    assert completion.finish_reason == "cancelled"
    assert completion.completion_tokens == 0
    assert completion.text == ""


def test_cancelling_one_request_in_a_batch_leaves_the_others_untouched(tiny_settings, singles):
    backend = TransformersBackend.from_settings(
        tiny_settings.replace(max_batch_size=2, batch_wait_ms=60_000)
    )
    cancel = threading.Event()
    try:
        with ThreadPoolExecutor(2) as pool:
            cancelled = pool.submit(backend.generate, MIXED[0], lambda piece: cancel.set(), cancel)
            other = pool.submit(backend.generate, MIXED[1])
            cancelled, other = cancelled.result(), other.result()
        assert backend.stats["generate_calls"] == 1
        assert cancelled.finish_reason == "cancelled"
        assert other.text == singles[1].text
        assert other.completion_tokens == singles[1].completion_tokens
    finally:
        backend.close()


def test_out_of_memory_on_a_batch_is_retried_one_request_at_a_time(
    tiny_settings, singles, monkeypatch
):
    backend = TransformersBackend.from_settings(
        tiny_settings.replace(max_batch_size=3, batch_wait_ms=60_000)
    )
    real_generate = backend.model.generate

    def generate_that_runs_out_of_memory_on_batches(**kwargs):
        if kwargs["input_ids"].shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real_generate(**kwargs)

    monkeypatch.setattr(backend.model, "generate", generate_that_runs_out_of_memory_on_batches)
    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(backend.generate, MIXED[:3]))
        assert [r.text for r in results] == [s.text for s in singles[:3]]
        assert backend.stats["oom_retries"] == 1
        assert backend.stats["generate_calls"] == 4  # the failed batch, then three singles
    finally:
        backend.close()


def test_tools_are_rendered_into_the_prompt_by_the_chat_template(tiny_backend):
    tool = {
        "type": "function",
        "function": {
            "name": "detect_findings",
            "description": "Find abnormalities.",
            "parameters": {"type": "object", "properties": {"image": {"type": "string"}}},
        },
    }
    messages = [Message("system", "You are a medical imaging expert."), Message("user", "Hi")]
    prompt = tiny_backend.render_prompt(messages, tools=[tool])
    assert "# Tools" in prompt
    assert '"name": "detect_findings"' in prompt
    assert "<tool_call>" in prompt
    plain = tiny_backend.generate(GenerationRequest(messages=messages, max_new_tokens=1))
    with_tools = tiny_backend.generate(
        GenerationRequest(messages=messages, max_new_tokens=1, tools=[tool])
    )
    assert with_tools.prompt_tokens > plain.prompt_tokens + 20


def test_same_seed_checkpoints_generate_the_same_tokens(tmp_path, tiny_settings, singles):
    from medmo_agent.testing.tiny import build_tiny_checkpoint

    rebuilt = build_tiny_checkpoint(tmp_path / "again", seed=0)
    other = build_tiny_checkpoint(tmp_path / "other", seed=1)
    for path, same in ((rebuilt, True), (other, False)):
        backend = TransformersBackend.from_settings(tiny_settings.replace(model=str(path)))
        try:
            text = backend.generate(MIXED[0]).text
        finally:
            backend.close()
        assert (text == singles[0].text) is same


def test_a_missing_local_checkpoint_fails_with_the_fix(tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(ModelLoadError) as info:
        TransformersBackend.from_settings(Settings(model=str(missing), device="cpu"))
    assert str(missing) in str(info.value)
    assert "no such folder" in info.value.message
    assert "local checkpoint folder" in info.value.fix


def test_a_folder_that_is_not_a_checkpoint_fails_with_the_fix(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        TransformersBackend.from_settings(Settings(model=str(tmp_path), device="cpu"))


def test_a_hub_model_that_is_not_cached_offline_fails_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelLoadError) as info:
        TransformersBackend.from_settings(Settings(model="MBZUAI/MedMO-8B-Next", device="cpu"))
    assert "MBZUAI/MedMO-8B-Next" in str(info.value)
    assert "not in the Hugging Face cache" in info.value.message
    assert "HF_HUB_OFFLINE=1 forbids" in info.value.message
    assert "huggingface-cli download MBZUAI/MedMO-8B-Next" in info.value.fix
    assert "--model PATH" in info.value.fix and "--backend openai" in info.value.fix


def test_a_closed_backend_refuses_new_requests(tiny_settings):
    backend = TransformersBackend.from_settings(tiny_settings)
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.generate(MIXED[2])
