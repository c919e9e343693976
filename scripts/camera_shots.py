"""Screenshots of the symbol model at work: a drawing shown to the camera, and a photo.

    python scripts/camera_shots.py                          # into /tmp/camera-shots
    python scripts/camera_shots.py --label 7 --seed 3 --photo cat.jpg --lang en ko

It starts the app (or uses ``--url``), then in headless Chromium at 1400×900:

- **the drawing:** Chromium's fake camera plays a generated hand drawing (``--label``, ``--seed``).
  On the start page the script opens the Camera tab and takes the photo, then visits the
  attention, positions and encoder pages in that same session, and on the "What if…?" page
  presses each preset and then the first guess, so that the result is shown;
- **the photo:** the same pages and presets for a bundled sample photo (``--photo``).

Each shot is saved as ``<source>-<page>-<lang>.png`` (``drawing-attention-en.png``,
``photo-whatif-shuffle-ko.png``), and the prediction each page shows is printed. A full run takes
a few minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from helpers_camera import CAMERA_FLAGS, drawing_frame, write_y4m
from helpers_server import running_app
from screenshots import ARGS, CHROMIUM, HEIGHT, TIMEOUT_MS, settle

MODEL = "vit-tiny-symbols"
WIDTH, HEIGHT_PX = 1400, 900
PAGES = {"attention": "/attention", "positions": "/positions", "encoder": "/encoder"}
PRESETS = ("shuffle-no-positions", "shuffle", "ink", "not-ink", "top-head", "random-head")
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
SIDEBAR_PICTURE = "() => document.querySelector(\"[data-testid='stSidebar'] [data-testid='stImage'] img\")?.src || ''"
PREDICTION = """() => [...document.querySelectorAll("[data-testid='stMetric']")]
    .map(m => m.innerText.replace(/\\s+/g, ' ').trim()).join(' | ')"""


def whole_page(page, path: Path) -> None:
    """Grow the window to the page's height (Streamlit scrolls inside its main area), shoot, shrink back."""
    settle(page)
    tall = min(int(page.evaluate(HEIGHT)) + 120, 16_000)
    if tall > HEIGHT_PX:
        page.set_viewport_size({"width": WIDTH, "height": tall})
        page.wait_for_timeout(1000)
        settle(page)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT_PX})
    print(f"{path}  {page.evaluate(PREDICTION)[:160]}", flush=True)


def go(page, path: str) -> None:
    """Another page in the same session: Streamlit's own link keeps the session (and the photo)."""
    page.locator(f"[data-testid='stSidebarNav'] a[href$='{path}'], [data-testid='stSidebarNav'] a[href*='{path}?']"
                 ).first.click()
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    settle(page)


def presets(page, out: Path, source: str, lang: str) -> None:
    for name in PRESETS:
        button = page.locator(f".st-key-wi_preset_{name} button").first
        button.wait_for(timeout=TIMEOUT_MS)
        if button.is_disabled():
            print(f"{source} {name}: the preset is disabled for this model", flush=True)
            continue
        button.click()
        page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        guess = page.locator(".st-key-wi_guess_same button").first
        try:
            guess.wait_for(timeout=20_000)
            guess.click()
        except Exception:  # noqa: BLE001 - guessing is off, or nothing to guess: the result is already shown
            pass
        page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        whole_page(page, out / f"{source}-whatif-{name}-{lang}.png")


def tour(page, out: Path, source: str, lang: str) -> None:
    for name, path in PAGES.items():
        go(page, path)
        whole_page(page, out / f"{source}-{name}-{lang}.png")
    go(page, "/whatif")
    presets(page, out, source, lang)


def take_photo(page, lang: str) -> None:
    page.get_by_role("tab", name={"en": "Camera", "ko": "카메라"}[lang]).click()
    shutter = page.locator("[data-testid='stCameraInputButton']")
    shutter.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => [...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0)",
                           timeout=TIMEOUT_MS)
    before = page.evaluate(SIDEBAR_PICTURE)
    shutter.click()  # the photo becomes the session's picture: the sidebar shows another one (in any language)
    page.wait_for_function(f"old => ({SIDEBAR_PICTURE})() !== old", arg=before, timeout=TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--out", type=Path, default=Path("/tmp/camera-shots"))
    ap.add_argument("--label", default="5", help="the class to draw (default 5)")
    ap.add_argument("--seed", type=int, default=0, help="the drawing's seed (default 0)")
    ap.add_argument("--photo", default="cat.jpg", help="a bundled sample photo (default cat.jpg)")
    ap.add_argument("--lang", nargs="+", choices=["en", "ko"], default=["en"])
    ap.add_argument("--only", choices=["drawing", "photo"], help="take one source only")
    ap.add_argument("--url", help="an app already running (default: start one)")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, \
            (nullcontext(args.url.rstrip("/")) if args.url else running_app()) as server, sync_playwright() as p:
        video = write_y4m(Path(tmp) / "drawing.y4m", drawing_frame(args.label, args.seed))
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=ARGS + CAMERA_FLAGS + [f"--use-file-for-fake-video-capture={video}"])
        try:
            for lang in args.lang:
                for source in ("drawing", "photo"):
                    if args.only and source != args.only:
                        continue
                    start = time.monotonic()
                    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT_PX}, device_scale_factor=1,
                                                  permissions=["camera"])
                    page = context.new_page()
                    page.set_default_timeout(TIMEOUT_MS)
                    query = f"?model={MODEL}&lang={lang}" + (f"&sample={args.photo}" if source == "photo" else "")
                    page.goto(f"{server}/{query}")
                    settle(page)
                    if source == "drawing":
                        take_photo(page, lang)
                    whole_page(page, args.out / f"{source}-start-{lang}.png")
                    tour(page, args.out, source, lang)
                    context.close()
                    print(f"{source} {lang}: {time.monotonic() - start:.0f} s", flush=True)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
