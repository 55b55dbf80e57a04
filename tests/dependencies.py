"""What an install of this project brings: its requirements in ``pyproject.toml`` followed,
recursively, through the installed packages' own metadata (markers evaluated here, extras
followed). Shared by the light-install and the pinned-requirements tests."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = canonicalize_name("medmo-agent")
#: What the [local] extra brings, and what a light install therefore must not have
LOCAL_ONLY = re.compile(r"^(torch|torchvision|transformers|accelerate|triton|nvidia-.*|cuda-.*)$")


def _project_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == PROJECT:  # dev = ["medmo-agent[local,test]"]
                todo += sorted(req.extras)
            else:
                texts.append(text)
    return [Requirement(t) for t in texts]


def closure(extras: tuple[str, ...] = ()) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions ``pip install "medmo-agent[extras]"`` would bring,
    by canonical name."""
    installed: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        installed.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    found: dict[str, importlib.metadata.Distribution] = {}
    done: set[str] = set()
    todo = [(req, "") for req in _project_requirements(extras)]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        assert name in installed, f"{req} is required but not installed in this environment"
        dist = found[name] = installed[name]
        for want in ["", *sorted(req.extras)]:
            if f"{name}[{want}]" not in done:
                done.add(f"{name}[{want}]")
                todo += [(Requirement(r), want) for r in dist.requires or []]
    return found
