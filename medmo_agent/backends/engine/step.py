"""One greedy decode step over the running batch, built from the model's own modules.

The step is cut at each attention call: everything between two attentions (output
projection, MLP, norms, the next layer's q/k/v projections, rotary embedding and the KV
cache write) has static shapes and is replayed as one CUDA graph per batch-size bucket;
attention itself runs eagerly through the model's own attention function over exactly the
keys filled so far. For one request that is the very computation ``generate`` performs, so
greedy outputs match token for token; the graphs remove the per-step launch overhead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .kv_cache import StaticKVCache

__all__ = ["BUCKETS", "DEFAULT_SDPA_BACKENDS", "DecodeStep", "attention_policy"]

#: SDPA kernels in order of preference: flash attention for unmasked attention (one request,
#: and prefill), memory-efficient attention for the padded batch. PyTorch's default choice
#: on Hopper re-validates cuDNN attention for every new key length, which costs tens of
#: milliseconds a decode step; flash's numerics also do not depend on memory layout.
DEFAULT_SDPA_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")

#: Batch sizes that get their own captured graphs; a batch runs in the smallest that fits.
BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64)


@dataclass
class _BucketState:
    """Static input buffers (and captured graphs) for one batch-size bucket."""

    size: int
    tokens: Any
    text_pos: Any
    write_idx: Any
    rows: Any
    attn_in: Any
    graphs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)  # per segment: what later steps read


def _language_model(model: Any) -> Any:
    inner = getattr(model, "model", model)
    return getattr(inner, "language_model", inner)


class DecodeStep:
    """Runs decode steps for rows ``0..n-1`` of a :class:`StaticKVCache`.

    Args:
        model: A loaded ``Qwen3VLForConditionalGeneration``.
        cache: The KV cache whose slots hold the running requests.
        max_batch: The largest batch that will be stepped.
        use_cuda_graphs: Capture the static segments as CUDA graphs (CUDA only).
    """

    def __init__(
        self,
        model: Any,
        cache: StaticKVCache,
        *,
        max_batch: int,
        use_cuda_graphs: bool,
        contiguous_kv: bool = False,
        attention_backends: tuple[str, ...] | None = DEFAULT_SDPA_BACKENDS,
    ):
        import torch
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        self.torch = torch
        self.model = model
        self.lm = _language_model(model)
        self.lm_head = model.lm_head
        self.layers = list(self.lm.layers)
        self.cache = cache
        attn0 = self.layers[0].self_attn
        module = sys.modules[type(attn0).__module__]
        self.apply_rope = module.apply_rotary_pos_emb
        impl = model.config._attn_implementation
        self.attn_impl = impl
        self.attention = ALL_ATTENTION_FUNCTIONS.get_interface(impl, module.eager_attention_forward)
        self.device = self.lm.embed_tokens.weight.device
        self.dtype = self.lm.embed_tokens.weight.dtype
        self.hidden = self.lm.config.hidden_size
        self.q_width = attn0.config.num_attention_heads * attn0.head_dim
        self.use_cuda_graphs = bool(use_cuda_graphs and self.device.type == "cuda")
        # Diagnostic: hand attention contiguous copies of the keys, as a DynamicCache would.
        self.contiguous_kv = contiguous_kv
        # Which SDPA kernels attention may use, in order of preference (see attention_policy).
        self.attention_backends = attention_backends
        # One request attends without a mask, so the policy picks flash attention: call its
        # kernel directly and skip two layers of Python dispatch (36 calls a step).
        self.direct_flash = bool(
            self.device.type == "cuda"
            and attn_impl_is_sdpa(model)
            and attention_backends
            and attention_backends[0] == "FLASH_ATTENTION"
        )
        self.buckets = [b for b in BUCKETS if b < max_batch] + [max_batch]
        self._states: dict[int, _BucketState] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.use_cuda_graphs else None

    def _flash(self, query: Any, keys: Any, values: Any, scale: float) -> Any:
        """The flash kernel SDPA itself runs for unmasked attention, output laid out as
        ``sdpa_attention_forward`` returns it: (batch, 1, heads, head_dim), contiguous."""
        out = self.torch.ops.aten._scaled_dot_product_flash_attention(
            query, keys, values, 0.0, False, False, scale=scale
        )[0]
        return out.transpose(1, 2).contiguous()

    def attention_policy(self) -> Any:
        """A context manager that applies the engine's SDPA kernel preference. Run prefill
        (``generate``) inside it too: the same kernels then serve prefill and decode, and a
        plain ``generate`` under it gives the engine's tokens exactly."""
        return attention_policy(self.attention_backends, self.device, self.attn_impl)

    @staticmethod
    def supports(model: Any) -> bool:
        """Whether this model's attention implementation can be stepped here."""
        return model.config._attn_implementation in ("sdpa", "eager")

    # ---- the static segments -------------------------------------------------------------

    def _pre_attention(self, i: int, hidden: Any, st: _BucketState, cos: Any, sin: Any):
        layer = self.layers[i]
        attn = layer.self_attn
        residual = hidden
        x = layer.input_layernorm(hidden)
        shape = (st.size, 1, -1, attn.head_dim)
        q = attn.q_norm(attn.q_proj(x).view(shape)).transpose(1, 2)
        k = attn.k_norm(attn.k_proj(x).view(shape)).transpose(1, 2)
        v = attn.v_proj(x).view(shape).transpose(1, 2)
        q, k = self.apply_rope(q, k, cos, sin)
        self.cache.keys[i][st.rows, :, st.write_idx] = k[:, :, 0]
        self.cache.values[i][st.rows, :, st.write_idx] = v[:, :, 0]
        return residual, q

    def _post_attention(self, i: int, residual: Any, attn_out: Any):
        layer = self.layers[i]
        hidden = residual + layer.self_attn.o_proj(attn_out)
        residual = hidden
        hidden = layer.mlp(layer.post_attention_layernorm(hidden))
        return residual + hidden

    def _segment(self, index: int, st: _BucketState, outs: list[tuple[Any, ...]]):
        """Segment 0: embed + rotary + layer 0 up to attention. Segment i (1..n-1): the end of
        layer i-1 and layer i up to attention. Segment n: the end of the last layer, the
        final norm, the LM head and the greedy choice. ``outs`` holds the earlier segments'
        outputs of this step (residual stream, rotary tables)."""
        n = len(self.layers)
        if index == 0:
            hidden = self.lm.embed_tokens(st.tokens.view(st.size, 1))
            positions = st.text_pos.view(1, st.size, 1).expand(3, st.size, 1)
            cos, sin = self.lm.rotary_emb(hidden, positions)
            residual, q = self._pre_attention(0, hidden, st, cos, sin)
            return residual, q, cos, sin
        cos, sin = outs[0][2], outs[0][3]
        hidden = self._post_attention(index - 1, outs[index - 1][0], st.attn_in)
        if index < n:
            return self._pre_attention(index, hidden, st, cos, sin)
        hidden = self.lm.norm(hidden)
        logits = self.lm_head(hidden)
        return (logits[:, -1, :].float().argmax(-1),)

    # ---- buckets and graphs --------------------------------------------------------------

    def bucket_for(self, batch: int) -> int:
        """The smallest bucket that holds ``batch`` rows."""
        for b in self.buckets:
            if b >= batch:
                return b
        raise ValueError(f"batch {batch} exceeds the largest bucket {self.buckets[-1]}")

    def _state(self, size: int) -> _BucketState:
        st = self._states.get(size)
        if st is None:
            torch = self.torch
            dev = self.device
            st = _BucketState(
                size=size,
                tokens=torch.zeros(size, dtype=torch.long, device=dev),
                text_pos=torch.zeros(size, dtype=torch.long, device=dev),
                write_idx=torch.full((size,), self.cache.max_len - 1, dtype=torch.long, device=dev),
                rows=torch.arange(size, dtype=torch.long, device=dev),
                attn_in=torch.zeros(size, 1, self.q_width, dtype=self.dtype, device=dev),
            )
            if self.use_cuda_graphs:
                self._capture(st)
            self._states[size] = st
        return st

    def _capture(self, st: _BucketState) -> None:
        torch = self.torch
        n = len(self.layers)
        # Warm up on a side stream (cuBLAS handles, workspaces) before capturing.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            warm: list[tuple[Any, ...]] = []
            for i in range(n + 1):
                warm.append(self._segment(i, st, warm))
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        for i in range(n + 1):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool), torch.inference_mode():
                out = self._segment(i, st, st.outputs)
            st.graphs.append(graph)
            st.outputs.append(out)
        torch.cuda.synchronize()

    # ---- one step ------------------------------------------------------------------------

    def _mask(self, lengths: list[int], size: int, kv_len: int) -> Any:
        """None for one request (attend to every key, as ``generate`` does); otherwise a
        padding mask over ``kv_len`` keys for each row (padding rows see only key 0)."""
        if size == 1:
            return None
        torch = self.torch
        lens = torch.tensor(lengths + [1] * (size - len(lengths)), device=self.device)
        allowed = torch.arange(kv_len, device=self.device)[None, :] < lens[:, None]
        allowed = allowed.view(size, 1, 1, kv_len)
        if self.attn_impl == "sdpa":
            return allowed
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return torch.where(allowed, zero, torch.finfo(self.dtype).min)

    @staticmethod
    def _copy_in(dst: Any, values: list[int], fill: int) -> None:
        import torch

        src = torch.tensor(values + [fill] * (dst.shape[0] - len(values)), dtype=dst.dtype)
        dst.copy_(src, non_blocking=False)

    def __call__(self, tokens: list[int], positions: list[int], lengths: list[int]) -> Any:
        """Decode one token for each running row.

        Args:
            tokens: The last token of each row (rows are cache slots 0..n-1).
            positions: Each row's rotary position for that token (text position + M-RoPE delta).
            lengths: Each row's number of cached positions before this token.

        Returns:
            A device tensor with the greedy next token of each row.
        """
        torch = self.torch
        n = len(tokens)
        st = self._state(self.bucket_for(n))
        self._copy_in(st.tokens, tokens, 0)
        self._copy_in(st.text_pos, positions, 0)
        # Padding rows write into the last cache position of their (unused) slots.
        self._copy_in(st.write_idx, lengths, self.cache.max_len - 1)
        kv_len = max(lengths) + 1
        mask = self._mask([ln + 1 for ln in lengths], st.size, kv_len)
        layers = len(self.layers)
        outs: list[tuple[Any, ...]] = st.outputs if self.use_cuda_graphs else []
        with torch.inference_mode(), self.attention_policy():
            for i in range(layers + 1):
                if self.use_cuda_graphs:
                    st.graphs[i].replay()
                else:
                    outs.append(self._segment(i, st, outs))
                out = outs[i]
                if i == layers:
                    return out[0][:n]
                attn = self.layers[i].self_attn
                keys = self.cache.keys[i][: st.size, :, :kv_len]
                values = self.cache.values[i][: st.size, :, :kv_len]
                if self.contiguous_kv:
                    keys, values = keys.contiguous(), values.contiguous()
                if mask is None and self.direct_flash:
                    attn_out = self._flash(out[1], keys, values, attn.scaling)
                else:
                    attn_out, _ = self.attention(
                        attn, out[1], keys, values, mask, dropout=0.0, scaling=attn.scaling
                    )
                st.attn_in.copy_(attn_out.reshape(st.size, 1, -1))
        raise AssertionError("unreachable")


def attention_policy(backends: tuple[str, ...] | None, device: Any, attn_impl: str = "sdpa") -> Any:
    """A context manager restricting SDPA to ``backends`` (in that order) on CUDA; a no-op
    elsewhere, or when ``backends`` is None."""
    import contextlib

    if not backends or getattr(device, "type", str(device)) != "cuda" or attn_impl != "sdpa":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, name) for name in backends], set_priority=True)


def attn_impl_is_sdpa(model: Any) -> bool:
    """Whether the model runs PyTorch's SDPA attention."""
    return model.config._attn_implementation == "sdpa"
