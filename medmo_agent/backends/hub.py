"""Before loading weights from the Hugging Face hub: are they cached, and if not, can they
be downloaded? Answered in seconds, so a machine without the weights and without network
gets the real cause and what to do, not minutes of retries and a misleading hint."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from ..errors import ModelLoadError

__all__ = ["check_weights_reachable", "hub_offline"]

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """Whether downloads are switched off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _what_to_do(model_id: str) -> str:
    return (
        f"Download the weights once where the hub is reachable: `huggingface-cli download "
        f"{model_id}` (same HF_HOME); or pass --model PATH to a local checkpoint folder; or "
        "use a server that already serves MedMO: --backend openai --base-url URL."
    )


def check_weights_reachable(model_id: str, revision: str | None, timeout_s: float) -> None:
    """Return when ``model_id`` is cached or the hub answers; raise otherwise.

    Args:
        model_id: A hub id (local folders are checked elsewhere).
        revision: The revision to look for in the cache.
        timeout_s: Seconds to wait for a connection to the hub
            (``Settings.hub_connect_timeout_s``).

    Raises:
        ModelLoadError: Not cached, and downloads are off or the hub cannot be reached.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    if isinstance(found, str):
        return
    cache = constants.HF_HUB_CACHE
    if hub_offline():
        raise ModelLoadError(
            f"Cannot load {model_id}: its weights are not in the Hugging Face cache ({cache}), "
            "and HF_HUB_OFFLINE=1 forbids downloading them.",
            input=model_id,
            fix=_what_to_do(model_id) + " Or unset HF_HUB_OFFLINE to download on first use.",
        )
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    reason = _unreachable(endpoint, timeout_s)
    if reason:
        raise ModelLoadError(
            f"Cannot load {model_id}: its weights are not in the Hugging Face cache ({cache}), "
            f"and the hub at {endpoint} cannot be reached to download them ({reason}).",
            input=model_id,
            fix=_what_to_do(model_id)
            + " A slow network may need a larger MEDMO_HUB_CONNECT_TIMEOUT_S.",
        )


def _unreachable(endpoint: str, timeout_s: float) -> str | None:
    """Why a TCP connection to ``endpoint`` fails within ``timeout_s``, or None."""
    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host:
        return f"HF_ENDPOINT {endpoint!r} is not a URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None  # the proxy decides; a direct connection says nothing
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
