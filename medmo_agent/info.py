"""What ``medmo info`` reports: versions, devices, the configured model and its cache state."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings
from .extras import LOCAL_EXTRA_INSTALL

__all__ = ["collect_info", "format_info", "weights_cached"]

_PACKAGES = (
    "torch",
    "torchvision",
    "transformers",
    "mcp",
    "langchain",
    "langgraph",
    "pydicom",
    "nibabel",
    "pillow",
    "ipywidgets",
)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {
            "cuda_available": False,
            "gpus": [],
            "note": f"torch is not installed: the local model needs {LOCAL_EXTRA_INSTALL}",
        }
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append(
                {"index": i, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}
            )
    return {
        "cuda_available": bool(gpus),
        "gpus": gpus,
        "flash_attention_2": _version("flash-attn") is not None,
    }


def weights_cached(model: str, revision: str | None = None) -> bool | None:
    """Whether ``model`` can load without a download: a local folder, or in the hub cache.

    Returns ``None`` when that cannot be told (huggingface_hub missing).
    """
    if Path(model).expanduser().is_dir():
        return (Path(model).expanduser() / "config.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(model, "config.json", revision=revision)
    return isinstance(found, str)


def collect_info(settings: Settings) -> dict[str, Any]:
    """Everything ``medmo info`` prints, as a JSON-ready dict."""
    model_info: dict[str, Any] = {"model": settings.model, "backend": settings.backend}
    if settings.backend == "transformers":
        model_info["weights_cached"] = weights_cached(settings.model, settings.revision)
    elif settings.backend == "openai":
        model_info["base_url"] = settings.base_url
    return {
        "medmo_agent": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "devices": _devices(),
        "model": model_info,
    }


def format_info(info: dict[str, Any]) -> str:
    """Human-readable rendering of :func:`collect_info`."""
    lines = [f"medmo-agent {info['medmo_agent']} (Python {info['python']})", "", "packages:"]
    for name, ver in info["packages"].items():
        lines.append(f"  {name:<13} {ver or 'not installed'}")
    dev = info["devices"]
    lines += ["", "devices:"]
    if dev.get("gpus"):
        for gpu in dev["gpus"]:
            lines.append(f"  cuda:{gpu['index']}  {gpu['name']}  {gpu['memory_gib']} GiB")
        lines.append(f"  flash-attention 2: {'yes' if dev.get('flash_attention_2') else 'no'}")
    elif dev.get("note"):
        lines.append(f"  {dev['note']}")
    else:
        lines.append("  no CUDA GPU: the local model runs on the CPU (slow; fine for tests)")
    m = info["model"]
    lines += ["", "model:", f"  {m['model']} via {m['backend']}"]
    if "weights_cached" in m:
        state = {
            True: "cached (loads offline)",
            False: "not cached: downloads on first use",
            None: "unknown",
        }[m["weights_cached"]]
        lines.append(f"  weights: {state}")
    if m.get("base_url"):
        lines.append(f"  server: {m['base_url']}")
    return "\n".join(lines)
