"""Loading a MedMO checkpoint (hub id or local folder) with transformers, and the errors a
failed load becomes: each names the model, the cause and what to do.

torch and transformers are imported only when a checkpoint is loaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import DEFAULT_MODEL, MODEL_CHOICES
from ..errors import MedmoError, ModelLoadError

__all__ = ["load_checkpoint"]

_SMALLER_MODEL = "MBZUAI/MedMO-4B-Next"


def load_checkpoint(
    model_id: str,
    *,
    revision,
    device: str,
    dtype_name: str,
    attn_implementation: str,
    hub_timeout_s: float = 5.0,
) -> tuple[Any, Any]:
    """Load the model (eval mode, on ``device``) and its processor.

    Raises:
        ModelLoadError: With the cause (missing torchvision, no such folder, not on the hub,
            offline and not cached, out of memory) and the fix.
    """
    import torch

    if importlib.util.find_spec("torchvision") is None:
        raise ModelLoadError(
            f"Cannot load {model_id}: torchvision is not installed, and transformers builds "
            "the Qwen3-VL processor only with it.",
            input=model_id,
            fix="pip install torchvision (the build matching your torch).",
        )
    _check_local_path(model_id)
    if not _looks_like_path(model_id):
        from .hub import check_weights_reachable

        check_weights_reachable(model_id, revision, hub_timeout_s)
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    kwargs: dict[str, Any] = {
        "revision": revision,
        "dtype": getattr(torch, dtype_name),
        "attn_implementation": attn_implementation,
    }
    if device == "cuda":
        kwargs["device_map"] = "auto"
    elif device.startswith("cuda:"):
        kwargs["device_map"] = {"": device}
    try:
        with _progress_bars_only_on_a_terminal():
            processor = AutoProcessor.from_pretrained(model_id, revision=revision)
            model = Qwen3VLForConditionalGeneration.from_pretrained(model_id, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(device)  # type: ignore[arg-type]  # transformers' hints take no str
    except MedmoError:
        raise
    except Exception as exc:
        raise _load_error(model_id, exc) from exc
    model.eval()
    return model, processor


@contextlib.contextmanager
def _progress_bars_only_on_a_terminal() -> Iterator[None]:
    """transformers' "Loading weights" bar (and the hub's download bars) only when stderr is
    a terminal: in logs, pipes and captured output a bar is just noise."""
    from transformers.utils import logging as hf_logging

    hide = not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    if not hide or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _looks_like_path(model_id: str) -> bool:
    return (
        model_id.startswith(("/", "./", "../", "~", "\\"))
        or (len(model_id) > 1 and model_id[1] == ":")
        or model_id.count("/") > 1
        or os.path.exists(model_id)
    )


def _check_local_path(model_id: str) -> None:
    if not _looks_like_path(model_id):
        return
    path = Path(model_id).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"Cannot load {model_id}: no such folder.",
            input=model_id,
            fix=f"Pass an existing local checkpoint folder, or a hub id such as {DEFAULT_MODEL}.",
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"Cannot load {model_id}: the folder has no config.json, so it is not a checkpoint.",
            input=model_id,
            fix="Pass the folder that holds config.json and the *.safetensors weights.",
        )


def _load_error(model_id: str, exc: BaseException) -> ModelLoadError:
    import torch

    name = type(exc).__name__
    text = str(exc)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text.lower():
        return ModelLoadError(
            f"Cannot load {model_id}: out of GPU memory.",
            input=model_id,
            fix=(
                f"Use {_SMALLER_MODEL} (about 9 GB in bf16), free the GPU, or pick another "
                "GPU with MEDMO_DEVICE=cuda:N."
            ),
        )
    if name in {"RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"} or (
        "is not a valid model identifier" in text or "not a local folder" in text
    ):
        if offline or name == "LocalEntryNotFoundError" or "offline" in text.lower():
            return _offline_error(model_id)
        return ModelLoadError(
            f"Cannot load {model_id}: not found on the Hugging Face hub ({name}).",
            input=model_id,
            fix=f"Check the id and revision; published models: {', '.join(MODEL_CHOICES)}. "
            "Or pass a local path.",
        )
    if (
        offline
        or name in {"LocalEntryNotFoundError", "OfflineModeIsEnabled"}
        or ("offline" in text.lower() or "connect" in text.lower())
    ):
        return _offline_error(model_id)
    return ModelLoadError(
        f"Cannot load {model_id}: {name}: {text.splitlines()[0] if text else ''}".rstrip(": "),
        input=model_id,
        fix=f"Check that it is a Qwen3-VL checkpoint such as {DEFAULT_MODEL}, or pass a local "
        "path to one.",
    )


def _offline_error(model_id: str) -> ModelLoadError:
    return ModelLoadError(
        f"Cannot load {model_id}: offline and not in the local Hugging Face cache.",
        input=model_id,
        fix=f"Download the weights once where the hub is reachable: `huggingface-cli download "
        f"{model_id}`; or pass --model PATH to a local checkpoint folder; or use a server that "
        "already serves MedMO: --backend openai --base-url URL.",
    )
