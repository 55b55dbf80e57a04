"""TransformersBackend on a CUDA GPU: defaults, batching, and a real out-of-memory error."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medmo_agent.backends.base import GenerationRequest
from medmo_agent.config import Settings
from medmo_agent.errors import GPUOutOfMemoryError
from medmo_agent.types import ImageMeta, ImagePart, MedImage, Message, TextPart

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _ask(text: str, size: tuple[int, int] | None = None, **kwargs) -> GenerationRequest:
    parts: list = [TextPart(text)]
    if size is not None:
        w, h = size
        pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        meta = ImageMeta(source="inline", format="png", original_size=(w, h))
        parts.insert(0, ImagePart(MedImage(pixels=pixels, meta=meta)))
    return GenerationRequest(messages=[Message("user", parts)], **kwargs)


@pytest.fixture(scope="module")
def gpu_backend(tiny_checkpoint):
    from medmo_agent.backends.transformers import TransformersBackend

    backend = TransformersBackend.from_settings(
        Settings(
            model=str(tiny_checkpoint),
            max_new_tokens=16,
            max_batch_size=4,
            batch_wait_ms=60_000,
            max_pixels=16_777_216,
            engine="batched",
        )
    )
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def default_gpu_backend(tiny_checkpoint):
    from medmo_agent.backends.transformers import TransformersBackend

    backend = TransformersBackend.from_settings(
        Settings(model=str(tiny_checkpoint), max_new_tokens=24, max_batch_size=4)
    )
    yield backend
    backend.close()


def test_the_default_engine_on_a_gpu_is_continuous_and_answers_like_batched(
    default_gpu_backend, gpu_backend
):
    from medmo_agent.backends.engine.fused import install_fused_kernels, uninstall_fused_kernels

    assert default_gpu_backend.info()["engine"] == "continuous"
    assert default_gpu_backend.runner.batcher.step.use_cuda_graphs
    requests = [_ask(f"Findings {i}?", (256 + 64 * i, 320), max_new_tokens=24) for i in range(4)]
    # the continuous engine runs its fused kernels; compare with generate on the same kernels
    install_fused_kernels(gpu_backend.model)
    wait, gpu_backend.runner.batch_wait_s = gpu_backend.runner.batch_wait_s, 0.0
    try:
        expected = [gpu_backend.generate(r).text for r in requests]  # one at a time
    finally:
        gpu_backend.runner.batch_wait_s = wait
        uninstall_fused_kernels(gpu_backend.model)
    assert [default_gpu_backend.generate(r).text for r in requests] == expected
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(default_gpu_backend.generate, requests))
    assert all(c.completion_tokens >= 1 for c in together)
    assert default_gpu_backend.stats["max_running"] >= 2


def test_defaults_on_a_gpu_are_cuda_and_bfloat16(gpu_backend):
    info = gpu_backend.info()
    assert info["device"].startswith("cuda")
    assert info["dtype"] == "bfloat16"
    assert gpu_backend.model.dtype == torch.bfloat16
    assert info["attn_implementation"] in {"sdpa", "flash_attention_2"}


def test_concurrent_requests_share_one_generate_call_on_the_gpu(gpu_backend):
    before = gpu_backend.stats["generate_calls"]
    requests = [_ask(f"Findings {i}?", (256 + 64 * i, 320)) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(gpu_backend.generate, requests))
    assert gpu_backend.stats["generate_calls"] == before + 1
    assert all(r.completion_tokens >= 1 for r in results)


def test_a_real_out_of_memory_error_fails_only_that_request(gpu_backend):
    single = gpu_backend.runner.max_batch_size
    gpu_backend.runner.max_batch_size = 1  # run this one alone
    hog = None
    try:
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info()
        for headroom in (32, 64, 128, 256):
            try:
                hog = torch.empty(free - headroom * 2**20, dtype=torch.uint8, device="cuda")
                break
            except torch.OutOfMemoryError:
                continue
        assert hog is not None
        with pytest.raises(GPUOutOfMemoryError) as info:
            gpu_backend.generate(_ask("Findings?", (4096, 4096), max_new_tokens=4))
        assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    finally:
        del hog
        torch.cuda.empty_cache()
        gpu_backend.runner.max_batch_size = single
    # the worker keeps serving
    assert gpu_backend.generate(_ask("Findings?", (256, 256))).completion_tokens >= 1
