"""One greedy decode step over the running batch, built from the model's own modules.

With the Triton kernels (CUDA, the default there): the whole step, attention included, is one
CUDA graph per batch-size bucket. Attention reads each row's own length from a device tensor
(:func:`.kernels.decode_attention`), so no mask is built and nothing is launched from Python
per layer. The model's ``generate`` runs the same kernels (:mod:`.fused`), so one request's
greedy tokens equal ``generate``'s token for token. The step ends by writing its tokens into
its own inputs and moving each request one position on, so the next step can be launched
before this one's tokens are read back (:meth:`DecodeStep.advance`).

Without them (stock modules, and the CPU): the step is cut at each attention call. Everything
between two attentions (output projection, MLP, norms, the next layer's q/k/v projections,
rotary embedding and the KV cache write) has static shapes and is replayed as a CUDA graph;
attention runs eagerly through the flash kernel ``generate`` uses over exactly the keys filled
so far (one request), or with a padding mask (several).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .fused import _language_model
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
    """Static input buffers (and captured graphs) for one batch-size bucket.

    ``inputs`` rows: tokens, rotary positions, cache write index, keys to attend to, and
    each row's advance (1 for a request, 0 for padding); they are filled by one
    host-to-device copy from the pinned ``host`` buffer. A whole-step run leaves them
    advanced to the next step (its tokens in, positions one further), so the next step can
    be launched before this one's tokens reach the host (:meth:`DecodeStep.advance`).
    """

    size: int
    inputs: Any
    host: Any
    rows: Any
    attn_in: Any
    whole_step: bool  # one graph for the whole step (Triton attention) or one per segment
    graphs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)  # per segment: what later steps read

    @property
    def tokens(self) -> Any:
        return self.inputs[0]

    @property
    def text_pos(self) -> Any:
        return self.inputs[1]

    @property
    def write_idx(self) -> Any:
        return self.inputs[2]

    @property
    def lengths(self) -> Any:
        return self.inputs[3]

    @property
    def advances(self) -> Any:
        return self.inputs[4]


class DecodeStep:
    """Runs decode steps for rows ``0..n-1`` of a :class:`StaticKVCache`.

    Args:
        model: A loaded ``Qwen3VLForConditionalGeneration``.
        cache: The KV cache whose slots hold the running requests.
        max_batch: The largest batch that will be stepped.
        use_cuda_graphs: Capture the static segments as CUDA graphs (CUDA only).
        kernels: Run each step through the Triton kernels as one whole-step graph (rotary
            embedding + cache write, add-norms, mask-free attention). Default: on CUDA when
            Triton is installed. The model should carry the fused modules
            (:func:`.fused.install_fused_kernels`) for ``generate`` to compute the same.
    """

    def __init__(
        self,
        model: Any,
        cache: StaticKVCache,
        *,
        max_batch: int,
        use_cuda_graphs: bool,
        attention_backends: tuple[str, ...] | None = DEFAULT_SDPA_BACKENDS,
        kernels: bool | None = None,
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
        self._last: tuple[_BucketState, int] | None = None  # the last whole step's bucket, rows
        self._pool = torch.cuda.graph_pool_handle() if self.use_cuda_graphs else None
        self.kernels = triton_available(self.device) if kernels is None else bool(kernels)
        if self.kernels and self.device.type != "cuda" and not _interpreting():
            raise ValueError(
                "The Triton kernels need a CUDA GPU (or TRITON_INTERPRET=1 for the CPU "
                "interpreter); pass kernels=False."
            )
        self.heads = attn0.config.num_attention_heads
        self.kv_heads = attn0.config.num_key_value_heads
        self.head_dim = attn0.head_dim
        self._workspace = None
        if self.kernels:
            from .kernels import AttentionWorkspace

            self._workspace = AttentionWorkspace(
                max(self.buckets), self.heads, self.head_dim, cache.max_len, self.device
            )

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
        from .fused import FUSED_ATTENTION

        text = model.config.get_text_config()._attn_implementation
        return model.config._attn_implementation in ("sdpa", "eager") and text in (
            "sdpa",
            "eager",
            FUSED_ATTENTION,
        )

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
        return self._greedy(hidden)

    def _greedy(self, hidden: Any) -> tuple[Any]:
        logits = self.lm_head(self.lm.norm(hidden))
        return (logits[:, -1, :].float().argmax(-1),)

    def _whole_step(self, st: _BucketState) -> tuple[Any]:
        """Embedding to greedy token for every row: the fused model's own kernels (one
        ``q|k|v`` product, q/k norms + rotary embedding writing the new key and value straight
        into the cache, split attention). Each residual add is done in the next norm's kernel
        (:func:`.kernels.add_rms_norm`), bit-identical to the layer's own add followed by its
        (fused) norm."""
        from .fused import qkv_projection
        from .kernels import add_rms_norm, decode_attention, qk_norm_rope

        hidden = self.lm.embed_tokens(st.tokens.view(st.size, 1))
        positions = st.text_pos.view(1, st.size, 1).expand(3, st.size, 1)
        cos, sin = self.lm.rotary_emb(hidden, positions)
        residual, x = hidden, self.layers[0].input_layernorm(hidden)
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            keys, values = self.cache.keys[i], self.cache.values[i]
            q = qk_norm_rope(
                qkv_projection(attn, x),
                attn.q_norm,
                attn.k_norm,
                cos,
                sin,
                self.heads,
                self.kv_heads,
                cache=(keys, values, st.write_idx),
            )
            decode_attention(q, keys, values, st.lengths, attn.scaling, st.attn_in, self._workspace)
            norm = layer.post_attention_layernorm
            residual, x = add_rms_norm(
                residual, attn.o_proj(st.attn_in), norm.weight, norm.variance_epsilon
            )
            norm = self.layers[i + 1].input_layernorm if i + 1 < n else self.lm.norm
            residual, x = add_rms_norm(residual, layer.mlp(x), norm.weight, norm.variance_epsilon)
        logits = self.lm_head(x)
        next_tokens = logits[:, -1, :].float().argmax(-1)
        # Ready the next step on the device: these tokens in, every request one position on.
        st.tokens.copy_(next_tokens)
        st.inputs[1:4].add_(st.advances)
        return (next_tokens,)

    # ---- buckets and graphs --------------------------------------------------------------

    def capture_all(self) -> None:
        """Prepare (and capture) every bucket now rather than on first use."""
        for size in self.buckets:
            self._state(size)

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
            inputs = torch.zeros((5, size), dtype=torch.long, device=dev)
            inputs[2].fill_(self.cache.max_len - 1)
            inputs[3].fill_(1)
            st = _BucketState(
                size=size,
                inputs=inputs,
                host=torch.zeros((5, size), dtype=torch.long, pin_memory=dev.type == "cuda"),
                rows=torch.arange(size, dtype=torch.long, device=dev),
                attn_in=torch.zeros(size, 1, self.q_width, dtype=self.dtype, device=dev),
                whole_step=self.kernels,
            )
            if self.use_cuda_graphs:
                self._capture(st)
            self._states[size] = st
        return st

    def _capture(self, st: _BucketState) -> None:
        torch = self.torch
        n = len(self.layers)
        pieces = 1 if st.whole_step else n + 1

        def run(i: int, outs: list[tuple[Any, ...]]) -> tuple[Any, ...]:
            return self._whole_step(st) if st.whole_step else self._segment(i, st, outs)

        # Warm up on a side stream (cuBLAS handles, workspaces, Triton compiles) first.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            warm: list[tuple[Any, ...]] = []
            for i in range(pieces):
                warm.append(run(i, warm))
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        for i in range(pieces):
            graph = torch.cuda.CUDAGraph()
            # thread_local: another thread's CUDA calls (a prefill) must not void the capture
            capture = torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local")
            with capture, torch.inference_mode():
                out = run(i, st.outputs)
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

    def _copy_in(
        self, st: _BucketState, tokens: list[int], positions: list[int], lengths: list[int]
    ) -> None:
        """One host-to-device copy of the step's inputs. Padding rows decode token 0 at
        position 0, write into the last cache position of their (unused) slots, attend to
        one key and never advance."""
        n = len(tokens)
        host = st.host.numpy()
        host[:, n:] = ((0,), (0,), (self.cache.max_len - 1,), (1,), (0,))
        host[0, :n] = tokens
        host[1, :n] = positions
        host[2, :n] = lengths
        host[3, :n] = lengths
        host[3, :n] += 1  # the new token attends to itself too
        host[4, :n] = 1
        st.inputs.copy_(st.host, non_blocking=True)

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
        self._copy_in(st, tokens, positions, lengths)
        if st.whole_step:
            self._last = (st, n)
            return self._run_whole(st, n)
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
                if mask is None and self.direct_flash:
                    attn_out = self._flash(out[1], keys, values, attn.scaling)
                else:
                    attn_out, _ = self.attention(
                        attn, out[1], keys, values, mask, dropout=0.0, scaling=attn.scaling
                    )
                st.attn_in.copy_(attn_out.reshape(st.size, 1, -1))
        raise AssertionError("unreachable")

    @property
    def can_advance(self) -> bool:
        """Whether :meth:`advance` is available (the whole-step path)."""
        return self.kernels

    def advance(self) -> Any:
        """The next step for the rows of the last call, from the inputs that step left on the
        device (its tokens, positions one further): it can be launched before the last
        step's tokens are read back. Returns the device tensor of greedy tokens."""
        last = self._last
        if last is None or not self.kernels:
            raise RuntimeError("advance() follows a whole-step call")
        return self._run_whole(*last)

    def _run_whole(self, st: _BucketState, n: int) -> Any:
        with self.torch.inference_mode():
            if self.use_cuda_graphs:
                st.graphs[0].replay()
                return st.outputs[0][0][:n]
            return self._whole_step(st)[0][:n]


def attention_policy(backends: tuple[str, ...] | None, device: Any, attn_impl: str = "sdpa") -> Any:
    """A context manager restricting SDPA to ``backends`` (in that order) on CUDA; a no-op
    elsewhere, or when ``backends`` is None."""
    import contextlib

    if not backends or getattr(device, "type", str(device)) != "cuda" or attn_impl != "sdpa":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, name) for name in backends], set_priority=True)


def triton_available(device: Any) -> bool:
    """Whether the Triton kernels are used by default on ``device``: a CUDA GPU with Triton
    installed. (On the CPU they run only in Triton's interpreter, ``TRITON_INTERPRET=1``,
    which the tests turn on and ask for explicitly.)"""
    import importlib.util

    if getattr(device, "type", str(device)) != "cuda":
        return False
    return importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "") == "1"


def attn_impl_is_sdpa(model: Any) -> bool:
    """Whether the model runs PyTorch's SDPA attention."""
    return model.config._attn_implementation == "sdpa"
