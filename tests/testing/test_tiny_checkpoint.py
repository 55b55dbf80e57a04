"""The tiny checkpoint loads and behaves like MedMO's, through the same calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medmo_agent.testing.tiny import SPECIAL_TOKENS, build_tiny_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def processor(tiny_checkpoint):
    return transformers.AutoProcessor.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return transformers.Qwen3VLForConditionalGeneration.from_pretrained(
        tiny_checkpoint, dtype=torch.float32, attn_implementation="sdpa"
    ).eval()


def _image(width: int, height: int, seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_checkpoint_loads_with_the_same_classes_as_medmo(processor, model):
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(processor.video_processor).__name__ == "Qwen3VLVideoProcessor"
    assert processor.image_processor.patch_size == 16
    assert processor.image_processor.merge_size == 2
    assert processor.image_processor.temporal_patch_size == 2
    assert model.config.model_type == "qwen3_vl"
    assert model.config.architectures == ["Qwen3VLForConditionalGeneration"]


def test_special_tokens_are_added_in_qwen_order_and_match_the_config(processor, model):
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t, _ in SPECIAL_TOKENS]
    assert ids == list(range(ids[0], ids[0] + len(SPECIAL_TOKENS)))
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert model.config.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == [
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.convert_tokens_to_ids("<|endoftext|>"),
    ]
    assert model.config.text_config.vocab_size >= len(tok)
    # tool markers are ordinary added tokens: they survive skip_special_tokens
    call = tok.convert_tokens_to_ids("<tool_call>")
    assert tok.decode([call], skip_special_tokens=True) == "<tool_call>"


def test_tokenizer_round_trips_medical_text_and_unicode(processor):
    tok = processor.tokenizer
    text = "Findings: 3 cm hypodense lesion — naïve µm ✓ 肺结节"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_chat_template_renders_images_as_vision_placeholders(processor):
    messages = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "You are a medical imaging expert."}],
        },
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Findings?"}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a medical imaging expert.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Findings?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_renders_tools_calls_and_responses_as_qwen3_vl_does(processor):
    tool = {
        "type": "function",
        "function": {
            "name": "detect",
            "description": "Find lesions.",
            "parameters": {"type": "object", "properties": {"image": {"type": "string"}}},
        },
    }
    messages = [
        {"role": "system", "content": "Be careful."},
        {"role": "user", "content": "Check chest.png"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "detect", "arguments": {"image": "chest.png"}},
                }
            ],
        },
        {"role": "tool", "content": '{"boxes": []}'},
        {"role": "tool", "content": "second"},
    ]
    text = processor.apply_chat_template(
        messages, tools=[tool], add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>system\nBe careful.\n\n# Tools\n\n")
    assert "<tools>\n" + json.dumps(tool) + "\n</tools>" in text
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "detect", "arguments": {"image": "chest.png"}}'
        "\n</tool_call><|im_end|>\n" in text
    )
    assert (
        '<|im_start|>user\n<tool_response>\n{"boxes": []}\n</tool_response>\n'
        "<tool_response>\nsecond\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    ) in text


@pytest.mark.parametrize("size", [(500, 300), (64, 64), (1500, 900)])
def test_processor_resizes_images_like_smart_resize(processor, size):
    from medmo_agent.imaging.geometry import model_input_size

    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>x<|im_end|>\n"
    inputs = processor(
        text=[text],
        images=[_image(*size)],
        return_tensors="pt",
        size={"shortest_edge": 65_536, "longest_edge": 1_048_576},
    )
    _, h, w = inputs["image_grid_thw"][0].tolist()
    assert (w * 16, h * 16) == model_input_size(size, 65_536, 1_048_576)
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_pad).sum()) == h * w // 4


def test_model_generates_from_text_and_image(processor, model):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[_image(96, 64)], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(tmp_path):
    from safetensors.torch import load_file

    a = load_file(build_tiny_checkpoint(tmp_path / "a", seed=0) / "model.safetensors")
    b = load_file(build_tiny_checkpoint(tmp_path / "b", seed=0) / "model.safetensors")
    c = load_file(build_tiny_checkpoint(tmp_path / "c", seed=1) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_is_small_on_disk(tiny_checkpoint: Path):
    total = sum(f.stat().st_size for f in tiny_checkpoint.iterdir() if f.is_file())
    assert total < 5 * 1024 * 1024


@pytest.mark.slow
def test_module_command_writes_a_checkpoint_and_prints_its_path(tmp_path):
    target = tmp_path / "ckpt"
    result = subprocess.run(
        [sys.executable, "-m", "medmo_agent.testing.tiny", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(target)
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (target / name).is_file(), name
    assert "<|image_pad|>" in (target / "chat_template.jinja").read_text()
