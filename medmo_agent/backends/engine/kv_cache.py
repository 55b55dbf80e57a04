"""A static KV cache: one key and one value tensor per layer, one row (slot) per running
request, sized to the memory the device has left rather than to the longest request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["StaticKVCache", "plan_cache"]


@dataclass(frozen=True)
class CachePlan:
    """How many slots of how many positions the cache holds."""

    slots: int
    max_len: int
    bytes_per_token: int

    @property
    def total_bytes(self) -> int:
        return self.slots * self.max_len * self.bytes_per_token


def plan_cache(
    text_config: Any,
    *,
    slots: int,
    dtype_bytes: int,
    free_bytes: int | None,
    memory_fraction: float = 0.85,
    max_len: int | None = None,
) -> CachePlan:
    """Choose the cache length: all of ``memory_fraction`` of the free device memory, shared
    evenly by ``slots`` rows, capped by the model's context length (and ``max_len``)."""
    layers = text_config.num_hidden_layers
    kv_heads = text_config.num_key_value_heads
    head_dim = getattr(text_config, "head_dim", None) or (
        text_config.hidden_size // text_config.num_attention_heads
    )
    per_token = 2 * layers * kv_heads * head_dim * dtype_bytes
    context = int(getattr(text_config, "max_position_embeddings", 32768))
    cap = min(context, max_len) if max_len else context
    if free_bytes is None:  # the CPU: no device memory to fill, size to the cap
        length = cap
    else:
        length = int(free_bytes * memory_fraction) // (per_token * slots)
        length = min(cap, length)
    length = max(256, (length // 256) * 256)
    return CachePlan(slots=slots, max_len=length, bytes_per_token=per_token)


class StaticKVCache:
    """Per-layer key/value tensors of shape ``(slots, kv_heads, max_len, head_dim)``."""

    def __init__(self, text_config: Any, plan: CachePlan, *, device: Any, dtype: Any):
        import torch

        kv_heads = text_config.num_key_value_heads
        head_dim = getattr(text_config, "head_dim", None) or (
            text_config.hidden_size // text_config.num_attention_heads
        )
        shape = (plan.slots, kv_heads, plan.max_len, head_dim)
        self.plan = plan
        self.keys = [
            torch.zeros(shape, device=device, dtype=dtype)
            for _ in range(text_config.num_hidden_layers)
        ]
        self.values = [
            torch.zeros(shape, device=device, dtype=dtype)
            for _ in range(text_config.num_hidden_layers)
        ]

    @property
    def max_len(self) -> int:
        return self.plan.max_len

    def load_prompt(self, slot: int, layer_keys: list[Any], layer_values: list[Any]) -> int:
        """Copy a prefilled prompt's keys/values (each ``(1, kv_heads, L, head_dim)``) into
        ``slot``; returns L."""
        length = int(layer_keys[0].shape[2])
        layers = zip(self.keys, self.values, layer_keys, layer_values, strict=True)
        for cache_k, cache_v, k, v in layers:
            cache_k[slot, :, :length].copy_(k[0])
            cache_v[slot, :, :length].copy_(v[0])
        return length

    def move_slot(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` positions of slot ``src`` into slot ``dst``."""
        for cache_k, cache_v in zip(self.keys, self.values, strict=True):
            cache_k[dst, :, :length].copy_(cache_k[src, :, :length])
            cache_v[dst, :, :length].copy_(cache_v[src, :, :length])
