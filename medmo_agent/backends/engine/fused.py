"""Fused kernels installed into a loaded model, so that every path through it (``generate``,
the engine's prefill and decode steps, sampled requests) computes with the same kernels.

- The language model's RMSNorms (layer norms, the final norm) become one Triton kernel each
  instead of seven PyTorch kernels; the residual add before a layer's second norm is done in
  that norm's kernel.
- Each attention's q, k and v projections become one matrix product (one ``q|k|v`` weight,
  the three modules' weights views into it), and its q/k norms plus the rotary embedding one
  kernel (:func:`.kernels.qk_norm_rope`). The engine's decode step runs the same two.
- Each MLP's gate and up projections become one matrix product (one ``gate|up`` weight) and
  its ``act(gate) * up`` one kernel.
- The language model's attention becomes :data:`FUSED_ATTENTION`: PyTorch's SDPA for prompts
  (exactly as ``"sdpa"``), and for one new token per row without padding the split
  decode-attention kernel that the engine replays in its CUDA graphs.
- The vision tower's attention rotates queries and keys in one kernel
  (:func:`.kernels.vision_rope`, bit-identical to the stock float32 arithmetic), learns each
  image's patch count once per forward instead of synchronising with the GPU in every block,
  and runs cuDNN's attention kernel where PyTorch has it (flash attention otherwise).

Installed per model (module instances and the text config), never by patching transformers'
classes: other models in the process keep the stock code.

The fused RMSNorm reduces in a different order from PyTorch's, the merged projections may
round differently from separate ones, and cuDNN's attention from flash attention, so a fused
model's outputs can differ from the stock model's in the last bit of some activations (and a
greedy answer can then take another path on near-ties). The engine always matches
``generate`` on the same model, fused or not; :func:`uninstall_fused_kernels` restores the
stock modules.
"""

from __future__ import annotations

import contextvars
import inspect
import types
from typing import Any

__all__ = [
    "FUSED_ATTENTION",
    "fused_kernels_installed",
    "install_fused_kernels",
    "qkv_projection",
    "uninstall_fused_kernels",
]

_MARK = "_medmo_fused_kernels"
_GATE_UP = "_medmo_gate_up"
_QKV = "_medmo_qkv"
#: The attention implementation name the fused model's language model runs under.
FUSED_ATTENTION = "medmo_sdpa"


def _language_model(model: Any) -> Any:
    """The text decoder of a Qwen3-VL model (or the model itself when it is one)."""
    inner = getattr(model, "model", model)
    return getattr(inner, "language_model", inner)


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


def _merge_linears(owner: Any, names: tuple[str, ...], key: str) -> bool:
    """One weight for several bias-free projections of the same input, the modules' weights
    views into it: one matrix product instead of several, and no extra memory."""
    import torch

    linears = [getattr(owner, name) for name in names]
    if any(lin.bias is not None for lin in linears):
        return False
    if len({lin.weight.shape[1] for lin in linears}) != 1:
        return False
    with torch.no_grad():
        merged = torch.cat([lin.weight.data for lin in linears], dim=0)
        start = 0
        for lin in linears:
            rows = lin.weight.shape[0]
            grad = lin.weight.requires_grad
            lin.weight = torch.nn.Parameter(merged[start : start + rows], requires_grad=grad)
            start += rows
    owner.__dict__[key] = merged
    return True


def _split_linears(owner: Any, names: tuple[str, ...], key: str) -> None:
    """Give each projection a weight of its own again."""
    import torch

    if owner.__dict__.pop(key, None) is None:
        return
    with torch.no_grad():
        for name in names:
            lin = getattr(owner, name)
            grad = lin.weight.requires_grad
            lin.weight = torch.nn.Parameter(lin.weight.data.clone(), requires_grad=grad)


_GATE_UP_NAMES = ("gate_proj", "up_proj")
_QKV_NAMES = ("q_proj", "k_proj", "v_proj")


def _merge_gate_up(mlp: Any) -> None:
    gate, up = mlp.gate_proj, mlp.up_proj
    if gate.weight.shape == up.weight.shape:
        _merge_linears(mlp, _GATE_UP_NAMES, _GATE_UP)


def qkv_projection(attn: Any, x: Any) -> Any:
    """The attention's ``q|k|v`` projection of ``x``: one product over the merged weight (or
    the three products, concatenated, on a model without it)."""
    import torch

    merged = attn.__dict__.get(_QKV)
    if merged is not None:
        return torch.nn.functional.linear(x, merged)
    return torch.cat([attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)], dim=-1)


# ---- the language model's attention and decoder layers -----------------------------------

_UPDATE_TAKES_CACHE_KWARGS: dict[type, bool] = {}


def _cache_update(cache: Any, key: Any, value: Any, layer_idx: int, cos, sin, kwargs) -> Any:
    """``cache.update`` as the installed transformers calls it (its signature changed in 5.x)."""
    kind = type(cache)
    takes = _UPDATE_TAKES_CACHE_KWARGS.get(kind)
    if takes is None:
        takes = "cache_kwargs" in inspect.signature(kind.update).parameters
        _UPDATE_TAKES_CACHE_KWARGS[kind] = takes
    if takes:
        extra = {"sin": sin, "cos": cos, "cache_position": kwargs.get("cache_position")}
        return cache.update(key, value, layer_idx, extra)
    return cache.update(key, value, layer_idx, kwargs=kwargs)


def _fused_text_attention_forward(
    self, hidden_states, position_embeddings, attention_mask=None, cache=None, **kwargs
):
    """The stock attention with one ``q|k|v`` product and one norm + rotary kernel."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from .kernels import qk_norm_rope

    if cache is None:
        cache = kwargs.pop("past_key_values", None)
    input_shape = hidden_states.shape[:-1]
    cos, sin = position_embeddings
    qkv = qkv_projection(self, hidden_states)
    heads = self.config.num_attention_heads
    query, key, value = qk_norm_rope(
        qkv, self.q_norm, self.k_norm, cos, sin, heads, self.config.num_key_value_heads
    )
    if cache is not None:
        key, value = _cache_update(cache, key, value, self.layer_idx, cos, sin, kwargs)
    attention = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
    out, weights = attention(
        self,
        query,
        key,
        value,
        attention_mask,
        dropout=0.0 if not self.training else self.attention_dropout,
        scaling=self.scaling,
        **kwargs,
    )
    out = out.reshape(*input_shape, -1).contiguous()
    return self.o_proj(out), weights


def _fused_decoder_layer_forward(self, hidden_states, *args, **kwargs):
    """The stock layer, the residual add before the second norm done in that norm's kernel
    (bit for bit the add, then the norm)."""
    from .kernels import add_rms_norm

    if len(args) > 1:
        raise TypeError("the fused decoder layer takes its inputs after hidden_states by name")
    if args:  # position_embeddings, passed positionally by some versions
        kwargs["position_embeddings"] = args[0]
    x = self.input_layernorm(hidden_states)
    attn_out, _ = self.self_attn(hidden_states=x, **kwargs)
    norm = self.post_attention_layernorm
    residual, x = add_rms_norm(hidden_states, attn_out, norm.weight, norm.variance_epsilon)
    return residual + self.mlp(x)


# ---- the vision tower -----------------------------------------------------------------------

#: Patches of each attention segment (image or frame) of the vision forward in progress.
_VISION_SEGMENTS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "medmo_vision_segments", default=None
)
_CUDNN_VISION: dict[str, bool] = {}


def _fused_vision_forward(self, hidden_states, grid_thw, **kwargs):
    """The stock vision forward, the attention segments' sizes learned once (one host copy of
    the small grid) rather than in every block."""
    segments = [h * w for t, h, w in grid_thw.tolist() for _ in range(t)]
    token = _VISION_SEGMENTS.set(segments)
    try:
        return type(self).forward(self, hidden_states, grid_thw, **kwargs)
    finally:
        _VISION_SEGMENTS.reset(token)


def _vision_sdpa(query, key, value, scale: float):
    """Attention over one segment, ``(1, heads, n, head_dim)`` each: cuDNN's kernel where
    this PyTorch and GPU have it (the fastest at the vision tower's head size), else SDPA."""
    import torch

    half = query.dtype in (torch.bfloat16, torch.float16)
    if query.is_cuda and half and _CUDNN_VISION.get("ok", True):
        try:
            return torch.ops.aten._scaled_dot_product_cudnn_attention(
                query, key, value, None, False, 0.0, False, False, scale=scale
            )[0]
        except (RuntimeError, AttributeError):  # not built, or not for this GPU/shape
            _CUDNN_VISION["ok"] = False
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, scale=scale)


def _fused_vision_attention_forward(
    self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs
):
    """The stock vision attention (SDPA path): q/k rotated in one kernel, no per-block sync."""
    import torch

    from .kernels import vision_rope

    patches = hidden_states.shape[0]
    cos, sin = position_embeddings
    query, key, value = vision_rope(self.qkv(hidden_states), cos, sin, self.num_heads)
    segments = _VISION_SEGMENTS.get()
    if segments is None or sum(segments) != patches:
        segments = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    if len(segments) == 1:
        out = _vision_sdpa(query, key, value, self.scaling)
    else:
        splits = [torch.split(t, segments, dim=2) for t in (query, key, value)]
        parts = zip(*splits, strict=True)
        out = torch.cat([_vision_sdpa(q, k, v, self.scaling) for q, k, v in parts], dim=2)
    return self.proj(out.transpose(1, 2).reshape(patches, -1))


def _vision_tower(model: Any) -> Any:
    inner = getattr(model, "model", model)
    return getattr(inner, "visual", None)


def _vision_attentions(visual: Any) -> list[Any]:
    return [block.attn for block in getattr(visual, "blocks", [])]


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


def _text_attention_fusable(attn: Any) -> bool:
    return all(hasattr(attn, n) for n in (*_QKV_NAMES, "q_norm", "k_norm", "o_proj"))


def install_fused_kernels(model: Any) -> int:
    """Route the language model's norms, attention projections and SiLU MLPs, and the vision
    tower's attention, through the fused kernels.

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
        attn = layer.self_attn
        if _text_attention_fusable(attn) and _merge_linears(attn, _QKV_NAMES, _QKV):
            attn.forward = types.MethodType(_fused_text_attention_forward, attn)
            layer.forward = types.MethodType(_fused_decoder_layer_forward, layer)
            changed += 2
    visual = _vision_tower(model)
    if visual is not None and getattr(visual.config, "_attn_implementation", None) == "sdpa":
        attentions = [a for a in _vision_attentions(visual) if hasattr(a, "qkv")]
        if attentions:
            visual.forward = types.MethodType(_fused_vision_forward, visual)
            for attn in attentions:
                attn.forward = types.MethodType(_fused_vision_attention_forward, attn)
            changed += 1 + len(attentions)
    setattr(model, _MARK, True)
    return changed


def uninstall_fused_kernels(model: Any) -> None:
    """Give the modules their stock ``forward`` (and separate weights) back."""
    if not getattr(model, _MARK, False):
        return
    lm = _language_model(model)
    modules = [*_norms(lm)]
    for layer in lm.layers:
        modules += [layer, layer.self_attn, layer.mlp]
        _split_linears(layer.mlp, _GATE_UP_NAMES, _GATE_UP)
        _split_linears(layer.self_attn, _QKV_NAMES, _QKV)
    visual = _vision_tower(model)
    if visual is not None:
        modules += [visual, *_vision_attentions(visual)]
    for module in modules:
        module.__dict__.pop("forward", None)
    if lm.config._attn_implementation == FUSED_ATTENTION:
        lm.config._attn_implementation = "sdpa"
    setattr(model, _MARK, False)


def fused_kernels_installed(model: Any) -> bool:
    """Whether :func:`install_fused_kernels` is in effect on ``model``."""
    return bool(getattr(model, _MARK, False))
