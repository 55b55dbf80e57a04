"""What the Triton kernels share: exactly rounded multiply and add, and dtype mapping."""

from __future__ import annotations

import os

import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = ["NO_FMA", "add_rn", "mul_rn", "rms_rstd", "rms_scale", "torch_to_tl"]


# Triton lets the compiler fuse a multiply and an add into one FMA (one rounding instead of
# two). Where a kernel must round exactly as separate PyTorch kernels do, it multiplies and
# adds with explicitly rounded instructions. The CPU interpreter never fuses (nor knows them).
NO_FMA = os.environ.get("TRITON_INTERPRET", "") != "1"


@triton.jit
def mul_rn(a, b, NO_FMA: tl.constexpr):
    if NO_FMA:
        return libdevice.mul_rn(a, b)
    else:
        return a * b


@triton.jit
def add_rn(a, b, NO_FMA: tl.constexpr):
    if NO_FMA:
        return libdevice.add_rn(a, b)
    else:
        return a + b


def torch_to_tl(dtype):
    import torch

    return {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float32: tl.float32}[
        dtype
    ]


@triton.jit
def rms_rstd(x, inv_n, eps):
    """``rsqrt(mean(x**2) + eps)`` of one float32 row, reduced in a fixed order."""
    variance = tl.sum(x * x, axis=0) * inv_n
    return 1.0 / tl.sqrt(variance + eps)


@triton.jit
def rms_scale(x, rstd, w, X_DTYPE: tl.constexpr, OUT_DTYPE: tl.constexpr):
    """``weight * (x * rstd).to(x.dtype)``, rounded as the stock module rounds."""
    normed = (x * rstd).to(X_DTYPE)
    return (w.to(tl.float32) * normed.to(tl.float32)).to(OUT_DTYPE)
