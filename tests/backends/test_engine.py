"""The continuous-batching decode engine computes exactly what ``generate`` computes.

The CPU tests run the engine's eager path on the tiny checkpoint (CI); the GPU test runs the
CUDA-graph path on the GPU machine (``pytest -m gpu``).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from medmo_agent.backends.engine import ContinuousBatcher, EngineRequest  # noqa: E402


def _load(checkpoint, device: str, dtype):
    model = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
        checkpoint, dtype=dtype, attn_implementation="sdpa"
    ).to(device)
    processor = transformers.AutoProcessor.from_pretrained(checkpoint)
    return model.eval(), processor


def _prompt(processor, seed: int, size: tuple[int, int]):
    rng = np.random.RandomState(seed)
    image = Image.fromarray((rng.rand(size[1], size[0], 3) * 255).astype("uint8"))
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": image},
                {"type": "text", "text": f"Describe finding number {seed}."},
            ],
        }
    ]
    return dict(
        processor.apply_chat_template(
            messages,
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )
    )


def _engine(model, **options) -> ContinuousBatcher:
    """An engine with no end-of-sequence token and greedy prefill (``options`` override)."""
    options.setdefault("generation_config", _greedy_config(model))
    return ContinuousBatcher(model, eos_token_ids=options.pop("eos_token_ids", []), **options)


def _submit_all(engine, prompts, lengths):
    """Submit every prompt with its token budget at once; the futures, in order."""
    return [
        engine.submit(EngineRequest(inputs=p, max_new_tokens=n))
        for p, n in zip(prompts, lengths, strict=True)
    ]


def _greedy_config(model):
    # no end-of-sequence token: every request runs to its full length
    return transformers.GenerationConfig(
        do_sample=False, eos_token_id=None, pad_token_id=model.config.get_text_config().pad_token_id
    )


def _reference(model, inputs, n: int) -> list[int]:
    """Plain ``generate``, under the same attention kernels as the engine (on the GPU,
    PyTorch's default dispatch may pick other kernels from one run to the next)."""
    from medmo_agent.backends.engine.step import DEFAULT_SDPA_BACKENDS, attention_policy

    dev = {k: v.to(model.device) for k, v in inputs.items()}
    policy = attention_policy(DEFAULT_SDPA_BACKENDS, model.device)
    with torch.inference_mode(), policy:
        out = model.generate(
            **dev, max_new_tokens=n, min_new_tokens=n, generation_config=_greedy_config(model)
        )
    return out[0, dev["input_ids"].shape[1] :].tolist()


SIZES = [(300, 200), (64, 64), (500, 400), (128, 300), (200, 200)]


@pytest.fixture(scope="module")
def cpu_model(tiny_checkpoint):
    return _load(tiny_checkpoint, "cpu", torch.float32)


def test_one_request_at_a_time_matches_generate_token_for_token(cpu_model):
    model, processor = cpu_model
    engine = _engine(model, max_batch=4, max_len=1024)
    try:
        for seed, size in enumerate(SIZES[:3]):
            inputs = _prompt(processor, seed, size)
            expected = _reference(model, inputs, 24)
            result = engine.submit(EngineRequest(inputs=inputs, max_new_tokens=24)).result()
            assert result.tokens == expected
            assert result.finish_reason == "length"
            assert result.prompt_tokens == inputs["input_ids"].shape[1]
    finally:
        engine.close()


def test_requests_join_and_leave_the_running_batch_without_changing_their_tokens(cpu_model):
    model, processor = cpu_model
    prompts = [_prompt(processor, seed, size) for seed, size in enumerate(SIZES)]
    lengths = [5, 17, 9, 30, 12]  # different lengths: rows leave at different steps
    expected = [_reference(model, p, n) for p, n in zip(prompts, lengths, strict=True)]
    engine = _engine(model, max_batch=3, max_len=1024)
    try:
        futures = _submit_all(engine, prompts, lengths)
        results = [f.result(timeout=120) for f in futures]
    finally:
        engine.close()
    assert [r.tokens for r in results] == expected
    # five requests through three slots: some joined a batch that was already running
    assert engine.stats["max_running"] == 3
    assert engine.stats["steps"] < sum(lengths)


def test_on_token_streams_every_token_and_can_stop_a_request(cpu_model):
    model, processor = cpu_model
    inputs = _prompt(processor, 7, (96, 96))
    seen: list[int] = []

    def on_token(token: int) -> bool:
        seen.append(token)
        return len(seen) == 6  # "a stop string was reached"

    engine = _engine(model, max_batch=2, max_len=512)
    try:
        result = engine.submit(
            EngineRequest(inputs=inputs, max_new_tokens=40, on_token=on_token)
        ).result()
    finally:
        engine.close()
    assert result.tokens == seen
    assert len(result.tokens) == 6
    assert result.finish_reason == "stop"


def test_a_cancelled_request_stops_early_while_its_neighbour_finishes(cpu_model):
    model, processor = cpu_model
    cancel = threading.Event()
    count = [0]

    def on_token(_token: int) -> None:
        count[0] += 1
        if count[0] == 3:
            cancel.set()

    engine = _engine(model, max_batch=2, max_len=512)
    try:
        first = engine.submit(
            EngineRequest(
                inputs=_prompt(processor, 1, (64, 64)),
                max_new_tokens=50,
                on_token=on_token,
                cancel=cancel,
            )
        )
        second = engine.submit(
            EngineRequest(inputs=_prompt(processor, 2, (64, 64)), max_new_tokens=20)
        )
        cancelled, finished = first.result(timeout=60), second.result(timeout=60)
    finally:
        engine.close()
    assert cancelled.finish_reason == "cancelled"
    assert len(cancelled.tokens) == 3
    assert finished.finish_reason == "length"
    assert len(finished.tokens) == 20


def test_end_of_sequence_token_finishes_a_request(cpu_model):
    model, processor = cpu_model
    inputs = _prompt(processor, 3, (64, 64))
    tokens = _reference(model, inputs, 10)
    eos = tokens[4]  # pretend the fifth generated token ends the sequence
    engine = _engine(model, eos_token_ids=[eos], max_batch=2, max_len=512)
    try:
        result = engine.submit(EngineRequest(inputs=inputs, max_new_tokens=10)).result()
    finally:
        engine.close()
    assert result.tokens == tokens[: tokens.index(eos) + 1]
    assert result.finish_reason == "stop"


def test_a_prompt_longer_than_the_cache_fails_alone_and_the_engine_keeps_serving(cpu_model):
    model, processor = cpu_model
    big = _prompt(processor, 4, (1024, 1024))  # ~1000 image tokens
    small = _prompt(processor, 5, (64, 64))
    engine = _engine(model, max_batch=2, max_len=256)
    try:
        with pytest.raises(ValueError, match="does not fit the KV cache"):
            engine.submit(EngineRequest(inputs=big, max_new_tokens=4)).result()
        ok = engine.submit(EngineRequest(inputs=small, max_new_tokens=4)).result()
    finally:
        engine.close()
    assert len(ok.tokens) == 4


def test_more_new_tokens_than_the_cache_holds_are_refused_and_the_most_that_fits_decodes(
    cpu_model,
):
    from medmo_agent.backends.engine import CacheLimitError

    model, processor = cpu_model
    inputs = _prompt(processor, 5, (64, 64))
    room = 256 - inputs["input_ids"].shape[1]
    engine = _engine(model, max_batch=2, max_len=256)
    try:
        refused = engine.submit(EngineRequest(inputs=inputs, max_new_tokens=room + 1))
        with pytest.raises(CacheLimitError, match=f"at most {room} new tokens") as info:
            refused.result(timeout=60)
        assert info.value.field == "max_new_tokens"
        full = engine.submit(EngineRequest(inputs=inputs, max_new_tokens=room)).result()
    finally:
        engine.close()
    assert full.finish_reason == "length"
    assert full.tokens == _reference(model, inputs, room)  # the cache's last positions too


@pytest.mark.gpu
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "stock"])
def test_cuda_graph_decoding_matches_generate_on_the_gpu(tiny_checkpoint, kernels):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model, processor = _load(tiny_checkpoint, "cuda", torch.bfloat16)
    prompts = [_prompt(processor, seed, size) for seed, size in enumerate(SIZES)]
    lengths = [16, 40, 8, 33, 21]
    engine = _engine(
        model,
        max_batch=4,
        max_len=2048,
        kernels=kernels,
    )
    # after the engine: with kernels it installed its fused modules, which generate uses too
    expected = [_reference(model, p, n) for p, n in zip(prompts, lengths, strict=True)]
    try:
        assert engine.step.use_cuda_graphs
        assert engine.step.kernels is kernels
        single = [
            engine.submit(EngineRequest(inputs=p, max_new_tokens=n)).result().tokens
            for p, n in zip(prompts, lengths, strict=True)
        ]
        futures = _submit_all(engine, prompts, lengths)
        together = [f.result(timeout=120).tokens for f in futures]
    finally:
        engine.close()
    assert single == expected
    # Decoded together, rows go through another attention kernel and batched matmuls, whose
    # rounding differs from one request's: only the first token (from the prefill, which is
    # the same computation) and every length are guaranteed.
    assert [len(t) for t in together] == lengths
    assert [t[0] for t in together] == [t[0] for t in expected]
    if kernels:
        assert any(st.whole_step for st in engine.step._states.values())


def test_prompts_arriving_together_are_prefilled_together_with_the_same_tokens(cpu_model):
    model, processor = cpu_model
    prompts = [_prompt(processor, seed, size) for seed, size in enumerate(SIZES[:4])]
    prompts.append(
        dict(
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "text", "text": "No image here."}]}],
                tokenize=True,
                add_generation_prompt=True,
                return_dict=True,
                return_tensors="pt",
            )
        )
    )
    lengths = [12, 7, 15, 9, 11]
    expected = [_reference(model, p, n) for p, n in zip(prompts, lengths, strict=True)]
    engine = _engine(
        model,
        max_batch=8,
        max_len=1024,
        pad_token_id=0,
        prefill_batch=4,
    )
    release = threading.Event()
    try:
        # hold the engine thread so that every prompt is waiting when it comes back
        busy = engine.run_exclusive(release.wait)
        futures = _submit_all(engine, prompts, lengths)
        release.set()
        busy.result(timeout=30)
        results = [f.result(timeout=120) for f in futures]
    finally:
        engine.close()
    assert engine.stats["batched_prefills"] == 2  # four together, then the fifth
    assert [r.tokens for r in results] == expected
    assert [r.prompt_tokens for r in results] == [p["input_ids"].shape[1] for p in prompts]


@pytest.fixture
def kernel_model(tiny_checkpoint):
    """A model of its own: the kernel tests install and remove fused modules."""
    import triton

    if not triton.knobs.runtime.interpret:
        pytest.skip("runs in Triton's CPU interpreter (TRITON_INTERPRET=1, set when no GPU)")
    return _load(tiny_checkpoint, "cpu", torch.float32)


@pytest.mark.slow  # Triton's CPU interpreter: many seconds without a GPU
def test_with_the_triton_kernels_batched_rows_decode_like_generate(kernel_model):
    """The kernel path on the CPU (Triton's interpreter): rotary embedding and cache write in
    one kernel, mask-free split attention for the batch. The model keeps its stock modules
    here (the interpreter is too slow for fused prefills), so ``generate`` is the stock one."""
    from medmo_agent.backends.engine.fused import fused_kernels_installed, uninstall_fused_kernels

    model, processor = kernel_model
    prompts = [_prompt(processor, seed, (64, 64)) for seed in range(3)]
    lengths = [6, 11, 4]
    expected = [_reference(model, p, n) for p, n in zip(prompts, lengths, strict=True)]
    engine = _engine(
        model,
        max_batch=4,
        max_len=512,
        kernels=True,
        prefill_batch=1,
    )
    try:
        assert fused_kernels_installed(model)
        uninstall_fused_kernels(model)
        assert engine.step.kernels
        futures = _submit_all(engine, prompts, lengths)
        results = [f.result(timeout=300) for f in futures]
    finally:
        engine.close()
    assert [r.tokens for r in results] == expected
    assert engine.stats["max_running"] >= 2  # rows were decoded together
    assert any(st.whole_step for st in engine.step._states.values())


@pytest.mark.slow  # Triton's CPU interpreter: many seconds without a GPU
def test_steps_run_ahead_of_the_host_and_rows_stopping_mid_batch_keep_every_token_right(
    kernel_model,
):
    """On the whole-step path the next step is launched before the last one's tokens are
    read; a request stopped by its callback, or cancelled, was decoded one step further
    (that token is dropped) while its neighbour's tokens stay exactly generate's."""
    from medmo_agent.backends.engine.fused import uninstall_fused_kernels

    model, processor = kernel_model
    prompts = [_prompt(processor, seed, (64, 64)) for seed in range(3)]
    lengths = [9, 9, 12]
    engine = _engine(model, max_batch=4, max_len=512, kernels=True, prefill_batch=3)
    uninstall_fused_kernels(model)  # stock generate as the reference (see above)
    expected = [_reference(model, p, n) for p, n in zip(prompts, lengths, strict=True)]
    seen: list[int] = []
    cancel = threading.Event()
    cancelled_seen: list[int] = []

    def stop_after_four(token: int) -> bool:
        seen.append(token)
        return len(seen) == 4

    def cancel_after_six(token: int) -> bool:
        cancelled_seen.append(token)
        if len(cancelled_seen) == 6:
            cancel.set()
        return False

    requests = [
        EngineRequest(inputs=prompts[0], max_new_tokens=lengths[0]),
        EngineRequest(inputs=prompts[1], max_new_tokens=lengths[1], on_token=stop_after_four),
        EngineRequest(
            inputs=prompts[2], max_new_tokens=lengths[2], on_token=cancel_after_six, cancel=cancel
        ),
    ]
    try:
        results = [f.result(timeout=300) for f in [engine.submit(r) for r in requests]]
    finally:
        engine.close()
    assert results[0].tokens == expected[0]
    assert results[1].finish_reason == "stop" and results[1].tokens == expected[1][:4]
    assert seen == expected[1][:4]  # the token decoded past the stop never reached anyone
    assert results[2].finish_reason == "cancelled" and results[2].tokens == expected[2][:6]
    assert cancelled_seen == expected[2][:6]
    assert engine.stats["steps_ahead"] > 0
    assert engine.stats["max_running"] == 3


def test_fused_kernels_are_installed_per_model_and_can_be_removed(kernel_model):
    from medmo_agent.backends.engine.fused import (
        fused_kernels_installed,
        install_fused_kernels,
        uninstall_fused_kernels,
    )

    model, _ = kernel_model
    layer = model.model.language_model.layers[0]
    stock = type(layer.input_layernorm).forward
    changed = install_fused_kernels(model)
    try:
        layers = len(model.model.language_model.layers)
        blocks = len(model.model.visual.blocks)
        # final norm; 4 norms, an MLP, an attention and the layer itself a layer; the vision
        # tower and each block's attention
        assert changed == 1 + layers * 7 + 1 + blocks
        assert install_fused_kernels(model) == 0  # idempotent
        assert layer.input_layernorm.forward.__func__ is not stock
        x = torch.randn(2, 3, model.config.text_config.hidden_size)
        fused = layer.input_layernorm(x)
    finally:
        uninstall_fused_kernels(model)
    assert not fused_kernels_installed(model)
    for module in (layer, layer.input_layernorm, layer.self_attn, model.model.visual):
        assert "forward" not in module.__dict__
    torch.testing.assert_close(layer.input_layernorm(x), fused, rtol=1e-5, atol=1e-5)


def test_the_fused_mlp_runs_gate_and_up_as_one_product_over_shared_weights(kernel_model):
    from medmo_agent.backends.engine.fused import install_fused_kernels, uninstall_fused_kernels

    model, _ = kernel_model
    mlp = model.model.language_model.layers[1].mlp
    gate, up = mlp.gate_proj.weight.detach().clone(), mlp.up_proj.weight.detach().clone()
    x = torch.randn(2, 5, model.config.text_config.hidden_size)
    with torch.no_grad():
        stock = mlp(x)
    install_fused_kernels(model)
    try:
        merged = mlp.__dict__["_medmo_gate_up"]
        # the modules' weights are views into the merged one: no second copy in memory
        assert mlp.gate_proj.weight.data_ptr() == merged.data_ptr()
        assert mlp.up_proj.weight.data_ptr() == merged[gate.shape[0] :].data_ptr()
        assert torch.equal(mlp.gate_proj.weight, gate) and torch.equal(mlp.up_proj.weight, up)
        with torch.no_grad():
            fused = mlp(x)
        torch.testing.assert_close(fused, stock, rtol=1e-5, atol=1e-5)
    finally:
        uninstall_fused_kernels(model)
    assert "_medmo_gate_up" not in mlp.__dict__
    assert mlp.gate_proj.weight.data_ptr() != mlp.up_proj.weight.data_ptr()
    assert torch.equal(mlp.gate_proj.weight, gate) and torch.equal(mlp.up_proj.weight, up)


def _two_image_prompt(processor):
    rng = np.random.RandomState(9)
    images = [
        Image.fromarray((rng.rand(h, w, 3) * 255).astype("uint8")) for w, h in ((64, 96), (96, 64))
    ]
    content = [{"type": "image", "image": im} for im in images]
    content.append({"type": "text", "text": "Compare the two."})
    return dict(
        processor.apply_chat_template(
            [{"role": "user", "content": content}],
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )
    )


@pytest.mark.slow  # Triton's CPU interpreter: many seconds without a GPU
def test_the_fused_model_computes_what_the_stock_model_computes(kernel_model, monkeypatch):
    """Fused attention (one q|k|v product, norm + rotary kernel), fused decoder layers and the
    fused vision attention give the stock model's logits, for a prompt of two images (two
    vision attention segments), and the vision tower synchronises once, not in every block."""
    import medmo_agent.backends.engine.kernels as kernels
    from medmo_agent.backends.engine.fused import install_fused_kernels, uninstall_fused_kernels

    model, processor = kernel_model
    inputs = _two_image_prompt(processor)
    assert inputs["image_grid_thw"].shape[0] == 2
    synced = [0]
    real_tolist = torch.Tensor.tolist

    def counting_tolist(self):
        synced[0] += 1
        return real_tolist(self)

    def vision_syncs() -> int:
        synced[0] = 0
        with torch.no_grad(), monkeypatch.context() as m:
            m.setattr(torch.Tensor, "tolist", counting_tolist)
            model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        return synced[0]

    with torch.no_grad():
        stock = model(**inputs).logits
    stock_syncs = vision_syncs()
    attn = model.model.language_model.layers[0].self_attn
    q_weight = attn.q_proj.weight.detach().clone()
    install_fused_kernels(model)
    calls = {"qk_norm_rope": 0, "vision_rope": 0}
    for name in calls:
        real = getattr(kernels, name)

        def counting(*args, _real=real, _name=name, **kw):
            calls[_name] += 1
            return _real(*args, **kw)

        monkeypatch.setattr(kernels, name, counting)
    try:
        merged = attn.__dict__["_medmo_qkv"]
        assert attn.q_proj.weight.data_ptr() == merged.data_ptr()  # views, no second copy
        assert torch.equal(attn.q_proj.weight, q_weight)
        # the stock tower reads the segment sizes back in every block; the fused one once
        assert vision_syncs() <= stock_syncs - len(model.model.visual.blocks) + 1
        with torch.no_grad():
            fused = model(**inputs).logits
    finally:
        uninstall_fused_kernels(model)
    config = model.config
    blocks = len(model.model.visual.blocks)
    assert calls["vision_rope"] == 2 * blocks  # get_image_features, then the forward
    assert calls["qk_norm_rope"] == config.text_config.num_hidden_layers
    torch.testing.assert_close(fused, stock, rtol=1e-4, atol=1e-4)
    assert "_medmo_qkv" not in attn.__dict__
    assert torch.equal(attn.q_proj.weight, q_weight)


def test_the_kernels_need_a_gpu_or_the_interpreter(cpu_model, monkeypatch):
    from medmo_agent.backends.engine.fused import fused_kernels_installed

    model, _ = cpu_model
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="need a CUDA GPU"):
        ContinuousBatcher(model, eos_token_ids=[], max_batch=2, max_len=256, kernels=True)
    assert not fused_kernels_installed(model)  # refused before the model was changed


@pytest.mark.slow  # Triton's CPU interpreter: many seconds without a GPU
def test_a_fused_model_decodes_with_the_engines_attention_kernel_in_generate(
    kernel_model, monkeypatch
):
    """After install, generate's decode steps run the split decode-attention kernel (the one
    the engine's graphs replay), its prompt still runs SDPA, and the engine equals it."""
    import medmo_agent.backends.engine.kernels as kernels
    from medmo_agent.backends.engine.fused import FUSED_ATTENTION

    model, processor = kernel_model
    inputs = dict(
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": "Any effusion?"}]}],
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )
    )
    engine = _engine(
        model,
        max_batch=2,
        max_len=256,
        kernels=True,
    )
    try:
        assert model.config.text_config._attn_implementation == FUSED_ATTENTION
        calls = [0]
        real = kernels.decode_attention

        def counting(*args, **kwargs):
            calls[0] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(kernels, "decode_attention", counting)
        expected = _reference(model, inputs, 5)
        layers = model.config.text_config.num_hidden_layers
        assert calls[0] == 4 * layers  # four decode steps after the prompt, every layer
        monkeypatch.setattr(kernels, "decode_attention", real)
        result = engine.submit(EngineRequest(inputs=inputs, max_new_tokens=5)).result()
    finally:
        engine.close()
    assert result.tokens == expected


@pytest.mark.slow  # Triton's CPU interpreter: many seconds without a GPU
def test_with_prefill_on_its_own_thread_requests_still_match_generate(cpu_model):
    """``overlap_prefill`` (the CUDA default): prompts are read on a second thread while
    the running batch decodes; tokens, batching of waiting prompts and sampled work
    (``run_exclusive``) are unchanged."""
    model, processor = cpu_model
    prompts = [_prompt(processor, seed, size) for seed, size in enumerate(SIZES)]
    lengths = [9, 14, 5, 20, 7]
    expected = [_reference(model, p, n) for p, n in zip(prompts, lengths, strict=True)]
    engine = _engine(
        model,
        max_batch=3,
        max_len=1024,
        overlap_prefill=True,
        prefill_batch=4,
    )
    release = threading.Event()
    try:
        assert engine._prefill_thread is not None
        busy = engine.run_exclusive(release.wait)  # holds the prefill thread
        futures = _submit_all(engine, prompts, lengths)
        release.set()
        busy.result(timeout=30)
        results = [f.result(timeout=120) for f in futures]
        again = engine.submit(EngineRequest(inputs=prompts[0], max_new_tokens=4)).result()
    finally:
        engine.close()
    assert [r.tokens for r in results] == expected
    assert again.tokens == expected[0][:4]
    assert engine.stats["max_running"] == 3  # never more rows than slots
    assert engine.stats["batched_prefills"] >= 1  # the waiting prompts went in together
    assert not engine._prefill_thread.is_alive()


def test_closing_the_engine_fails_requests_still_waiting_for_a_prefill(cpu_model):
    model, processor = cpu_model
    engine = _engine(
        model,
        max_batch=2,
        max_len=512,
        overlap_prefill=True,
    )
    release = threading.Event()
    busy = engine.run_exclusive(release.wait)
    waiting = engine.submit(EngineRequest(inputs=_prompt(processor, 1, (64, 64)), max_new_tokens=3))
    closer = threading.Thread(target=engine.close)
    closer.start()
    release.set()
    closer.join(timeout=60)
    busy.result(timeout=30)
    try:
        waiting.result(timeout=30)
    except RuntimeError as exc:  # closed before its prefill came back
        assert "closed" in str(exc)
    else:  # or it was prefilled and finished first: either way it is never left hanging
        assert waiting.done()


def test_a_prefill_thread_failure_fails_its_requests_and_the_engine_keeps_serving(
    cpu_model, monkeypatch
):
    model, processor = cpu_model
    engine = _engine(model, max_batch=2, max_len=512, overlap_prefill=True)
    inputs = _prompt(processor, 2, (64, 64))
    try:
        real = engine.prefiller.run

        def broken(live):
            raise RuntimeError("device lost")

        monkeypatch.setattr(engine.prefiller, "run", broken)
        failed = engine.submit(EngineRequest(inputs=inputs, max_new_tokens=3))
        with pytest.raises(RuntimeError, match="device lost"):
            failed.result(timeout=60)
        monkeypatch.setattr(engine.prefiller, "run", real)
        ok = engine.submit(EngineRequest(inputs=inputs, max_new_tokens=3)).result(timeout=60)
    finally:
        engine.close()
    assert ok.tokens == _reference(model, inputs, 3)
