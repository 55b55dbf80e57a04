"""Triton kernels for RMSNorm (alone, or after the residual add) and the MLP's SiLU(gate)*up."""

from __future__ import annotations

import triton
import triton.language as tl

from ._triton_common import NO_FMA, add_rn, rms_rstd, rms_scale, torch_to_tl

__all__ = ["add_rms_norm", "rms_norm", "silu_mul"]

# ---- RMSNorm ---------------------------------------------------------------------------


@triton.jit
def _rms_row(x, w_ptr, cols, mask, inv_n, eps, X_DTYPE: tl.constexpr, OUT_DTYPE: tl.constexpr):
    """One row's RMSNorm from its float32 values. Shared by both norm kernels, so a norm
    fused with the residual add reduces exactly as the plain norm does."""
    rstd = rms_rstd(x, inv_n, eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    return rms_scale(x, rstd, w, X_DTYPE, OUT_DTYPE)


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
    total = add_rn(a, b, NO_FMA).to(X_DTYPE)  # the residual add, rounded as PyTorch's
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
        X_DTYPE=torch_to_tl(x.dtype),
        OUT_DTYPE=torch_to_tl(out_dtype),
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
        X_DTYPE=torch_to_tl(residual.dtype),
        OUT_DTYPE=torch_to_tl(out_dtype),
        BLOCK=block,
        NO_FMA=NO_FMA,
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
        DTYPE=torch_to_tl(gate.dtype),
        BLOCK=block,
        num_warps=4,
    )
    return out
