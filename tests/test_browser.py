"""The app in a real headless Chromium, driven by Playwright against ``streamlit run``.

One student uploads a picture and walks through every page with the sidebar links; a second student
in another browser context must never see it; a click on the attention-distance plot opens that
head; a deep link opens a view on a freshly started server; a drawing shown to Chromium's fake
camera is photographed and predicted. A screenshot of each page is saved to tests/screenshots/
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vit
from helpers_browser import BASE_ARGS, CHROMIUM, TIMEOUT_MS, assert_no_exception, require_browser, wait_idle
from helpers_camera import CAMERA_FLAGS, drawing_frame, write_y4m
from helpers_server import running_app
from vit.loading import MODELS_DIR

pytestmark = pytest.mark.browser

sync_api = require_browser()

ARGS = BASE_ARGS
VIEWPORT = {"width": 1400, "height": 2600}  # Streamlit scrolls inside its main block: a tall window shows more
SHOTS = Path(__file__).resolve().parent / "screenshots"
PAGES = [  # (key, sidebar link text, words of the page's title)
    ("patches", "1. Patches", "Image → patches"),
    ("embeddings", "2. Embeddings", "Linear projection"),
    ("positions", "3. Position embeddings", "Position embeddings"),
    ("attention", "4. Attention", "Multi-head self-attention"),
    ("encoder", "5. Encoder & prediction", "Encoder blocks"),
    ("whatif", "6. What if…?", "What if"),
]
NAV_LINKS = ["Start"] + [link for _, link, _ in PAGES]
UPLOAD_NAME = "student-upload.png"
UPLOADED: dict[str, str] = {}  # the sidebar image's URL after the upload, for the tests that follow


def upload_png() -> bytes:
    """A picture no sample looks like: diagonal stripes with a magenta disc, 120×90."""
    y, x = np.mgrid[0:90, 0:120]
    rgb = np.zeros((90, 120, 3), np.uint8)
    rgb[..., 1] = ((x + y) // 8 % 2) * 200
    disc = (x - 80) ** 2 + (y - 40) ** 2 < 20 ** 2
    rgb[disc] = (230, 0, 200)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def student(browser, server):
    """One student's tab, which uploads a picture on the start page (in test_upload) and keeps it."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module", autouse=True)
def screenshots_dir() -> Path:
    SHOTS.mkdir(exist_ok=True)
    return SHOTS


# --- helpers ----------------------------------------------------------------------------------------



def open_url(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("[data-testid='stSidebar']", timeout=TIMEOUT_MS)
    page.wait_for_selector("h1", timeout=TIMEOUT_MS)
    wait_idle(page)


def sidebar_caption(page) -> str:
    """The label under the sidebar's picture, e.g. 'upload: x.png' or 'sample: arrow ↑'."""
    image = page.locator("[data-testid='stSidebar'] [data-testid='stImage']").first
    try:
        image.wait_for(timeout=30_000)
    except sync_api.TimeoutError:
        pytest.fail("the sidebar shows no image")
    return image.inner_text().strip()


def sidebar_image_src(page) -> str:
    return page.locator("[data-testid='stSidebar'] [data-testid='stImage'] img").first.get_attribute("src")


def nav_links(page) -> list[str]:
    texts = page.locator("[data-testid='stSidebarNav'] a").all_inner_texts()
    return [t.strip().splitlines()[-1].strip() for t in texts]  # drop the icon's ligature name



PLOTLY_STATE = """() => [...document.querySelectorAll("[data-testid='stPlotlyChart']")].map(chart => {
    const gd = chart.querySelector('.js-plotly-plot');
    const svg = chart.querySelector('.js-plotly-plot svg.main-svg');
    const box = chart.getBoundingClientRect();
    const key = [...chart.closest('[data-testid="stElementContainer"]')?.classList || []]
        .find(c => c.startsWith('st-key-')) || '';
    return {key: key.slice(7), rendered: !!(gd && svg && gd._fullLayout), traces: gd && gd.data ? gd.data.length : 0,
            visible: chart.offsetParent !== null, width: box.width, height: box.height};
})"""


def plotly_charts(page) -> list[dict]:
    """Every Plotly chart on the page, once each visible one has been drawn by plotly.js."""
    page.wait_for_function(
        """() => {
            const charts = [...document.querySelectorAll("[data-testid='stPlotlyChart']")].filter(c => c.offsetParent !== null);
            return charts.length > 0 && charts.every(c => c.querySelector('.js-plotly-plot svg.main-svg'));
        }""", timeout=TIMEOUT_MS)
    return page.evaluate(PLOTLY_STATE)


def screenshot(page, name: str) -> None:
    """Save the whole page: Streamlit scrolls inside its main block, so grow the window to its height first."""
    height = page.evaluate("""() => Math.max(...['stMain', 'stAppViewContainer', 'stMainBlockContainer']
        .map(id => document.querySelector(`[data-testid='${id}']`)).filter(Boolean).map(e => e.scrollHeight))""")
    tall = min(int(height) + 80, 16_000) if height > VIEWPORT["height"] else VIEWPORT["height"]
    if tall > VIEWPORT["height"]:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": tall})
        page.wait_for_timeout(1500)  # plotly redraws on resize
    try:
        page.screenshot(path=str(SHOTS / f"{name}.png"))
    finally:
        if tall > VIEWPORT["height"]:
            page.set_viewport_size(VIEWPORT)


def slider_value(page, label: str) -> int:
    return int(page.locator(f"[data-testid='stSlider'] input[type=range][aria-label='{label}']").first.input_value(timeout=10_000))


def click_nav(page, link: str, title: str) -> None:
    page.locator("[data-testid='stSidebarNav'] a", has_text=link).first.click()
    page.get_by_role("heading", level=1).filter(has_text=title).wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)


# --- a first visitor by a deep link --------------------------------------------------------------------


def test_deep_link_is_the_first_request_of_a_fresh_server(browser) -> None:
    """A shared link (/attention?layer=2&head=3) opened before anyone has visited the start page."""
    with running_app() as url:
        context = browser.new_context(viewport=VIEWPORT)
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/attention?layer=2&head=3")
            page.get_by_role("heading", level=1).filter(has_text="Multi-head self-attention").wait_for()
            wait_idle(page)
            screenshot(page, "deep-link-first-visit")
            assert_no_exception(page, "deep link")
            assert nav_links(page) == NAV_LINKS, "the sidebar should list the app's pages (Streamlit's legacy pages/ mode?)"
            assert sidebar_caption(page), "the sidebar should show the image"
            assert slider_value(page, "Layer") == 2
            assert slider_value(page, "Head") == 3
        finally:
            context.close()


# --- one student, every page -----------------------------------------------------------------------------


def test_upload_on_the_start_page(student, server) -> None:
    page = student
    open_url(page, server + "/")
    assert nav_links(page) == NAV_LINKS
    default = sidebar_caption(page)
    assert "upload:" not in default
    page.get_by_role("tab", name="Upload").click()
    page.locator("input[type=file]").first.set_input_files(
        files=[{"name": UPLOAD_NAME, "mimeType": "image/png", "buffer": upload_png()}])
    uploaded = page.locator("[data-testid='stSidebar'] [data-testid='stImage']", has_text=UPLOAD_NAME)
    uploaded.or_(page.locator("[data-testid='stAlertContentError']")).first.wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)
    assert_no_exception(page, "start page after the upload")
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, f"the upload was refused: {errors.all_inner_texts()}"
    assert sidebar_caption(page) == f"upload: {UPLOAD_NAME}"
    # The pipeline: a link to every stage (their live shapes are checked in test_app.py).
    main = page.locator("[data-testid='stMain']")
    links = main.locator("[data-testid='stPageLink']")
    assert links.count() == len(PAGES), "the start page should link to every stage"
    screenshot(page, "start")
    UPLOADED["src"] = sidebar_image_src(page)  # kept for the page tests


@pytest.mark.parametrize("key, link, title", PAGES, ids=[p[0] for p in PAGES])
def test_every_page_keeps_the_upload(student, server, key: str, link: str, title: str) -> None:
    page = student
    if not UPLOADED:
        pytest.skip("the upload test did not run or failed")
    click_nav(page, link, title)
    assert page.url.split("?")[0].rstrip("/").endswith("/" + key)
    assert_no_exception(page, key)
    charts = plotly_charts(page)
    screenshot(page, key)
    drawn = [c for c in charts if c["rendered"]]
    assert drawn, f"{key}: no Plotly chart was drawn"
    empty = [c["key"] for c in charts if c["visible"] and c["rendered"] and c["traces"] == 0]
    assert not empty, f"{key}: charts without data: {empty}"
    tiny = [c["key"] for c in charts if c["visible"] and (c["width"] < 150 or c["height"] < 150)]
    assert not tiny, f"{key}: charts drawn too small to read: {tiny}"
    assert sidebar_caption(page) == f"upload: {UPLOAD_NAME}", f"{key}: the session lost the upload"
    assert sidebar_image_src(page) == UPLOADED["src"], f"{key}: the sidebar shows another picture"


def test_a_second_student_never_sees_the_first_ones_upload(browser, server, student) -> None:
    if not UPLOADED:
        pytest.skip("the upload test did not run or failed")
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        open_url(page, server + "/")
        assert_no_exception(page, "second student, start page")
        caption = sidebar_caption(page)
        screenshot(page, "start-second-student")
        assert "upload" not in caption, f"the second student sees {caption!r}"
        assert sidebar_image_src(page) != UPLOADED["src"]
        click_nav(page, "1. Patches", "Image → patches")
        assert_no_exception(page, "second student, patches page")
        assert sidebar_caption(page) == caption
        assert UPLOAD_NAME not in page.locator("[data-testid='stMain']").inner_text()
        # ...and the first student, on their next rerun, still has their own picture.
        click_nav(student, "Start", "ViT Explorer")
        assert sidebar_caption(student) == f"upload: {UPLOAD_NAME}"
    finally:
        context.close()


# --- clicking a figure -------------------------------------------------------------------------------------


POINTS = """() => {
    const gd = document.querySelector('.st-key-distance_plot .js-plotly-plot');
    const out = [];
    gd.querySelectorAll('.scatterlayer .trace').forEach((trace, t) => {
        trace.querySelectorAll('.points path.point').forEach((pt, i) => {
            const b = pt.getBoundingClientRect();
            out.push({trace: t, index: i, x: b.x + b.width / 2, y: b.y + b.height / 2,
                      custom: (gd._fullData[t].customdata || [])[i] ?? null});
        });
    });
    return out;
}"""
LISTEN = """() => {
    const gd = document.querySelector('.st-key-distance_plot .js-plotly-plot');
    window.__picked = null;
    gd.on('plotly_selected', e => {
        const p = e && e.points && e.points[0];
        if (p && p.customdata != null) window.__picked = [Number(p.customdata[0]), Number(p.customdata[1])];
    });
}"""


def test_click_on_the_distance_plot_selects_layer_and_head(browser, server) -> None:
    """A click on a point of "How far does each head look?" opens that layer and head in the sliders."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        open_url(page, server + "/attention?layer=1&head=1")
        page.locator(".st-key-distance_plot").scroll_into_view_if_needed()
        page.wait_for_function("() => !!document.querySelector('.st-key-distance_plot .js-plotly-plot svg.main-svg')")
        wait_idle(page)
        assert (slider_value(page, "Layer"), slider_value(page, "Head")) == (1, 1)
        points = [p for p in page.evaluate(POINTS) if p["custom"] is not None]
        assert points, "the distance plot has no clickable points"
        # Heads of an untrained model look equally far, so points can overlap: click the most isolated
        # point away from layer 1, and expect whichever point plotly reports as clicked.
        def isolation(p):
            return min(((p["x"] - q["x"]) ** 2 + (p["y"] - q["y"]) ** 2 for q in points if q is not p), default=1e9)
        target = max((p for p in points if int(p["custom"][0]) > 0), key=isolation)
        page.evaluate(LISTEN)
        page.mouse.move(target["x"] - 4, target["y"] - 4)
        page.mouse.move(target["x"], target["y"])
        page.mouse.click(target["x"], target["y"])
        page.wait_for_function("() => window.__picked !== null", timeout=30_000)
        layer, head = (v + 1 for v in page.evaluate("() => window.__picked"))
        assert layer > 1, "the click should have picked a point beyond layer 1"
        try:
            page.wait_for_function(
                """([layer, head]) => {
                    const v = label => document.querySelector(`[data-testid='stSlider'] input[aria-label='${label}']`)?.value;
                    return (v('Layer') === String(layer) && v('Head') === String(head))
                        || !!document.querySelector("[data-testid='stException']");
                }""", arg=[layer, head], timeout=60_000)
        finally:
            wait_idle(page)
            screenshot(page, "attention-after-click")
            assert_no_exception(page, "after a click on the distance plot")
        assert (slider_value(page, "Layer"), slider_value(page, "Head")) == (layer, head)
        heading = page.get_by_role("heading", level=3).filter(has_text="Where the [class] token looks")
        assert f"layer {layer}, head {head}" in heading.first.inner_text()
        assert f"layer={layer}" in page.url and f"head={head}" in page.url
    finally:
        context.close()


# --- a drawing shown to the camera ---------------------------------------------------------------------


SYMBOLS = "vit-tiny-symbols"
CAMERA_DRAWING = ("5", 0)  # label and seed of a clear hand-drawn one, unlike any sample


def test_a_drawing_shown_to_the_camera_is_predicted(playwright, server, tmp_path) -> None:
    """A student holds a drawing up to the webcam, takes the photo, and opens the prediction page."""
    if SYMBOLS not in vit.available_models():
        pytest.skip(f"{SYMBOLS} is not bundled")
    label, seed = CAMERA_DRAWING
    video = write_y4m(tmp_path / "drawing.y4m", drawing_frame(label, seed))
    camera = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS + CAMERA_FLAGS + [
        f"--use-file-for-fake-video-capture={video}"])
    try:
        context = camera.new_context(viewport=VIEWPORT, permissions=["camera"])
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        open_url(page, f"{server}/?model={SYMBOLS}")
        assert_no_exception(page, "start page with the symbol model")
        main = page.locator("[data-testid='stMain']")
        assert "draw a digit" in main.inner_text().lower(), "the start page should invite the student to draw"
        before = sidebar_image_src(page)
        page.get_by_role("tab", name="Camera").click()
        shutter = page.get_by_role("button", name="Take Photo")
        shutter.wait_for(timeout=TIMEOUT_MS)
        page.wait_for_function("() => [...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0)",
                               timeout=TIMEOUT_MS)
        shutter.click()
        page.locator("[data-testid='stSidebar'] [data-testid='stImage']", has_text="camera:").wait_for(timeout=TIMEOUT_MS)
        wait_idle(page)
        assert_no_exception(page, "start page after the photo")
        assert sidebar_caption(page).startswith("camera:"), "the photo should become the session's image"
        assert sidebar_image_src(page) != before
        screenshot(page, "camera-start")

        click_nav(page, "5. Encoder & prediction", "Encoder blocks")
        assert_no_exception(page, "prediction page for the camera shot")
        assert sidebar_caption(page).startswith("camera:")
        shown = page.locator("[data-testid='stMetric']", has_text="Prediction").locator("[data-testid='stMetricValue']")
        shown.first.wait_for(timeout=TIMEOUT_MS)
        value = shown.first.inner_text().strip()
        screenshot(page, "camera-prediction")
        classes = json.loads((MODELS_DIR / f"{SYMBOLS}.json").read_text())
        assert value in classes["class_names"] or value in ("Not recognised", "No digit or arrow"), value
        if "provisional" in classes:
            pytest.skip(f"{SYMBOLS} is a provisional placeholder (it says {value!r}); the drawn class "
                        f"{label!r} is checked once the trained model is bundled")
        assert value == label, f"the camera shot of a drawn {label!r} was predicted as {value!r}"
    finally:
        camera.close()
