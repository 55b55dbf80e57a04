"""What a run records about itself in ``run.json``: model, versions, settings, sources."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..config import Settings
from .benchmarks import BenchmarkSpec
from .compat import Compat
from .items import EvalItem
from .records import RUN_FILE, EvalStore
from .result import EvalResult

if TYPE_CHECKING:
    from ..toolkit import Toolkit

__all__ = ["judge_model_of", "model_provenance", "run_provenance"]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("medmo-agent", "transformers", "torch", "datasets", "openai"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def judge_model_of(result: EvalResult, settings: Settings) -> str | None:
    """The judge named by the verdicts kept (a re-score may reuse them), else the setting."""
    for modes in result.records.values():
        for recs in modes.values():
            for rec in recs:
                judged = rec.verdict.get("judge")
                if isinstance(judged, dict) and judged.get("model"):
                    return str(judged["model"])
    return settings.judge_model


def model_provenance(
    toolkit: Toolkit | None, settings: Settings, store: EvalStore | None
) -> dict[str, Any]:
    """Which model answered: the toolkit's backend, or (re-scoring) the earlier run's."""
    keys = ("model", "revision", "backend", "backend_info")
    if toolkit is None:
        earlier = (store.read_json(RUN_FILE) if store is not None else None) or {}
        found = {k: earlier.get(k) for k in keys}
        found["model"] = found["model"] or settings.model
        return found
    backend = toolkit.backend
    try:
        info = json.loads(json.dumps(backend.info(), default=str))
    except Exception:  # an odd backend's info must not stop the run
        info = {}
    return {
        "model": getattr(backend, "model_id", "") or settings.model,
        "revision": settings.revision or info.get("revision"),
        "backend": getattr(backend, "name", settings.backend),
        "backend_info": info,
    }


def run_provenance(
    specs: list[BenchmarkSpec],
    loaded: dict[str, list[EvalItem]],
    modes: list[str],
    compat: Compat,
    seed: int | None,
    limit: int | None,
    max_new_tokens: int,
) -> dict[str, Any]:
    """The run's settings, package versions and each benchmark's source and size."""
    import platform

    return {
        "versions": _versions(),
        "python": platform.python_version(),
        "seed": seed,
        "limit": limit,
        "modes": modes,
        "compat": compat,
        "max_new_tokens": max_new_tokens,
        "temperature": 0.0,
        "benchmarks": {
            s.id: {
                "title": s.title,
                "source": s.source,
                "hub_id": s.hub_id,
                "configs": [c for c in s.configs if c],
                "split": s.split,
                "items": len(loaded[s.id]),
            }
            for s in specs
        },
    }
