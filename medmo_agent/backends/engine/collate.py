"""Several prompts as one left-padded batch for ``model.generate``."""

from __future__ import annotations

from typing import Any

__all__ = ["collate_left_padded"]

# Per-token tensors (batch, sequence) that are left-padded, with their pad value;
# ``input_ids`` pads with the model's pad token. Everything else is per image.
_PAD_VALUES = {"attention_mask": 0, "mm_token_type_ids": 0, "token_type_ids": 0}


def collate_left_padded(items: list[dict[str, Any]], pad_id: int, device: Any) -> dict[str, Any]:
    """Processor outputs of single prompts -> one batch on ``device``: per-token tensors
    left-padded to the longest prompt, per-image tensors (``pixel_values``,
    ``image_grid_thw``) concatenated in order. Rows without images simply add none."""
    import torch

    longest = max(int(item["input_ids"].shape[1]) for item in items)
    batch: dict[str, Any] = {}
    keys = list(dict.fromkeys(k for item in items for k in item))
    for key in keys:
        values = [item[key] for item in items if item.get(key) is not None]
        if not values:
            continue
        if key == "input_ids" or key in _PAD_VALUES:
            pad_value = pad_id if key == "input_ids" else _PAD_VALUES[key]
            padded = [
                torch.nn.functional.pad(v, (longest - v.shape[1], 0), value=pad_value)
                for v in values
            ]
            batch[key] = torch.cat(padded, dim=0).to(device)
        else:
            batch[key] = torch.cat(values, dim=0).to(device)
    return batch
