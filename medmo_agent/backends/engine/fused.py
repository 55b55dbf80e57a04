"""Fused kernels installed into a loaded model, so that every path through it (``generate``,
the engine's prefill and decode steps, sampled requests) computes with the same kernels.

- The language model's RMSNorms (layer norms, per-head q/k norms, the final norm) become one
  Triton kernel each instead of seven PyTorch kernels.
- Each MLP's gate and up projections become one matrix product (one ``gate|up`` weight, the
  two modules' weights views into it) and its ``act(gate) * up`` one kernel.
- The language model's attention becomes :data:`FUSED_ATTENTION`: PyTorch's SDPA for prompts
  (exactly as ``"sdpa"``), and for one new token per row without padding the split
  decode-attention kernel that the engine replays in its CUDA graphs.

Installed per model (module instances and the text config), never by patching transformers'
classes: other models in the process keep the stock code.

The fused RMSNorm reduces in a different order from PyTorch's, and the merged projection
may round differently from two separate ones, so a fused model's outputs can differ from the
stock model's in the last bit of some activations (and a greedy answer can then take another
path on near-ties). The engine always matches ``generate`` on the same model, fused or not;
:func:`uninstall_fused_kernels` restores the stock modules.
"""

from __future__ import annotations

import types
from typing import Any

from .step import _language_model

__all__ = [
    "FUSED_ATTENTION",
    "fused_kernels_installed",
    "install_fused_kernels",
    "uninstall_fused_kernels",
]

_MARK = "_medmo_fused_kernels"
_GATE_UP = "_medmo_gate_up"
#: The attention implementation name the fused model's language model runs under.
FUSED_ATTENTION = "medmo_sdpa"


def fused_attention_forward(module, query, key, value, attention_mask, **kwargs):
    """``sdpa``, except one query per row over unpadded keys: the decode-attention kernel."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.shape[2] != 1 or attention_mask is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    import torch

    from .kernels import AttentionWorkspace, decode_attention

    batch, heads, _, head_dim = query.shape
    length = key.shape[2]
    lengths = torch.full((batch,), length, dtype=torch.long, device=query.device)
    workspace = AttentionWorkspace(batch, heads, head_dim, length, query.device)
    out = torch.empty((batch, 1, heads * head_dim), dtype=query.dtype, device=query.device)
    scale = kwargs.get("scaling") or head_dim**-0.5
    decode_attention(query, key, value, lengths, scale, out, workspace)
    return out.view(batch, 1, heads, head_dim), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(FUSED_ATTENTION, fused_attention_forward)
    AttentionMaskInterface.register(FUSED_ATTENTION, sdpa_mask)


def _fused_rms_norm_forward(self, hidden_states):
    from .kernels import rms_norm

    return rms_norm(hidden_states, self.weight, self.variance_epsilon)


def _fused_mlp_forward(self, x):
    import torch

    from .kernels import silu_mul

    merged = self.__dict__.get(_GATE_UP)
    if merged is None:
        return self.down_proj(silu_mul(self.gate_proj(x), self.up_proj(x)))
    gate_up = torch.nn.functional.linear(x, merged)
    half = merged.shape[0] // 2
    return self.down_proj(silu_mul(gate_up[..., :half], gate_up[..., half:]))


def _merge_gate_up(mlp: Any) -> None:
    """One ``gate|up`` weight, with ``gate_proj``/``up_proj`` weights as views into it: one
    matrix product instead of two, and no extra memory."""
    import torch

    gate, up = mlp.gate_proj, mlp.up_proj
    if gate.bias is not None or up.bias is not None or gate.weight.shape != up.weight.shape:
        return
    with torch.no_grad():
        merged = torch.cat([gate.weight.data, up.weight.data], dim=0)
        half = gate.weight.shape[0]
        grad = gate.weight.requires_grad
        gate.weight = torch.nn.Parameter(merged[:half], requires_grad=grad)
        up.weight = torch.nn.Parameter(merged[half:], requires_grad=grad)
    mlp.__dict__[_GATE_UP] = merged


def _split_gate_up(mlp: Any) -> None:
    import torch

    merged = mlp.__dict__.pop(_GATE_UP, None)
    if merged is None:
        return
    half = merged.shape[0] // 2
    grad = mlp.gate_proj.weight.requires_grad
    with torch.no_grad():
        mlp.gate_proj.weight = torch.nn.Parameter(merged[:half].clone(), requires_grad=grad)
        mlp.up_proj.weight = torch.nn.Parameter(merged[half:].clone(), requires_grad=grad)


def _norms(lm: Any) -> list[Any]:
    norms = [lm.norm]
    for layer in lm.layers:
        attn = layer.self_attn
        norms += [layer.input_layernorm, layer.post_attention_layernorm, attn.q_norm, attn.k_norm]
    return norms


def _mlp_is_silu(mlp: Any) -> bool:
    act = getattr(mlp, "act_fn", None)
    return type(act).__name__ in ("SiLU", "SiLUActivation") and all(
        hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj")
    )


def install_fused_kernels(model: Any) -> int:
    """Route the language model's RMSNorms and SiLU MLPs through the fused kernels.

    Returns the number of modules changed (0 when already installed). Idempotent.
    """
    if getattr(model, _MARK, False):
        return 0
    lm = _language_model(model)
    changed = 0
    text_config = lm.config
    if text_config._attn_implementation == "sdpa":
        _register_attention()
        text_config._attn_implementation = FUSED_ATTENTION
    for norm in _norms(lm):
        if hasattr(norm, "variance_epsilon") and hasattr(norm, "weight"):
            norm.forward = types.MethodType(_fused_rms_norm_forward, norm)
            changed += 1
    for layer in lm.layers:
        if _mlp_is_silu(layer.mlp):
            _merge_gate_up(layer.mlp)
            layer.mlp.forward = types.MethodType(_fused_mlp_forward, layer.mlp)
            changed += 1
    setattr(model, _MARK, True)
    return changed


def uninstall_fused_kernels(model: Any) -> None:
    """Give the modules their stock ``forward`` back."""
    if not getattr(model, _MARK, False):
        return
    lm = _language_model(model)
    for module in [*_norms(lm), *(layer.mlp for layer in lm.layers)]:
        module.__dict__.pop("forward", None)
    for layer in lm.layers:
        _split_gate_up(layer.mlp)
    if lm.config._attn_implementation == FUSED_ATTENTION:
        lm.config._attn_implementation = "sdpa"
    setattr(model, _MARK, False)


def fused_kernels_installed(model: Any) -> bool:
    """Whether :func:`install_fused_kernels` is in effect on ``model``."""
    return bool(getattr(model, _MARK, False))
