"""Triton kernels for rotary embeddings: the text attention's q/k norms + rotary (+ KV-cache
write), and the vision tower's float32 rotary embedding."""

from __future__ import annotations

import triton
import triton.language as tl

from ._triton_common import NO_FMA, add_rn, mul_rn, rms_rstd, rms_scale, torch_to_tl

__all__ = ["qk_norm_rope", "vision_rope"]

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
        rstd = rms_rstd(x, inv_d, eps)
        y = rms_scale(x, rstd, tl.load(w_ptr + d), DTYPE, DTYPE).to(tl.float32)
        # rotate_half: the partner of element i is i + HALF (mod HEAD_DIM), negated in the
        # first half; the partner's normalised value is computed from the same rstd.
        partner = (d + HALF) % HEAD_DIM
        xp = tl.load(src + partner).to(tl.float32)
        yp = rms_scale(xp, rstd, tl.load(w_ptr + partner), DTYPE, DTYPE).to(tl.float32)
        rot = tl.where(d < HALF, -yp, yp)
        c = tl.load(cos_ptr + t * stride_cos + d).to(tl.float32)
        sn = tl.load(sin_ptr + t * stride_cos + d).to(tl.float32)
        # Stock rounding: each product rounded to the dtype, then their sum.
        p1 = mul_rn(y, c, NO_FMA).to(DTYPE).to(tl.float32)
        p2 = mul_rn(rot, sn, NO_FMA).to(DTYPE).to(tl.float32)
        out = add_rn(p1, p2, NO_FMA).to(DTYPE)
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
        DTYPE=torch_to_tl(qkv.dtype),
        CACHE=cache is not None,
        NO_FMA=NO_FMA,
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
        lo = add_rn(mul_rn(f1, c1, NO_FMA), mul_rn(-f2, s1, NO_FMA), NO_FMA)
        hi = add_rn(mul_rn(f2, c2, NO_FMA), mul_rn(f1, s2, NO_FMA), NO_FMA)
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
        DTYPE=torch_to_tl(qkv.dtype),
        NO_FMA=NO_FMA,
        num_warps=4,
    )
    return out[0].unsqueeze(0), out[1].unsqueeze(0), out[2].unsqueeze(0)
