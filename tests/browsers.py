"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` through Playwright.

Usage::

    require_chromium()  # skips the test when chromium or Playwright is missing
    with chromium_page() as page:
        page.goto(report.as_uri())
        page.screenshot(path=str(ARTIFACTS / "report.png"))

Async tests launch with ``await pw.chromium.launch(**LAUNCH)``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ARTIFACTS", "CHROMIUM", "LAUNCH", "chromium_page", "require_chromium"]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
"""Where browser tests save their screenshots (made by :func:`chromium_page`)."""
# headless, and nothing fetched behind the test's back (updates, sync, first-run pages)
LAUNCH: dict[str, Any] = {
    "executable_path": CHROMIUM,
    "headless": True,
    "args": [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ],
}


def require_chromium() -> None:
    """Skip the calling test when Debian's chromium or Playwright is not installed."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")


@contextlib.contextmanager
def chromium_page(width: int = 1200, height: int = 900) -> Iterator[Any]:
    """A Playwright page (sync API) in a fresh headless chromium, closed on exit.

    Args:
        width: viewport width in CSS pixels.
        height: viewport height in CSS pixels.
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**LAUNCH)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
