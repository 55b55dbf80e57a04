"""Triton split-KV decode attention: one query per row against that row's cached keys."""

from __future__ import annotations

import triton
import triton.language as tl

from ._triton_common import torch_to_tl

__all__ = ["ATTENTION_CHUNK", "AttentionWorkspace", "decode_attention"]

#: Keys per split of :func:`decode_attention`: a split is the unit of parallel work.
ATTENTION_CHUNK = 256
_ATTENTION_BLOCK_N = 64


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
        DTYPE=torch_to_tl(out.dtype),
        num_warps=1,
    )
    return out
