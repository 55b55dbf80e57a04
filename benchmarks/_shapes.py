"""MedMO's model shapes (Qwen3-VL 8B and 4B), for random-weight benchmarks on the GPU."""

from __future__ import annotations

from typing import Any

__all__ = ["SHAPES", "build_config", "build_random_model", "special_token_ids"]

SHAPES: dict[str, dict[str, Any]] = {
    "8b": {
        "text": dict(
            hidden_size=4096,
            intermediate_size=12288,
            num_hidden_layers=36,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            tie_word_embeddings=False,
        ),
        "vision": dict(
            depth=27,
            hidden_size=1152,
            intermediate_size=4304,
            num_heads=16,
            out_hidden_size=4096,
            deepstack_visual_indexes=[8, 16, 24],
        ),
        "tie_word_embeddings": False,
    },
    "4b": {
        "text": dict(
            hidden_size=2560,
            intermediate_size=9728,
            num_hidden_layers=36,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=151936,
            tie_word_embeddings=True,
        ),
        "vision": dict(
            depth=24,
            hidden_size=1024,
            intermediate_size=4096,
            num_heads=16,
            out_hidden_size=2560,
            deepstack_visual_indexes=[5, 11, 17],
        ),
        "tie_word_embeddings": True,
    },
}


def build_config(shape: str, token_ids: dict[str, int]) -> Any:
    """A ``Qwen3VLConfig`` of MedMO's ``shape`` using the given special-token ids."""
    from transformers import Qwen3VLConfig

    spec = SHAPES[shape]
    text = dict(spec["text"])
    text.update(
        max_position_embeddings=262144,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
        bos_token_id=token_ids["bos"],
        eos_token_id=token_ids["eos"],
        pad_token_id=token_ids["pad"],
    )
    vision = dict(spec["vision"])
    vision.update(
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_channels=3,
        num_position_embeddings=2304,
        hidden_act="gelu_pytorch_tanh",
    )
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["image"],
        video_token_id=token_ids["video"],
        vision_start_token_id=token_ids["vision_start"],
        vision_end_token_id=token_ids["vision_end"],
        tie_word_embeddings=spec["tie_word_embeddings"],
    )


#: The Qwen special tokens a Qwen3-VL config names, by config role.
_ROLES = {
    "bos": "<|im_start|>",
    "eos": "<|im_end|>",
    "pad": "<|endoftext|>",
    "image": "<|image_pad|>",
    "video": "<|video_pad|>",
    "vision_start": "<|vision_start|>",
    "vision_end": "<|vision_end|>",
}


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """The ids of the special tokens a config needs, as ``tokenizer`` numbers them."""
    return {role: tokenizer.convert_tokens_to_ids(token) for role, token in _ROLES.items()}


def build_random_model(shape: str, processor: Any, seed: int = 0) -> Any:
    """A random-weight Qwen3-VL of MedMO's ``shape`` on the GPU in bf16 (SDPA attention),
    speaking ``processor``'s token ids."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    config = build_config(shape, special_token_ids(processor.tokenizer))
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    return model.eval()
