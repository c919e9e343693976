"""The "What if…?" page in a real headless Chromium, driven by Playwright against ``streamlit run``:
a click on a patch of the grid hides it, the page asks for a guess, and after the guess the
"after" bars of the prediction figure differ from the "before" ones; a click on a second patch
changes them again."""

from __future__ import annotations


import pytest

import vit
from helpers_browser import BASE_ARGS, TIMEOUT_MS, assert_no_exception, require_browser, wait_idle
from ui import models, state

pytestmark = pytest.mark.browser

sync_api = require_browser()

ARGS = BASE_ARGS
VIEWPORT = {"width": 1400, "height": 2000}

GRID = "[class*='st-key-wi_grid_'] .js-plotly-plot"
PATCH_POINTS = """() => {
    const gd = document.querySelector("[class*='st-key-wi_grid_'] .js-plotly-plot");
    const traces = gd.querySelectorAll('.scatterlayer .trace');
    const last = traces[traces.length - 1];
    const t = gd._fullData.length - 1;
    return [...last.querySelectorAll('.points path.point')].map((pt, i) => {
        const b = pt.getBoundingClientRect();
        return {index: i, x: b.x + b.width / 2, y: b.y + b.height / 2, custom: gd._fullData[t].customdata[i]};
    });
}"""
BARS = """() => {
    const gd = document.querySelector('.st-key-wi_bars .js-plotly-plot');
    if (!gd || !gd._fullData || gd._fullData.length < 2) return null;
    return {before: [...gd._fullData[0].x], after: [...gd._fullData[1].x], names: [...gd._fullData[0].y]};
}"""




def patches_that_matter() -> list[int]:
    """The default model's patches on the default sample, by how much hiding each alone moves the top class."""
    name = models.default_model_name()
    if name not in vit.available_models():
        pytest.skip("no bundled model")
    model = vit.load_model(name, device="cpu")
    image, _info = vit.load_image_info(state.default_sample().read_bytes())
    fit = model.meta.get("resize") if model.meta.get("resize") in state.FITS else "crop"
    x = vit.preprocess(image, model, fit=fit)
    drops = vit.occlusion_map(model, x)[0].abs().flatten()
    return [int(i) for i in drops.argsort(descending=True)]


def click_patch(page, index: int, before_key: str) -> None:
    """Click patch ``index`` (0-based) on the grid, then wait until the grid is drawn under its next key."""
    page.locator(GRID).first.scroll_into_view_if_needed()
    page.wait_for_function(f"() => !!document.querySelector(\"{GRID} svg.main-svg\")")
    points = {int(p["custom"]): p for p in page.evaluate(PATCH_POINTS)}
    assert index in points, f"patch index {index} has no clickable point: {sorted(points)[:10]}…"
    p = points[index]
    page.mouse.move(p["x"] - 3, p["y"] - 3)
    page.mouse.move(p["x"], p["y"])
    page.mouse.click(p["x"], p["y"])
    page.wait_for_function(
        """old => !document.querySelector('.' + old) && !!document.querySelector("[class*='st-key-wi_grid_']")
                 || !!document.querySelector("[data-testid='stException']")""", arg=before_key, timeout=60_000)
    wait_idle(page)
    assert_no_exception(page, f"after a click on patch {index + 1}")


def grid_key(page) -> str:
    return page.evaluate("""() => [...document.querySelector("[class*='st-key-wi_grid_']").classList]
                                     .find(c => c.startsWith('st-key-wi_grid_'))""")


def reveal(page) -> dict:
    """Press the first guess, then read the prediction figure once it is drawn."""
    guess = page.locator(".st-key-wi_guess_same button")
    guess.wait_for(timeout=60_000)
    assert page.locator(".st-key-wi_bars").count() == 0, "the result must wait for the guess"
    guess.click()
    page.wait_for_function(f"() => ({BARS})() !== null", timeout=60_000)
    wait_idle(page)
    assert_no_exception(page, "after the guess")
    return page.evaluate(BARS)


def test_a_click_on_a_patch_hides_it_and_the_after_prediction_changes(browser, server) -> None:
    order = patches_that_matter()
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server}/whatif?lang=en")
        page.get_by_role("heading", level=1).filter(has_text="What if").wait_for()
        wait_idle(page)
        assert_no_exception(page, "the what-if page")
        assert page.locator(".st-key-wi_bars").count() == 0, "nothing is changed yet"

        click_patch(page, order[0], grid_key(page))
        assert "1 patch hidden" in page.locator("[data-testid='stMain']").inner_text()
        first = reveal(page)
        assert first["before"] != first["after"], f"hiding patch {order[0] + 1} should move the prediction: {first}"

        click_patch(page, order[1], grid_key(page))
        assert "2 patches hidden" in page.locator("[data-testid='stMain']").inner_text()
        second = reveal(page)
        assert second["after"] != first["after"] or second["names"] != first["names"], \
            "a second hidden patch should change the after-prediction again"
        was = dict(zip(first["names"], first["before"]))
        assert all(was[n] == v for n, v in zip(second["names"], second["before"]) if n in was), \
            "the before side stays as it was"
    finally:
        context.close()


def test_the_page_stays_korean_after_a_click(browser, server) -> None:
    """A click reruns only the interactive part of the page (a fragment): it must stay in Korean."""
    order = patches_that_matter()
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server}/whatif?lang=ko")
        page.wait_for_selector("h1")
        wait_idle(page)
        click_patch(page, order[0], grid_key(page))
        main = page.locator("[data-testid='stMain']").inner_text()
        assert "패치 1개 가림" in main and "patch hidden" not in main, main[:2000]
        assert "Try a change" not in main and "Or change it by hand" not in main
    finally:
        context.close()


# --- the result, measured as tests/test_layout.py measures every page ---------------------------------------------


@pytest.mark.parametrize("lang, width, height, present", [("ko", 1024, 768, False), ("en", 390, 844, False),
                                                          ("ko", 390, 844, False), ("ko", 1024, 768, True)],
                         ids=["ko-1024-sidebar", "en-390", "ko-390", "ko-1024-present"])
def test_the_revealed_result_is_not_clipped(browser, server, lang, width, height, present) -> None:
    """After a preset, a guess and the sanity check, every figure and text of the page fits (and a Korean
    page holds no English): the checks of test_layout.py, on the page as a student leaves it."""
    from test_layout import MEASURE, View, english_report, open_sidebar, settle

    view = View(lang, width, height, present=present, sidebar=width == 1024 and not present)
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1, locale="en-US")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(view.url(server, "/whatif"))
        settle(page)
        for key in ("wi_preset_ink", "wi_guess_changed", "wi_sanity"):
            button = page.locator(f".st-key-{key} button:visible").first
            button.scroll_into_view_if_needed()
            button.click()
            page.wait_for_timeout(300)
            settle(page)
            assert_no_exception(page, f"after {key}")
        page.locator(".st-key-wi_sanity_maps").first.wait_for()
        if view.sidebar:
            open_sidebar(page)
        result = page.evaluate(MEASURE, view.min_tick_px)
        problems = [f"{p['kind']} in {p['where']}: {p['text']!r}: {p['detail']}" for p in result["problems"]]
        assert not problems, f"{view.name}: {len(problems)} clipped\n  " + "\n  ".join(problems)
        keys = {f["key"] for f in result["figures"]}
        assert {"wi_bars", "wi_attention", "wi_rollout", "wi_sanity_plot"} <= keys, keys
        if lang == "ko":
            words, lines = english_report(result)
            assert not words, "English on the Korean page:\n  " + "\n  ".join(lines[:40])
    finally:
        context.close()
