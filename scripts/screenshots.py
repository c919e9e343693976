"""Full-page screenshots of every page, in both languages, at the window sizes the app is made for.

    python scripts/screenshots.py                       # everything, into /tmp/shots
    python scripts/screenshots.py --out shots --pages attention encoder --lang ko --size 390

It starts the app with ``streamlit run`` on a free local port (and stops it at the end), opens each
page in Debian's headless Chromium (/usr/bin/chromium, driven by Playwright), waits until the script
has finished and every Plotly chart is drawn, and saves the whole page as a PNG named
``<page>-<lang>-<size>.png``, e.g. ``attention-ko-1024-sidebar.png`` (the start page is ``start``).

Sizes (and the languages taken at each by default):

    1400           1400×900, sidebar open                  en, ko
    1024-sidebar   1024×768 with the sidebar open          ko
    1024-present   1024×768 in projector mode (?present=1) ko
    390            a 390×844 phone, device scale 1         en, ko

``--pages``, ``--lang`` and ``--size`` keep only the shots they name. ``--url`` uses an app that is
already running instead of starting one. A full run takes a few minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers_server import running_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--hide-scrollbars"]
TIMEOUT_MS = 120_000
PAGES = {"start": "/", "patches": "/patches", "embeddings": "/embeddings", "positions": "/positions",
         "attention": "/attention", "encoder": "/encoder", "whatif": "/whatif"}
SIZES = {  # name: (width, height, query parameters added, languages by default)
    "1400": (1400, 900, "", ("en", "ko")),
    "1024-sidebar": (1024, 768, "", ("ko",)),
    "1024-present": (1024, 768, "&present=1", ("ko",)),
    "390": (390, 844, "", ("en", "ko")),
}
# The page is ready when its script has finished, the title is there, fonts are loaded and every Plotly chart is drawn.
DRAWN = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning' || !document.querySelector('h1')) return false;
    if (document.fonts.status !== 'loaded') return false;
    return [...document.querySelectorAll("[data-testid='stPlotlyChart']")].every(c => {
        const gd = c.querySelector('.js-plotly-plot');
        return gd && gd._fullLayout && c.querySelector('svg.main-svg');
    });
}"""
SNAPSHOT = """() => [...document.querySelectorAll("[data-testid='stElementContainer'], svg.main-svg, .katex")].length
    + ':' + document.querySelector("[data-testid='stMain']")?.scrollHeight"""
# Streamlit scrolls inside its main area, not the document: the full page is as tall as that area's content.
HEIGHT = """() => Math.max(...['stMain', 'stSidebarContent']
    .map(id => document.querySelector(`[data-testid='${id}']`)).filter(Boolean).map(e => e.scrollHeight))"""


def settle(page) -> None:
    """Wait until the page is drawn and holds still (the same elements twice in a row)."""
    page.wait_for_selector("h1", timeout=TIMEOUT_MS)
    last, same = None, 0
    while same < 2:
        page.wait_for_function(DRAWN, timeout=TIMEOUT_MS)
        now = page.evaluate(SNAPSHOT)
        same, last = (same + 1 if now == last else 0), now
        page.wait_for_timeout(400)


def open_sidebar(page) -> None:
    opened = "() => document.querySelector(\"[data-testid='stSidebar']\").getBoundingClientRect().right > 100"
    if not page.evaluate(opened):
        page.locator("[data-testid='stExpandSidebarButton']").first.click()
        page.wait_for_function(opened)
        page.wait_for_timeout(800)
        settle(page)


def shoot(page, url: str, path: Path, width: int, height: int, sidebar: bool) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url)
    settle(page)
    if sidebar:
        open_sidebar(page)
    tall = min(int(page.evaluate(HEIGHT)) + 120, 16_000)
    if tall > height:  # grow the window to the whole page; plotly redraws for the new size
        page.set_viewport_size({"width": width, "height": tall})
        page.wait_for_timeout(1000)
        settle(page)
    page.screenshot(path=str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", type=Path, default=Path("/tmp/shots"), help="folder for the PNGs (default /tmp/shots)")
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="pages to take")
    parser.add_argument("--lang", nargs="+", choices=["en", "ko"], help="languages to take")
    parser.add_argument("--size", nargs="+", choices=list(SIZES), default=list(SIZES), help="sizes to take")
    parser.add_argument("--url", help="an app already running, e.g. http://localhost:8501 (default: start one)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    shots = [(page, lang, size) for size in args.size for lang in SIZES[size][3] if not args.lang or lang in args.lang
             for page in args.pages]
    if not shots:
        parser.error("nothing to take: no default shot has that language at that size")
    args.out.mkdir(parents=True, exist_ok=True)
    with (nullcontext(args.url.rstrip("/")) if args.url else running_app()) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for size in args.size:
                width, height, extra, _langs = SIZES[size]
                context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                for name, lang, _size in [s for s in shots if s[2] == size]:
                    path = args.out / f"{name}-{lang}-{size}.png"
                    start = time.monotonic()
                    shoot(page, f"{server}{PAGES[name]}?lang={lang}{extra}", path, width, height,
                          sidebar=size == "1024-sidebar")
                    print(f"{path}  ({time.monotonic() - start:.0f} s)", flush=True)
                context.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
