"""The text-argument limit: per argument, per call, named in the error, before any model."""

from __future__ import annotations

import numpy as np
import pytest

from medmo_agent.backends.scripted import ScriptedBackend
from medmo_agent.config import Settings
from medmo_agent.errors import LimitExceededError
from medmo_agent.imaging.resolve import ImageResolver, held_nbytes
from medmo_agent.text_limits import check_text_arguments, text_chars
from medmo_agent.toolkit import Toolkit
from medmo_agent.types import ImageMeta, MedImage


def test_text_chars_counts_strings_lists_and_mappings():
    assert text_chars(None) == 0
    assert text_chars("abc") == 3
    assert text_chars(["ab", "c"]) == 5  # one separator per item
    assert text_chars({"A": "xy"}) == 4


def test_one_argument_over_the_limit_is_named_with_the_setting():
    with pytest.raises(LimitExceededError) as err:
        check_text_arguments(Settings(max_text_chars=10), question="x" * 11, context="ok")
    message = str(err.value)
    assert message.startswith("question is 11 characters long, over the 10-character limit")
    assert "MEDMO_MAX_TEXT_CHARS" in message


def test_arguments_together_over_the_limit_are_refused():
    with pytest.raises(LimitExceededError, match=r"\(question, context\) hold 12 characters"):
        check_text_arguments(Settings(max_text_chars=10), question="x" * 6, context="y" * 6)
    check_text_arguments(Settings(max_text_chars=10), question="x" * 5, context="y" * 5)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("text_qa", {"question": "q" * 101}),
        ("summarize", {"report_text": "r" * 101}),
        ("vqa", {"image": "never-loaded.png", "question": "q" * 101}),
        ("report", {"image": "never-loaded.png", "context": "c" * 101}),
        ("ground", {"image": "never-loaded.png", "targets": ["t" * 101]}),
        ("detect", {"image": "never-loaded.png", "label": "l" * 101}),
        ("classify", {"image": "never-loaded.png", "labels": ["l" * 101]}),
        ("reason", {"image": "never-loaded.png", "question": "q", "context": "c" * 101}),
    ],
)
def test_every_task_refuses_long_text_before_the_image_or_the_model(method, kwargs):
    backend = ScriptedBackend(["unused"])
    kit = Toolkit(backend, Settings(max_text_chars=100))
    with pytest.raises(LimitExceededError, match="max_text_chars"):
        getattr(kit, method)(**kwargs)
    assert backend.requests == []


def _image(side: int) -> MedImage:
    meta = ImageMeta(source="inline", format="png", original_size=(side, side))
    return MedImage(pixels=np.zeros((side, side, 3), np.uint8), meta=meta)


def test_held_images_are_bounded_by_bytes_least_recently_used_first():
    resolver = ImageResolver(Settings(), max_held_bytes=3 * 100 * 100 * 3)
    handles = [resolver.register(_image(100)) for _ in range(4)]
    assert held_nbytes(resolver.get(handles[-1])) == 30_000
    assert resolver.held_bytes == 90_000
    with pytest.raises(Exception, match="MEDMO_MAX_HELD_IMAGE_BYTES"):
        resolver.get(handles[0])
    too_big = resolver.register(_image(200))  # over the budget on its own: not held
    with pytest.raises(Exception, match="90,000 bytes of pixels"):
        resolver.get(too_big)
    assert resolver.get(handles[-1]) is not None  # and nothing else was dropped for it
    assert resolver.held_bytes == 90_000
