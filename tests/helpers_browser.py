"""What the browser tests share: Debian's Chromium, its command line, and waiting for Streamlit.

A browser test module starts with ``sync_api = require_browser()`` (it skips the module when Chromium
or Playwright is missing), sets ``ARGS`` (usually :data:`BASE_ARGS`), and asks conftest.py's
``playwright``, ``browser`` and ``server`` fixtures by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's
BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TIMEOUT_MS = 120_000


def require_browser():
    """Skip the calling test module unless Chromium and Playwright are installed; returns playwright.sync_api."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


def wait_idle(page) -> None:
    """Wait until the script run triggered by the last action has finished and the page is drawn."""
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def assert_no_exception(page, where: str) -> None:
    boxes = page.locator("[data-testid='stException']")
    if boxes.count():
        pytest.fail(f"{where}: the app shows an exception:\n{boxes.first.inner_text()[:2000]}")
