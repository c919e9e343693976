import sys
from pathlib import Path

import pytest
import torch

from helpers_browser import CHROMIUM
from helpers_server import running_app

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(2)


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# --- browser tests: one Playwright, one headless Chromium and one app server per module -----------------
# A browser test module sets ``ARGS``, Chromium's command line, and asks for these by name.


@pytest.fixture(scope="module")
def playwright():
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, request):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=request.module.ARGS)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def server() -> str:
    with running_app() as url:
        yield url
