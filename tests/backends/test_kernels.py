"""The engine's Triton kernels against the stock PyTorch computations they replace.

Without a GPU they run in Triton's CPU interpreter (``TRITON_INTERPRET=1``) in float32; the
interpreter rounds float32 to bfloat16 by truncation, so the bf16 bit-for-bit checks run on
the GPU tier (``pytest -m gpu``).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ON_GPU = torch.cuda.is_available()


@pytest.fixture(scope="module")
def K():
    """The kernels module: compiled on a GPU, in Triton's interpreter on the CPU (the root
    conftest turns the interpreter on before triton is first imported)."""
    import triton

    if not ON_GPU and not triton.knobs.runtime.interpret:
        pytest.skip("no GPU and Triton's interpreter is off (set TRITON_INTERPRET=1)")
    import medmo_agent.backends.engine.kernels as kernels

    return kernels


DEVICE = "cuda" if ON_GPU else "cpu"


def _stock_rms_norm(x, weight, eps):
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _reference_attention(q, cache_k, cache_v, lengths, scale):
    """Plain softmax attention in float64, row by row, keys repeated for the head groups."""
    batch, heads = q.shape[:2]
    group = heads // cache_k.shape[1]
    out = []
    for b in range(batch):
        n = int(lengths[b])
        k = cache_k[b, :, :n].double().repeat_interleave(group, 0)
        v = cache_v[b, :, :n].double().repeat_interleave(group, 0)
        w = torch.softmax((q[b].double() @ k.transpose(1, 2)) * scale, dim=-1)
        out.append((w @ v).reshape(1, -1))
    return torch.stack(out)


def test_rms_norm_matches_the_stock_norm(K):
    gen = torch.Generator().manual_seed(0)
    for width in (64, 100, 128):  # 100: a row narrower than its power-of-two block
        x = torch.randn(3, 5, width, generator=gen).to(DEVICE)
        w = torch.randn(width, generator=gen).to(DEVICE)
        out = K.rms_norm(x, w, 1e-6)
        assert out.shape == x.shape and out.dtype == x.dtype
        torch.testing.assert_close(out, _stock_rms_norm(x, w, 1e-6), rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 6), pick=st.data())
def test_a_rows_norm_does_not_depend_on_the_other_rows(K, rows, pick):
    gen = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 64, generator=gen).to(DEVICE)
    w = torch.randn(64, generator=gen).to(DEVICE)
    i = pick.draw(st.integers(0, rows - 1))
    together = K.rms_norm(x, w, 1e-6)[i]
    alone = K.rms_norm(x[i : i + 1].clone(), w, 1e-6)[0]
    assert torch.equal(together, alone)


def _check_add_rms_norm_is_the_add_then_the_norm(K, dtype):
    gen = torch.Generator().manual_seed(3)
    for width in (64, 100, 4096):
        residual = torch.randn(4, 1, width, generator=gen).to(DEVICE, dtype)
        delta = torch.randn(4, 1, width, generator=gen).to(DEVICE, dtype)
        w = torch.randn(width, generator=gen).to(DEVICE, dtype)
        total, normed = K.add_rms_norm(residual, delta, w, 1e-6)
        expected_total = residual + delta
        assert torch.equal(total, expected_total)
        assert torch.equal(normed, K.rms_norm(expected_total, w, 1e-6))


def test_add_rms_norm_is_bit_identical_to_the_add_then_the_norm(K):
    _check_add_rms_norm_is_the_add_then_the_norm(K, torch.float32)


@pytest.mark.gpu
def test_add_rms_norm_is_bit_identical_in_bfloat16_on_the_gpu(K):
    if not ON_GPU:
        pytest.skip("needs a CUDA GPU")
    _check_add_rms_norm_is_the_add_then_the_norm(K, torch.bfloat16)


def test_silu_mul_reads_the_halves_of_one_gate_up_projection(K):
    gen = torch.Generator().manual_seed(4)
    gate_up = torch.randn(3, 1, 2 * 1500, generator=gen).to(DEVICE)
    gate, up = gate_up[..., :1500], gate_up[..., 1500:]
    out = K.silu_mul(gate, up)
    assert torch.equal(out, K.silu_mul(gate.contiguous(), up.contiguous()))
    torch.testing.assert_close(out, torch.nn.functional.silu(gate) * up, rtol=1e-5, atol=1e-6)


def test_silu_mul_matches_the_stock_activation(K):
    gen = torch.Generator().manual_seed(1)
    gate = (torch.randn(2, 3, 1500, generator=gen) * 4).to(DEVICE)
    up = torch.randn(2, 3, 1500, generator=gen).to(DEVICE)
    expected = torch.nn.functional.silu(gate) * up
    torch.testing.assert_close(K.silu_mul(gate, up), expected, rtol=1e-5, atol=1e-6)


class _Norm:
    """What the kernel reads of an RMSNorm module."""

    def __init__(self, weight, eps=1e-6):
        self.weight, self.variance_epsilon = weight, eps


def _qkv_inputs(dtype, batch=3, seq=1, heads=4, kv_heads=2, head_dim=16, seed=2):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen).to(DEVICE, dtype)

    qkv = r(batch, seq, (heads + 2 * kv_heads) * head_dim)
    cos, sin = r(batch, seq, head_dim), r(batch, seq, head_dim)
    return qkv, _Norm(r(head_dim)), _Norm(r(head_dim), 1e-5), cos, sin


def _stock_qk(K, qkv, q_norm, k_norm, cos, sin, heads, kv_heads):
    """The stock attention's q/k/v: split, per-head norms (the fused norm), rotary."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb

    batch, seq, _ = qkv.shape
    q_w = heads * qkv.shape[-1] // (heads + 2 * kv_heads)
    k_w = (qkv.shape[-1] - q_w) // 2
    q, k, v = qkv.split([q_w, k_w, k_w], dim=-1)
    q = K.rms_norm(q.reshape(batch, seq, heads, -1), q_norm.weight, q_norm.variance_epsilon)
    k = K.rms_norm(k.reshape(batch, seq, kv_heads, -1), k_norm.weight, k_norm.variance_epsilon)
    q, k = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    return q, k, v.reshape(batch, seq, kv_heads, -1).transpose(1, 2)


def _check_qk_norm_rope(K, dtype):
    heads, kv_heads = 4, 2
    qkv, q_norm, k_norm, cos, sin = _qkv_inputs(dtype, seq=5)
    q, k, v = K.qk_norm_rope(qkv, q_norm, k_norm, cos, sin, heads, kv_heads)
    stock = _stock_qk(K, qkv, q_norm, k_norm, cos, sin, heads, kv_heads)
    for ours, theirs in zip((q, k, v), stock, strict=True):
        assert ours.shape == theirs.shape
        assert torch.equal(ours, theirs)
    # the layout the stock attention hands on: (batch, heads, seq, dim) views of (b, s, h, d)
    assert q.transpose(1, 2).is_contiguous() and v.transpose(1, 2).is_contiguous()


def _check_qk_norm_rope_writes_the_cache(K, dtype):
    heads, kv_heads, max_len = 4, 2, 32
    qkv, q_norm, k_norm, cos, sin = _qkv_inputs(dtype, seq=1, seed=5)
    cache_k = torch.zeros(4, kv_heads, max_len, 16, dtype=dtype, device=DEVICE)
    cache_v = torch.zeros_like(cache_k)
    write = torch.tensor([5, 0, 31], device=DEVICE)
    q = K.qk_norm_rope(qkv, q_norm, k_norm, cos, sin, heads, kv_heads, (cache_k, cache_v, write))
    stock_q, stock_k, stock_v = _stock_qk(K, qkv, q_norm, k_norm, cos, sin, heads, kv_heads)
    assert q.shape == stock_q.shape and torch.equal(q, stock_q)
    written = torch.zeros_like(cache_k, dtype=torch.bool)
    for b, pos in enumerate(write.tolist()):
        assert torch.equal(cache_k[b, :, pos], stock_k[b, :, 0])
        assert torch.equal(cache_v[b, :, pos], stock_v[b, :, 0])
        written[b, :, pos] = True
    assert not cache_k[~written].any() and not cache_v[~written].any()  # nothing else touched


def test_qk_norm_rope_is_the_stock_norms_then_rotary_bit_for_bit(K):
    _check_qk_norm_rope(K, torch.float32)


def test_qk_norm_rope_writes_each_rows_key_and_value_into_its_cache_slot(K):
    _check_qk_norm_rope_writes_the_cache(K, torch.float32)


@pytest.mark.gpu
def test_qk_norm_rope_is_bit_identical_in_bfloat16_on_the_gpu(K):
    if not ON_GPU:
        pytest.skip("needs a CUDA GPU")
    _check_qk_norm_rope(K, torch.bfloat16)
    _check_qk_norm_rope_writes_the_cache(K, torch.bfloat16)


def _check_vision_rope(K, dtype, heads=3, head_dim=18, patches=7):
    """Head size 18: not a power of two (the 8B vision tower's is 72)."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb_vision

    gen = torch.Generator().manual_seed(7)
    qkv = torch.randn(patches, 3 * heads * head_dim, generator=gen).to(DEVICE, dtype)
    cos = torch.randn(patches, head_dim, generator=gen).to(DEVICE)
    sin = torch.randn(patches, head_dim, generator=gen).to(DEVICE)
    q, k, v = K.vision_rope(qkv, cos, sin, heads)
    sq, sk, sv = qkv.reshape(patches, 3, heads, head_dim).permute(1, 0, 2, 3).unbind(0)
    sq, sk = apply_rotary_pos_emb_vision(sq, sk, cos, sin)
    for ours, theirs in zip((q, k, v), (sq, sk, sv), strict=True):
        assert ours.shape == (1, heads, patches, head_dim) and ours.is_contiguous()
        assert torch.equal(ours, theirs.transpose(0, 1).unsqueeze(0))


def test_vision_rope_is_bit_identical_to_the_stock_float32_rotary(K):
    _check_vision_rope(K, torch.float32)


@pytest.mark.gpu
def test_vision_rope_is_bit_identical_in_bfloat16_on_the_gpu(K):
    if not ON_GPU:
        pytest.skip("needs a CUDA GPU")
    _check_vision_rope(K, torch.bfloat16)
    _check_vision_rope(K, torch.bfloat16, heads=16, head_dim=72, patches=300)


def _attention_case(K, lengths, dtype=torch.float32, heads=4, kv_heads=2, head_dim=16):
    max_len = 600
    gen = torch.Generator().manual_seed(sum(lengths))
    batch = len(lengths)
    cache_k = torch.randn(batch + 1, kv_heads, max_len, head_dim, generator=gen)
    cache_v = torch.randn(batch + 1, kv_heads, max_len, head_dim, generator=gen)
    q = torch.randn(batch, heads, 1, head_dim, generator=gen)
    cache_k, cache_v, q = (t.to(DEVICE, dtype) for t in (cache_k, cache_v, q))
    lens = torch.tensor(lengths, device=DEVICE)
    ws = K.AttentionWorkspace(batch, heads, head_dim, max_len, DEVICE)
    out = torch.full((batch, 1, heads * head_dim), float("nan"), dtype=dtype, device=DEVICE)
    K.decode_attention(q, cache_k, cache_v, lens, head_dim**-0.5, out, ws)
    ref = _reference_attention(q, cache_k, cache_v, lengths, head_dim**-0.5)
    return out, ref


def test_decode_attention_attends_to_exactly_each_rows_keys(K):
    chunk = K.ATTENTION_CHUNK
    # one key, chunk edges either side, several chunks, the whole cache
    lengths = [1, chunk - 1, chunk, chunk + 1, 2 * chunk + 7, 600]
    out, ref = _attention_case(K, lengths)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # Triton's CPU interpreter: many seconds without a GPU
@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 600), min_size=1, max_size=4))
def test_decode_attention_equals_softmax_attention_for_any_lengths(K, lengths):
    out, ref = _attention_case(K, lengths)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_a_rows_attention_does_not_depend_on_the_other_rows(K):
    gen = torch.Generator().manual_seed(0)
    cache_k = torch.randn(3, 2, 600, 16, generator=gen).to(DEVICE)
    cache_v = torch.randn(3, 2, 600, 16, generator=gen).to(DEVICE)
    q = torch.randn(2, 4, 1, 16, generator=gen).to(DEVICE)
    ws = K.AttentionWorkspace(2, 4, 16, 600, DEVICE)
    both = torch.empty(2, 1, 64, device=DEVICE)
    K.decode_attention(q, cache_k, cache_v, torch.tensor([300, 40], device=DEVICE), 0.25, both, ws)
    one = torch.empty(1, 1, 64, device=DEVICE)
    K.decode_attention(q[:1], cache_k, cache_v, torch.tensor([300], device=DEVICE), 0.25, one, ws)
    assert torch.equal(both[0], one[0])


@pytest.mark.gpu
def test_decode_attention_in_bfloat16_on_the_gpu(K):
    if not ON_GPU:
        pytest.skip("needs a CUDA GPU")
    out, ref = _attention_case(
        K, [1, 255, 256, 257, 599], dtype=torch.bfloat16, heads=32, kv_heads=8, head_dim=128
    )
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)
