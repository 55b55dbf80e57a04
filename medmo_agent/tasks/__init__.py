"""MedMO's tasks, one module each: ``build_messages(...)`` makes the prompt and
``parse(text, ...)`` reads the answer into a result model (see :mod:`.results`).

Tasks are pure: no model, no I/O besides the prompt files shipped as package data.
"""

from __future__ import annotations

from . import classify, detect, ground, reason, report, summarize, text_qa, vqa
from .boxes import BoxParse, parse_boxes

__all__ = [
    "BoxParse",
    "classify",
    "detect",
    "ground",
    "parse_boxes",
    "reason",
    "report",
    "summarize",
    "text_qa",
    "vqa",
]
