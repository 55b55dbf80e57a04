"""Build a tiny random Qwen3-VL checkpoint offline, laid out exactly like MedMO's.

The checkpoint has MedMO's architecture (``Qwen3VLForConditionalGeneration``), a real
byte-level BPE tokenizer with the Qwen special tokens in their real order, the Qwen3-VL
chat template (images, tools, tool responses) and the Qwen3-VL processor (patch 16,
merge 2, temporal patch 2). It loads through the same ``from_pretrained`` calls as
``MBZUAI/MedMO-8B-Next`` and is served by ``transformers serve DIR``; its answers are
random but deterministic for a seed.

    python -m medmo_agent.testing.tiny /tmp/tiny-medmo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ._chat_template import CHAT_TEMPLATE

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "build_tiny_checkpoint",
    "main",
]

#: Qwen's added tokens in their real order, with whether each is "special" (skipped when
#: decoding with ``skip_special_tokens``). In Qwen3-VL they start at id 151643.
SPECIAL_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

# The same pre-tokenisation split as Qwen2's tokenizer.
_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_BPE_VOCAB = 768  # byte alphabet (256) plus merges learned from the corpus

_CORPUS = """\
Findings: The lungs are clear. No pleural effusion or pneumothorax. The cardiomediastinal
silhouette is within normal limits. Impression: No acute cardiopulmonary process.
Findings: Patchy consolidation in the right lower lobe, concerning for pneumonia. Small left
pleural effusion. Mild cardiomegaly. Impression: Right lower lobe pneumonia.
Detect and localize all abnormalities in this image. Fractures <box>[[156, 516, 231, 607],
[240, 529, 296, 581]]</box> Label: [ [12, 40, 88, 120] ] Cell: <box> [ 3, 4, 50, 60 ] </box>
No Finding. No bacteria found. No disease found. Atelectasis, Cardiomegaly, Consolidation,
Edema, Effusion, Emphysema, Fibrosis, Hernia, Infiltration, Mass, Nodule, Pleural_Thickening,
Pneumonia, Pneumothorax. You are a medical imaging expert. Answer the question using a single
word or phrase. Please output 'yes' or 'no'. Answer with the option's letter from the given
choices directly. A. CT B. MRI C. X-ray D. Ultrasound. <think> The opacity is in the right
lower zone. </think> <answer> pneumonia </answer> {"name": "detect", "arguments": {"image":
"chest.png"}} [{"bbox_2d": [10, 20, 300, 400], "label": "nodule"}] liver kidney spleen brain
heart lesion tumour tumor nodule mass fracture bone skull spine abdomen pelvis knee thorax.
Hounsfield units 0123456789 window level width axial coronal sagittal slice frame dicom nifti.
Patient has a 3 cm hypodense lesion in segment VII of the liver. Über ésophage — naïve café ✓ µm.
"""


def build_tiny_checkpoint(
    path: str | Path, *, seed: int = 0, max_position_embeddings: int = 32768
) -> Path:
    """Write a tiny random Qwen3-VL checkpoint (model, tokenizer, processor) to ``path``.

    The same ``seed`` gives the same weights, so the same generated tokens. Takes about a
    second and a few MB on disk.

    Args:
        path: Folder to write; created if missing, files in it are overwritten.
        seed: Seed for the random weights.
        max_position_embeddings: The context length. The default fits the agent's prompt
            (system prompt plus every tool's schema, about 7,200 tokens with this small
            vocabulary) with room to spare; a smaller one tests the limits of a full context.

    Returns:
        The folder, ready for ``AutoProcessor.from_pretrained`` and
        ``Qwen3VLForConditionalGeneration.from_pretrained``.
    """
    from ..extras import require_local

    require_local("Building the tiny checkpoint")
    import torch
    from transformers import (
        GenerationConfig,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
    )

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _build_tokenizer()
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok, _ in SPECIAL_TOKENS}
    vocab_size = _round_up(len(tokenizer), 64)

    config = Qwen3VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": max_position_embeddings,
            "rms_norm_eps": 1e-6,
            # sum(mrope_section) must be head_dim / 2; interleaved as in Qwen3-VL
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "dtype": "bfloat16",
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,  # must equal the text hidden size
            "num_position_embeddings": 64,  # a perfect square (8 x 8 grid, interpolated)
            "deepstack_visual_indexes": [0, 1],  # below the vision depth
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    config.dtype = "bfloat16"

    model = Qwen3VLForConditionalGeneration(config)
    _randomize(model, seed)
    # transformers wraps ``to`` with functools.wraps, which hides the bound ``self`` from
    # type checkers: the call is right, the stub is not
    model = model.to(torch.bfloat16)  # type: ignore[arg-type]
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        # Qwen3-VL-Instruct's published sampling defaults; callers choose greedy explicitly
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.0,
    )
    model.save_pretrained(out)

    processor = Qwen3VLProcessor(
        image_processor=_image_processor(),
        tokenizer=tokenizer,
        video_processor=_video_processor(),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    # The tokenizer carries the template too, for servers that render with it alone.
    tokenizer.save_pretrained(out)
    return out


def _build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    state = json.loads(bpe.to_str())
    vocab = state["model"]["vocab"]
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]
    ]

    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=None,  # set below, once the added tokens have their real ids
        pad_token=None,
        model_max_length=262_144,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(
        [
            AddedToken(tok, special=special, normalized=False, single_word=False)
            for tok, special in SPECIAL_TOKENS
        ]
    )
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _image_processor():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(
        size={"shortest_edge": 65_536, "longest_edge": 16_777_216},
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def _video_processor():
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    return Qwen3VLVideoProcessor(
        size={"shortest_edge": 4096, "longest_edge": 25_165_824},
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def _randomize(model, seed: int) -> None:
    """Fill every weight from one seeded generator, in name order.

    Independent of transformers' own initialisers, so the weights are the same across
    versions. Weights are drawn wider than a trained model's so that logits are well
    separated: greedy decoding then does not hinge on rounding differences between a
    batched and a single forward pass.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith(("norm.weight", "norm1.weight", "norm2.weight")) or (
                param.ndim == 1 and "norm" in name
            ):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=gen))
            elif param.ndim == 1:
                param.copy_(0.02 * torch.randn(param.shape, generator=gen))
            else:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=gen) / fan_in**0.5)


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def main(argv: list[str] | None = None) -> int:
    """``python -m medmo_agent.testing.tiny DIR [--seed N]``: build and print the folder."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m medmo_agent.testing.tiny",
        description="Build a tiny random Qwen3-VL checkpoint laid out like MedMO's.",
    )
    parser.add_argument("directory", help="folder to write the checkpoint to")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    args = parser.parse_args(argv)
    from ..errors import MedmoError

    try:
        print(build_tiny_checkpoint(args.directory, seed=args.seed))
    except MedmoError as exc:  # e.g. torch missing: say which extra, not a traceback
        sys.stderr.write(f"{parser.prog}: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
