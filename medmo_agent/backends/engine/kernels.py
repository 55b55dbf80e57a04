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

from .kernels_attention import ATTENTION_CHUNK, AttentionWorkspace, decode_attention
from .kernels_norm import add_rms_norm, rms_norm, silu_mul
from .kernels_rope import qk_norm_rope, vision_rope

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
