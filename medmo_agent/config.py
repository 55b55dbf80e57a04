"""Settings: every default lives here, and each can be overridden by a ``MEDMO_*`` variable.

>>> Settings().model
'MBZUAI/MedMO-8B-Next'
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .errors import ConfigError

__all__ = ["DEFAULT_MODEL", "MODEL_CHOICES", "Settings"]

DEFAULT_MODEL = "MBZUAI/MedMO-8B-Next"

#: The published checkpoints, with what each is for.
MODEL_CHOICES: dict[str, str] = {
    "MBZUAI/MedMO-8B-Next": "recommended; Qwen3-VL-8B base after the RL stage (~17 GB in bf16)",
    "MBZUAI/MedMO-4B-Next": "for GPUs with less memory (~9 GB in bf16)",
    "MBZUAI/MedMO-8B": "previous generation, 8B",
    "MBZUAI/MedMO-4B": "previous generation, 4B",
}

_ENV_PREFIX = "MEDMO_"


@dataclass(frozen=True)
class Settings:
    """Typed configuration shared by every surface.

    Build with ``Settings()`` for defaults, ``Settings.from_env()`` to apply ``MEDMO_*``
    environment variables, and ``settings.replace(model=...)`` for per-call overrides.
    The environment variable for a field is ``MEDMO_`` plus the field name in capitals
    (``max_new_tokens`` -> ``MEDMO_MAX_NEW_TOKENS``); lists are separated by ``os.pathsep``.
    """

    # which model, and where it runs
    model: str = DEFAULT_MODEL
    backend: str = "transformers"  # "transformers" | "openai" | "scripted"
    revision: str | None = None
    device: str = "auto"  # "auto" | "cuda" | "cuda:1" | "cpu"
    dtype: str = "auto"  # "auto" (bf16 on GPU, fp32 on CPU) | "bfloat16" | "float16" | "float32"
    # "auto": sdpa, or flash_attention_2 for the batched engine when flash-attn is installed
    attn_implementation: str = "auto"

    # OpenAI-compatible servers (vLLM, SGLang, transformers serve)
    base_url: str | None = None
    api_key: str | None = None
    served_model: str | None = None  # model name the server knows; defaults to `model`
    request_timeout_s: float = 300.0
    # Hugging Face hub: seconds to wait for a connection before a download of weights that
    # are not cached (an unreachable hub then fails at once with what to do)
    hub_connect_timeout_s: float = 5.0
    retries: int = 2

    # generation
    max_new_tokens: int = 512
    temperature: float = 0.0
    max_new_tokens_limit: int = 4096

    # batching in the local backend
    # "auto": continuous batching with CUDA-graph decode steps on a CUDA GPU, batched
    # ``generate`` calls elsewhere; "continuous" or "batched" to choose explicitly.
    engine: str = "auto"
    # Triton kernels in the continuous engine (CUDA): fused RMSNorm and MLP activation
    # installed into the model (so ``generate`` uses them too), rotary embedding + KV write
    # in one kernel, and mask-free batched attention inside one CUDA graph per step.
    # False keeps the model's stock modules (the engine still matches ``generate``).
    kernels: bool = True
    max_batch_size: int = 32
    batch_wait_ms: float = 5.0

    # images handed to the model (Qwen3-VL smart_resize budget)
    min_pixels: int = 65_536
    max_pixels: int = 1_048_576  # 1024x1024 -> 1024 visual tokens

    # input guards
    max_image_bytes: int = 512 * 1024 * 1024
    # Decoding costs up to about 12 bytes per pixel at peak (float TIFF; 8 for colour), so
    # 32 Mpx (a 5,600 x 5,600 image; mammograms are about 21 Mpx) keeps one request's
    # peak under 512 MiB. The model sees at most max_pixels anyway.
    max_image_pixels: int = 32_000_000
    # Longest free-text argument (question, context, report text, options, labels,
    # targets), and all text arguments of one call together, in characters; checked
    # before anything is tokenised. 16,000 characters is about 4,000 tokens of English.
    max_text_chars: int = 16_000
    # In-memory images (inline uploads, re-windowed renderings) kept for their
    # medmo://images/ handles, counted by their pixel bytes; least recently used go first.
    max_held_image_bytes: int = 256 * 1024 * 1024
    # Kept NIfTI volumes read slices from their open file (a .nii.gz is inflated into an
    # anonymous temporary file); past this many, the least recently used one closes its
    # files and reopens them when sliced again, so held images cannot exhaust descriptors.
    max_open_volumes: int = 32
    # image paths longer than this are refused before any file system access (PATH_MAX)
    max_path_chars: int = 4096
    allowed_dirs: tuple[Path, ...] = field(default_factory=tuple)

    # privacy
    include_phi: bool = False  # True lets identifying DICOM fields into outputs
    # True names image paths in machine outputs (--json, MCP results, audit log, traces,
    # review files); otherwise a path is shown as a label (medmo_agent/privacy.py)
    include_paths: bool = False

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        if "allowed_dirs" in changes:
            changes["allowed_dirs"] = tuple(Path(p) for p in changes["allowed_dirs"])
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``MEDMO_*`` variables, then explicit ``overrides``."""
        env = os.environ if environ is None else environ
        hints = _type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(_ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, raw, hints[f.name])
        if "api_key" not in values and env.get("OPENAI_API_KEY"):
            values["api_key"] = env["OPENAI_API_KEY"]
        return cls().replace(**values).replace(**overrides)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    # Resolving the string annotations takes most of from_env's time (it runs on every
    # load_image call without settings); a class's hints never change.
    return get_type_hints(cls)


def _coerce(name: str, raw: str, hint: Any) -> Any:
    text = str(hint)
    try:
        if "tuple" in text:
            return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p)
        if "bool" in text:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if "int" in text and "float" not in text:
            return int(raw)
        if "float" in text:
            return float(raw)
    except ValueError as exc:
        raise ConfigError(
            f"Environment variable {_ENV_PREFIX}{name.upper()}={raw!r} is not a valid value.",
            input=_ENV_PREFIX + name.upper(),
            fix=f"Set it to a value of type {text}.",
        ) from exc
    return raw
