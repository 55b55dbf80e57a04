"""Fixtures for the agent tests: a scripted tool-calling planner, images, toolkits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from PIL import Image


class ScriptedToolCaller(FakeMessagesListChatModel):
    """LangChain's fake chat model, extended with ``bind_tools``: replies from a script.

    It records the tool names it was offered, so tests can check what the planner saw.
    """

    offered: list[str] = []  # noqa: RUF012 - a pydantic field, copied per instance

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        self.offered = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self


@pytest.fixture
def chest_png(tmp_path: Path) -> Path:
    """A 96x64 grayscale 'X-ray': a bright disc on a dark background."""
    yy, xx = np.mgrid[0:64, 0:96]
    arr = np.where((xx - 60) ** 2 + (yy - 30) ** 2 < 100, 220, 40).astype(np.uint8)
    path = tmp_path / "chest.png"
    Image.fromarray(arr, mode="L").save(path)
    return path


@pytest.fixture(scope="session")
def tiny_toolkit(tiny_backend, tiny_settings):
    """A toolkit over the real transformers backend on the tiny checkpoint."""
    from medmo_agent.toolkit import Toolkit

    return Toolkit(backend=tiny_backend, settings=tiny_settings)
