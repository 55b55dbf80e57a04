"""Triton kernels for the decode step: fewer, larger GPU kernels where the model's own
modules launch many small ones.

- :func:`rms_norm`: one kernel for what ``Qwen3VLTextRMSNorm`` does in seven; each row is
  reduced by one program in a fixed order, so a row's result never depends on its batch.
  :func:`add_rms_norm` does the residual add before it in the same pass, bit for bit.
- :func:`silu_mul`: ``act(gate) * up`` of the MLP in one pass.
- :func:`qk_norm_rope`: the attention's q/k RMSNorms and rotary embedding over one merged
  ``q|k|v`` projection (and, in a decode step, the KV-cache write), with exactly the stock
  arithmetic (``q * cos + rotate_half(q) * sin``, each product and the sum rounded to the
  model's dtype as PyTorch rounds them).
- :func:`vision_rope`: the vision tower's float32 rotary embedding, bit-identical to
  ``apply_rotary_pos_emb_vision``, in the layout attention reads.
- :func:`decode_attention`: one query per row against that row's cached keys, the keys split
  into fixed chunks reduced in parallel and then combined in order; row lengths come from a
  device tensor, so the call can be captured in a CUDA graph.

Imported only on the engine's CUDA path (Triton needs a GPU, or ``TRITON_INTERPRET=1`` to run
on the CPU, which the tests use).
"""

from __future__ import annotations

import os

import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = [
    "ATTENTION_CHUNK",
    "AttentionWorkspace",
    "add_rms_norm",
    "decode_attention",
    "qk_norm_rope",
    "rms_norm",
    "silu_mul",
    "vision_rope",
]

#: Keys per split of :func:`decode_attention`: a split is the unit of parallel work.
ATTENTION_CHUNK = 256
_ATTENTION_BLOCK_N = 64


# Triton lets the compiler fuse a multiply and an add into one FMA (one rounding instead of
# two). Where a kernel must round exactly as separate PyTorch kernels do, it multiplies and
# adds with explicitly rounded instructions. The CPU interpreter never fuses (nor knows them).
_NO_FMA = os.environ.get("TRITON_INTERPRET", "") != "1"


@triton.jit
def _mul_rn(a, b, NO_FMA: tl.constexpr):
    if NO_FMA:
        return libdevice.mul_rn(a, b)
    else:
        return a * b


@triton.jit
def _add_rn(a, b, NO_FMA: tl.constexpr):
    if NO_FMA:
        return libdevice.add_rn(a, b)
    else:
        return a + b


def _torch_to_tl(dtype):
    import torch

    return {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float32: tl.float32}[
        dtype
    ]


# ---- RMSNorm ---------------------------------------------------------------------------


@triton.jit
def _rms_rstd(x, inv_n, eps):
    """``rsqrt(mean(x**2) + eps)`` of one float32 row, reduced in a fixed order."""
    variance = tl.sum(x * x, axis=0) * inv_n
    return 1.0 / tl.sqrt(variance + eps)


@triton.jit
def _rms_scale(x, rstd, w, X_DTYPE: tl.constexpr, OUT_DTYPE: tl.constexpr):
    """``weight * (x * rstd).to(x.dtype)``, rounded as the stock module rounds."""
    normed = (x * rstd).to(X_DTYPE)
    return (w.to(tl.float32) * normed.to(tl.float32)).to(OUT_DTYPE)


@triton.jit
def _rms_row(x, w_ptr, cols, mask, inv_n, eps, X_DTYPE: tl.constexpr, OUT_DTYPE: tl.constexpr):
    """One row's RMSNorm from its float32 values. Shared by both norm kernels, so a norm
    fused with the residual add reduces exactly as the plain norm does."""
    rstd = _rms_rstd(x, inv_n, eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    return _rms_scale(x, rstd, w, X_DTYPE, OUT_DTYPE)


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    stride_x,
    stride_out,
    n_cols,
    inv_n,
    eps,
    X_DTYPE: tl.constexpr,
    OUT_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    out = _rms_row(x, w_ptr, cols, mask, inv_n, eps, X_DTYPE, OUT_DTYPE)
    tl.store(out_ptr + row * stride_out + cols, out, mask=mask)


@triton.jit
def _add_rms_norm_kernel(
    a_ptr,
    b_ptr,
    w_ptr,
    sum_ptr,
    out_ptr,
    stride_a,
    stride_b,
    stride_sum,
    stride_out,
    n_cols,
    inv_n,
    eps,
    X_DTYPE: tl.constexpr,
    OUT_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
    NO_FMA: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    a = tl.load(a_ptr + row * stride_a + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + row * stride_b + cols, mask=mask, other=0.0).to(tl.float32)
    total = _add_rn(a, b, NO_FMA).to(X_DTYPE)  # the residual add, rounded as PyTorch's
    tl.store(sum_ptr + row * stride_sum + cols, total, mask=mask)
    x = total.to(tl.float32)
    out = _rms_row(x, w_ptr, cols, mask, inv_n, eps, X_DTYPE, OUT_DTYPE)
    tl.store(out_ptr + row * stride_out + cols, out, mask=mask)


def _norm_launch(n: int) -> tuple[int, int]:
    """Block and warps of a norm over rows of ``n``: one choice for both norm kernels."""
    block = triton.next_power_of_2(n)
    return block, min(16, max(1, block // 256))


def rms_norm(x, weight, eps: float):
    """``weight * (x * rsqrt(mean(x**2) + eps)).to(x.dtype)`` over the last dimension, with
    the mean and scaling in float32 as ``Qwen3VLTextRMSNorm`` computes them."""
    import torch

    n = x.shape[-1]
    rows = x.reshape(-1, n)
    out_dtype = torch.promote_types(weight.dtype, x.dtype)
    out = torch.empty(rows.shape, dtype=out_dtype, device=x.device)
    block, warps = _norm_launch(n)
    _rms_norm_kernel[(rows.shape[0],)](
        rows,
        weight,
        out,
        rows.stride(0),
        out.stride(0),
        n,
        1.0 / n,
        eps,
        X_DTYPE=_torch_to_tl(x.dtype),
        OUT_DTYPE=_torch_to_tl(out_dtype),
        BLOCK=block,
        num_warps=warps,
    )
    return out.view(x.shape)


def add_rms_norm(residual, delta, weight, eps: float):
    """``total = residual + delta`` and :func:`rms_norm` of it, in one pass: returns
    ``(total, normed)``, each bit-identical to the two separate steps."""
    import torch

    n = residual.shape[-1]
    a, b = residual.reshape(-1, n), delta.reshape(-1, n)
    total = torch.empty(a.shape, dtype=residual.dtype, device=residual.device)
    out_dtype = torch.promote_types(weight.dtype, residual.dtype)
    out = torch.empty(a.shape, dtype=out_dtype, device=residual.device)
    block, warps = _norm_launch(n)
    _add_rms_norm_kernel[(a.shape[0],)](
        a,
        b,
        weight,
        total,
        out,
        a.stride(0),
        b.stride(0),
        total.stride(0),
        out.stride(0),
        n,
        1.0 / n,
        eps,
        X_DTYPE=_torch_to_tl(residual.dtype),
        OUT_DTYPE=_torch_to_tl(out_dtype),
        BLOCK=block,
        NO_FMA=_NO_FMA,
        num_warps=warps,
    )
    return total.view(residual.shape), out.view(residual.shape)


# ---- SiLU(gate) * up ---------------------------------------------------------------------


@triton.jit
def _silu_mul_kernel(
    g_ptr, u_ptr, out_ptr, n_cols, stride_g, stride_u, DTYPE: tl.constexpr, BLOCK: tl.constexpr
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    g = tl.load(g_ptr + row * stride_g + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(u_ptr + row * stride_u + cols, mask=mask, other=0.0)
    act = (g / (1.0 + tl.exp(-g))).to(DTYPE)
    out = (act.to(tl.float32) * u.to(tl.float32)).to(DTYPE)
    tl.store(out_ptr + row * n_cols + cols, out, mask=mask)


def silu_mul(gate, up):
    """``silu(gate) * up`` (both the same shape and dtype), the activation rounded to the
    dtype before the product as the stock MLP does. ``gate`` and ``up`` may be the two
    halves of one ``gate|up`` projection (rows with a stride, last dimension contiguous)."""
    import torch

    n = gate.shape[-1]
    g, u = gate.reshape(-1, n), up.reshape(-1, n)
    if g.stride(-1) != 1 or u.stride(-1) != 1:
        g, u = g.contiguous(), u.contiguous()
    out = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
    block = 1024
    _silu_mul_kernel[(g.shape[0], triton.cdiv(n, block))](
        g,
        u,
        out,
        n,
        g.stride(0),
        u.stride(0),
        DTYPE=_torch_to_tl(gate.dtype),
        BLOCK=block,
        num_warps=4,
    )
    return out


# ---- q/k norms + rotary embedding (+ KV-cache write) ---------------------------------------


@triton.jit
def _qk_norm_rope_kernel(
    qkv_ptr,
    qw_ptr,
    kw_ptr,
    cos_ptr,
    sin_ptr,
    q_out_ptr,
    k_out_ptr,
    v_out_ptr,
    write_ptr,
    stride_t,
    stride_cos,
    stride_qob,
    stride_qos,
    stride_qoh,
    stride_kob,
    stride_kos,
    stride_koh,
    seq,
    inv_d,
    q_eps,
    k_eps,
    HEADS: tl.constexpr,
    KV_HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    DTYPE: tl.constexpr,
    CACHE: tl.constexpr,
    NO_FMA: tl.constexpr,
):
    # One program per (token, head) of the merged q|k|v projection: q and k heads are
    # normalised and rotated, v heads copied.
    t = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    b = t // seq
    s = t % seq
    HALF: tl.constexpr = HEAD_DIM // 2
    d = tl.arange(0, HEAD_DIM)
    src = qkv_ptr + t * stride_t + head * HEAD_DIM
    # with the cache, the row's slot at its write position; else the token's own position
    pos = tl.load(write_ptr + b) if CACHE else s
    if head >= HEADS + KV_HEADS:
        kv_head = head - HEADS - KV_HEADS
        dst = v_out_ptr + b * stride_kob + pos * stride_kos + kv_head * stride_koh
        tl.store(dst + d, tl.load(src + d))
    else:
        if head < HEADS:
            w_ptr = qw_ptr
            eps = q_eps
        else:
            w_ptr = kw_ptr
            eps = k_eps
        x = tl.load(src + d).to(tl.float32)
        rstd = _rms_rstd(x, inv_d, eps)
        y = _rms_scale(x, rstd, tl.load(w_ptr + d), DTYPE, DTYPE).to(tl.float32)
        # rotate_half: the partner of element i is i + HALF (mod HEAD_DIM), negated in the
        # first half; the partner's normalised value is computed from the same rstd.
        partner = (d + HALF) % HEAD_DIM
        xp = tl.load(src + partner).to(tl.float32)
        yp = _rms_scale(xp, rstd, tl.load(w_ptr + partner), DTYPE, DTYPE).to(tl.float32)
        rot = tl.where(d < HALF, -yp, yp)
        c = tl.load(cos_ptr + t * stride_cos + d).to(tl.float32)
        sn = tl.load(sin_ptr + t * stride_cos + d).to(tl.float32)
        # Stock rounding: each product rounded to the dtype, then their sum.
        p1 = _mul_rn(y, c, NO_FMA).to(DTYPE).to(tl.float32)
        p2 = _mul_rn(rot, sn, NO_FMA).to(DTYPE).to(tl.float32)
        out = _add_rn(p1, p2, NO_FMA).to(DTYPE)
        if head < HEADS:
            dst = q_out_ptr + b * stride_qob + s * stride_qos + head * stride_qoh
        else:
            dst = k_out_ptr + b * stride_kob + pos * stride_kos + (head - HEADS) * stride_koh
        tl.store(dst + d, out)


def qk_norm_rope(qkv, q_norm, k_norm, cos, sin, heads: int, kv_heads: int, cache=None):
    """The attention's q/k RMSNorms and rotary embedding over one merged ``q|k|v`` projection,
    in one kernel.

    Computes what ``q_norm``/``k_norm`` (:func:`rms_norm`'s arithmetic) followed by
    ``apply_rotary_pos_emb`` compute, each product and sum rounded as PyTorch rounds them.

    Args:
        qkv: ``(batch, seq, (heads + 2 * kv_heads) * head_dim)``: queries, keys, values.
        q_norm, k_norm: The attention's two RMSNorm modules (``weight``, ``variance_epsilon``).
        cos, sin: Rotary tables ``(batch, seq, head_dim)``.
        heads, kv_heads: Query and key/value head counts.
        cache: ``None``, or ``(cache_k, cache_v, write_idx)`` for one new token per row: row
            ``b``'s key and value go to slot ``b`` of the layer's cache
            ``(slots, kv_heads, max_len, head_dim)`` at position ``write_idx[b]``.

    Returns:
        Without ``cache``: ``(q, k, v)`` as ``(batch, heads, seq, head_dim)`` views of
        ``(batch, seq, heads, head_dim)`` tensors, the layout the stock attention passes on.
        With it: ``q`` alone, ``(batch, heads, 1, head_dim)``.
    """
    import torch

    batch, seq, width = qkv.shape
    head_dim = width // (heads + 2 * kv_heads)
    if head_dim & (head_dim - 1) or head_dim < 2:
        raise ValueError(f"qk_norm_rope needs a power-of-two head size, not {head_dim}")
    rows = qkv.reshape(batch * seq, width)
    if rows.stride(1) != 1:
        rows = rows.contiguous()
    cos2, sin2 = cos.reshape(batch * seq, head_dim), sin.reshape(batch * seq, head_dim)
    if cos2.stride(1) != 1 or sin2.stride() != cos2.stride():
        cos2, sin2 = cos2.contiguous(), sin2.contiguous()
    q_out = torch.empty((batch, seq, heads, head_dim), dtype=qkv.dtype, device=qkv.device)
    if cache is None:
        k_out = torch.empty((batch, seq, kv_heads, head_dim), dtype=qkv.dtype, device=qkv.device)
        v_out = torch.empty_like(k_out)
        write_idx = k_out  # unused
        k_strides = (k_out.stride(0), k_out.stride(1), k_out.stride(2))
    else:
        k_out, v_out, write_idx = cache
        if seq != 1 or k_out.stride() != v_out.stride():
            raise ValueError("the cache write takes one token per row, keys and values alike")
        k_strides = (k_out.stride(0), k_out.stride(2), k_out.stride(1))
    _qk_norm_rope_kernel[(batch * seq, heads + 2 * kv_heads)](
        rows,
        q_norm.weight,
        k_norm.weight,
        cos2,
        sin2,
        q_out,
        k_out,
        v_out,
        write_idx,
        rows.stride(0),
        cos2.stride(0),
        q_out.stride(0),
        q_out.stride(1),
        q_out.stride(2),
        *k_strides,
        seq,
        1.0 / head_dim,
        q_norm.variance_epsilon,
        k_norm.variance_epsilon,
        HEADS=heads,
        KV_HEADS=kv_heads,
        HEAD_DIM=head_dim,
        DTYPE=_torch_to_tl(qkv.dtype),
        CACHE=cache is not None,
        NO_FMA=_NO_FMA,
        num_warps=1,
    )
    if cache is not None:
        return q_out.transpose(1, 2)
    return q_out.transpose(1, 2), k_out.transpose(1, 2), v_out.transpose(1, 2)


# ---- the vision tower's rotary embedding ----------------------------------------------------


@triton.jit
def _vision_rope_kernel(
    qkv_ptr,
    cos_ptr,
    sin_ptr,
    out_ptr,
    stride_t,
    stride_cos,
    stride_ow,
    stride_oh,
    stride_ot,
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    DTYPE: tl.constexpr,
    NO_FMA: tl.constexpr,
):
    # One program per (patch, q|k|v): every head of it; q and k rotated in float32, v copied.
    t = tl.program_id(0).to(tl.int64)
    which = tl.program_id(1)
    HALF: tl.constexpr = HEAD_DIM // 2
    h = tl.arange(0, BLOCK_H)[:, None]
    d = tl.arange(0, BLOCK_HALF)[None, :]
    mask = (h < HEADS) & (d < HALF)
    src = qkv_ptr + t * stride_t + which * HEADS * HEAD_DIM + h * HEAD_DIM + d
    dst = out_ptr + which * stride_ow + h * stride_oh + t * stride_ot + d
    x1 = tl.load(src, mask=mask, other=0.0)
    x2 = tl.load(src + HALF, mask=mask, other=0.0)
    if which == 2:
        tl.store(dst, x1, mask=mask)
        tl.store(dst + HALF, x2, mask=mask)
    else:
        half = d < HALF
        c1 = tl.load(cos_ptr + t * stride_cos + d, mask=half, other=0.0).to(tl.float32)
        c2 = tl.load(cos_ptr + t * stride_cos + HALF + d, mask=half, other=0.0).to(tl.float32)
        s1 = tl.load(sin_ptr + t * stride_cos + d, mask=half, other=0.0).to(tl.float32)
        s2 = tl.load(sin_ptr + t * stride_cos + HALF + d, mask=half, other=0.0).to(tl.float32)
        f1 = x1.to(tl.float32)
        f2 = x2.to(tl.float32)
        # apply_rotary_pos_emb_vision: float32 products and sum, rounded to the dtype once.
        lo = _add_rn(_mul_rn(f1, c1, NO_FMA), _mul_rn(-f2, s1, NO_FMA), NO_FMA)
        hi = _add_rn(_mul_rn(f2, c2, NO_FMA), _mul_rn(f1, s2, NO_FMA), NO_FMA)
        tl.store(dst, lo.to(DTYPE), mask=mask)
        tl.store(dst + HALF, hi.to(DTYPE), mask=mask)


def vision_rope(qkv, cos, sin, heads: int):
    """The vision tower's rotary embedding of queries and keys, in one kernel.

    Bit-identical to ``apply_rotary_pos_emb_vision`` (float32 arithmetic, the result rounded
    to the input's dtype).

    Args:
        qkv: ``(patches, 3 * heads * head_dim)``: the attention's ``qkv`` projection.
        cos, sin: ``(patches, head_dim)`` float32 rotary tables.
        heads: Attention heads.

    Returns:
        ``(q, k, v)``, each ``(1, heads, patches, head_dim)`` and contiguous: the layout
        attention reads.
    """
    import torch

    patches, width = qkv.shape
    head_dim = width // (3 * heads)
    if qkv.stride(1) != 1:
        qkv = qkv.contiguous()
    if cos.stride(1) != 1 or sin.stride() != cos.stride():
        cos, sin = cos.contiguous(), sin.contiguous()
    out = torch.empty((3, heads, patches, head_dim), dtype=qkv.dtype, device=qkv.device)
    _vision_rope_kernel[(patches, 3)](
        qkv,
        cos,
        sin,
        out,
        qkv.stride(0),
        cos.stride(0),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        HEADS=heads,
        HEAD_DIM=head_dim,
        BLOCK_H=triton.next_power_of_2(heads),
        BLOCK_HALF=triton.next_power_of_2(head_dim // 2),
        DTYPE=_torch_to_tl(qkv.dtype),
        NO_FMA=_NO_FMA,
        num_warps=4,
    )
    return out[0].unsqueeze(0), out[1].unsqueeze(0), out[2].unsqueeze(0)


# ---- decode attention ---------------------------------------------------------------------


@triton.jit
def _attention_split_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    len_ptr,
    part_o_ptr,
    part_m_ptr,
    part_l_ptr,
    stride_qb,
    stride_qh,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_ob,
    stride_oh,
    stride_os,
    stride_mb,
    stride_mh,
    scale,
    GROUP: tl.constexpr,
    BLOCK_G: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    CHUNK: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PROGRAMS: tl.constexpr,
    IEEE: tl.constexpr,
):
    # Program p reduces chunks p, p + PROGRAMS, ...: the chunks (and so the result) are the
    # same whatever the grid, and the grid need not grow with the cache's length.
    b = tl.program_id(0).to(tl.int64)
    kv_head = tl.program_id(1)
    first = tl.program_id(2)
    length = tl.load(len_ptr + b)
    chunks = (length + CHUNK - 1) // CHUNK
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, HEAD_DIM)
    heads = kv_head * GROUP + g
    g_mask = g < GROUP
    q = tl.load(
        q_ptr + b * stride_qb + heads[:, None] * stride_qh + d[None, :],
        mask=g_mask[:, None],
        other=0.0,
    )
    kv_base = b * stride_kb + kv_head * stride_kh
    for split in range(first, chunks, PROGRAMS):
        start = split * CHUNK
        end = tl.minimum(start + CHUNK, length)
        m = tl.full((BLOCK_G,), float("-inf"), tl.float32)
        l_sum = tl.zeros((BLOCK_G,), tl.float32)
        acc = tl.zeros((BLOCK_G, HEAD_DIM), tl.float32)
        for n0 in range(start, end, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            n_mask = n < end
            offs = kv_base + n[:, None] * stride_kt + d[None, :]
            k = tl.load(k_ptr + offs, mask=n_mask[:, None], other=0.0)
            if IEEE:  # float32 caches: full-precision products, not TF32
                s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
            else:
                s = tl.dot(q, tl.trans(k)) * scale
            s = tl.where(n_mask[None, :], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, axis=1))
            alpha = tl.exp(m - m_new)
            p = tl.exp(s - m_new[:, None])
            l_sum = l_sum * alpha + tl.sum(p, axis=1)
            v = tl.load(v_ptr + offs, mask=n_mask[:, None], other=0.0)
            if IEEE:
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
            else:
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m = m_new
        part = b * stride_ob + heads[:, None] * stride_oh + split * stride_os + d[None, :]
        tl.store(part_o_ptr + part, acc, mask=g_mask[:, None])
        stat = b * stride_mb + heads * stride_mh + split
        tl.store(part_m_ptr + stat, m, mask=g_mask)
        tl.store(part_l_ptr + stat, l_sum, mask=g_mask)


@triton.jit
def _attention_combine_kernel(
    part_o_ptr,
    part_m_ptr,
    part_l_ptr,
    len_ptr,
    out_ptr,
    stride_ob,
    stride_oh,
    stride_os,
    stride_mb,
    stride_mh,
    stride_outb,
    HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    CHUNK: tl.constexpr,
    DTYPE: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    length = tl.load(len_ptr + b)
    splits = (length + CHUNK - 1) // CHUNK
    d = tl.arange(0, HEAD_DIM)
    stat = b * stride_mb + head * stride_mh
    m_max = float("-inf")
    for s in range(0, splits):
        m_max = tl.maximum(m_max, tl.load(part_m_ptr + stat + s))
    total = 0.0
    acc = tl.zeros((HEAD_DIM,), tl.float32)
    for s in range(0, splits):
        w = tl.exp(tl.load(part_m_ptr + stat + s) - m_max)
        total += tl.load(part_l_ptr + stat + s) * w
        o = tl.load(part_o_ptr + b * stride_ob + head * stride_oh + s * stride_os + d)
        acc += o * w
    out = acc / total
    tl.store(out_ptr + b * stride_outb + head * HEAD_DIM + d, out.to(DTYPE))


class AttentionWorkspace:
    """Partial results of :func:`decode_attention` for up to ``batch`` rows of a cache of
    ``max_len`` positions (allocated once, so the call can be captured in a CUDA graph)."""

    def __init__(self, batch: int, heads: int, head_dim: int, max_len: int, device):
        import torch

        splits = triton.cdiv(max_len, ATTENTION_CHUNK)
        self.splits = splits
        self.o = torch.empty((batch, heads, splits, head_dim), dtype=torch.float32, device=device)
        self.m = torch.empty((batch, heads, splits), dtype=torch.float32, device=device)
        self.l_sum = torch.empty((batch, heads, splits), dtype=torch.float32, device=device)


def decode_attention(q, cache_k, cache_v, lengths, scale: float, out, workspace):
    """Attention of one query per row over the first ``lengths[b]`` cached keys of slot b.

    Args:
        q: ``(batch, heads, 1, head_dim)`` rotated queries (contiguous).
        cache_k, cache_v: One layer's cache ``(slots, kv_heads, max_len, head_dim)``.
        lengths: ``(batch,)`` int32/int64 device tensor, each at least 1.
        scale: Softmax scale (``head_dim ** -0.5``).
        out: ``(batch, 1, heads * head_dim)`` output buffer (the o_proj input layout).
        workspace: An :class:`AttentionWorkspace` at least this large.
    """
    import torch

    batch, heads, _, head_dim = q.shape
    kv_heads = cache_k.shape[1]
    group = heads // kv_heads
    ws = workspace
    # Enough programs to fill the GPU at any batch, without one per possible chunk. It depends
    # on the batch and head counts only, so one request compiles to the same kernel whether
    # its keys sit in the engine's cache or in generate's.
    programs = max(1, min(16, -(-1056 // (batch * kv_heads))))
    _attention_split_kernel[(batch, kv_heads, programs)](
        q,
        cache_k,
        cache_v,
        lengths,
        ws.o,
        ws.m,
        ws.l_sum,
        q.stride(0),
        q.stride(1),
        cache_k.stride(0),
        cache_k.stride(1),
        cache_k.stride(2),
        ws.o.stride(0),
        ws.o.stride(1),
        ws.o.stride(2),
        ws.m.stride(0),
        ws.m.stride(1),
        scale,
        GROUP=group,
        BLOCK_G=max(16, triton.next_power_of_2(group)),
        HEAD_DIM=head_dim,
        CHUNK=ATTENTION_CHUNK,
        BLOCK_N=_ATTENTION_BLOCK_N,
        PROGRAMS=programs,
        IEEE=q.dtype == torch.float32,
        num_warps=4,
    )
    _attention_combine_kernel[(batch, heads)](
        ws.o,
        ws.m,
        ws.l_sum,
        lengths,
        out,
        ws.o.stride(0),
        ws.o.stride(1),
        ws.o.stride(2),
        ws.m.stride(0),
        ws.m.stride(1),
        out.stride(0),
        HEADS=heads,
        HEAD_DIM=head_dim,
        CHUNK=ATTENTION_CHUNK,
        DTYPE=_torch_to_tl(out.dtype),
        num_warps=1,
    )
    return out
