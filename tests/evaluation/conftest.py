"""Fixture copies of every benchmark, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``<benchmark id>/`` for every benchmark, in the hub's layout."""
    from .fixtures import write_fixtures

    return write_fixtures(tmp_path_factory.mktemp("bench-data"))
