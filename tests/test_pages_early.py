"""The first three stage pages (patches, embeddings, positions) in English and Korean, their patch
numbering (1 to N on screen and in the URL) and the sharp display of tiny images."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from vit import i18n

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["patches", "embeddings", "positions"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def new_app(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def visit(at: AppTest, page: str, lang: str = "en") -> AppTest:
    """Switch to a stage page. AppTest calls widgets' format_func (the start page's translated options) in
    this thread when it collects their state, so this thread speaks the page's language meanwhile."""
    with i18n.use_language(lang):
        return at.switch_page(f"app_pages/{page}.py").run()


def assert_no_exception(at: AppTest, where: str) -> None:
    if at.exception:
        text = "\n\n".join(f"{e.value}\n{''.join(e.stack_trace)}" for e in at.exception)
        pytest.fail(f"{where}: the app raised\n{text}")


def hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def chart(at: AppTest, key: str) -> dict:
    """The Plotly figure (as JSON) of the chart with this widget key."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert found, f"no chart {key!r} among {[c.proto.id for c in at.get('plotly_chart')]}"
    return json.loads(found[0].proto.spec)


def array(value) -> np.ndarray:
    """A Plotly JSON array, plain or base64-packed ({'dtype': 'f4', 'bdata': ...})."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype=float)


@pytest.fixture(scope="module", params=["en", "ko"])
def app(request) -> AppTest:
    at = new_app(lang=request.param)
    assert_no_exception(at, f"start page ({request.param})")
    at.lang = request.param
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_in_each_language(app: AppTest, page: str) -> None:
    at = visit(app, page, app.lang)
    where = f"page {page!r} in {app.lang!r}"
    assert_no_exception(at, where)
    assert not at.error, f"{where}: {[e.value for e in at.error]}"
    title = " ".join(t.value for t in at.title)
    assert title, f"{where}: no title"
    if app.lang == "ko":
        assert hangul(title), f"{where}: the title is not Korean: {title!r}"
        prose = " ".join(m.value for m in at.markdown)
        assert hangul(prose), f"{where}: the page's prose is not Korean"
        untranslated = [i.value for i in at.info if not hangul(i.value)]
        assert not untranslated, f"{where}: info boxes not in Korean: {untranslated}"
    else:
        assert not hangul(title), f"{where}: Korean title in English: {title!r}"
    assert at.query_params.get("lang") == app.lang
    assert at.sidebar.image and at.get("page_link"), f"{where}: the frame (sidebar, guided path) did not run"


def test_patch_in_the_url_is_the_highlighted_patch() -> None:
    """?patch=5 means the patch labelled 5 on the grid: the input shows 5, the outline is around it."""
    at = visit(new_app(patch="5"), "patches")
    assert_no_exception(at, "?patch=5")
    assert at.number_input(key="patch").value == 5
    fig = chart(at, "patch_grid")
    labels = next(t for t in fig["data"] if t.get("type") == "scatter" and t.get("mode") == "text")
    i = list(labels["text"]).index("5")
    x, y = array(labels["x"])[i], array(labels["y"])[i]
    outline = [s for s in fig["layout"]["shapes"] if s["type"] == "rect"]
    assert len(outline) == 1, outline
    box = outline[0]
    assert box["x0"] < x < box["x1"] and box["y0"] < y < box["y1"], f"the outline {box} is not around label 5 at {(x, y)}"
    assert at.query_params.get("patch") == "5"


def test_patch_numbers_start_at_one() -> None:
    at = visit(new_app(patch="0"), "patches")
    assert_no_exception(at, "?patch=0")
    box = at.number_input(key="patch")
    assert box.value == 1 and box.min == 1
    assert at.query_params.get("patch") == "1"
    n = int(box.max)
    at = visit(new_app(patch=str(n + 7)), "patches")
    assert at.number_input(key="patch").value == n, "a number past N is clamped to the last patch, N"


def test_position_in_the_url_counts_from_one() -> None:
    at = visit(new_app(position="5"), "positions")
    assert_no_exception(at, "?position=5")
    slider = at.slider(key="position")
    assert slider.value == 5 and slider.min == 1
    title = chart(at, "pos_one")["layout"]["title"]
    title = title["text"] if isinstance(title, dict) else title
    assert "patch 5 " in title, title
    assert at.query_params.get("position") == "5"


def test_a_tiny_image_is_shown_sharp() -> None:
    from ui.widgets import display_image

    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                       [[0, 0, 0], [255, 255, 255], [255, 255, 0]],
                       [[0, 255, 255], [255, 0, 255], [128, 128, 128]]], dtype=np.uint8)
    tiny = Image.fromarray(pixels)
    shown = display_image(tiny, min_size=224)
    assert shown.width >= 224 and shown.width % 3 == 0 and shown.size[0] == shown.size[1]
    k = shown.width // 3
    big = np.asarray(shown)
    assert {tuple(c) for c in big.reshape(-1, 3)} == {tuple(c) for c in pixels.reshape(-1, 3)}, "no blended colours"
    assert np.array_equal(big[::k, ::k], pixels), "each pixel becomes a k×k block of its own colour"
    assert np.asarray(tiny).shape == (3, 3, 3), "the image itself is not changed"
    wide = Image.new("L", (100, 10))
    assert display_image(wide, min_size=224).size == (300, 30), "whole factor, aspect kept"
    photo = Image.new("RGB", (640, 480))
    assert display_image(photo) is photo


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_tiny_upload_is_shown_enlarged_with_its_note(lang: str) -> None:
    """A 3×3 upload: the patches page says what enlarging it does, in the page's language, and draws it."""
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]] * 3, dtype=np.uint8)
    at = new_app(lang=lang)
    with i18n.use_language(lang):
        at.file_uploader(key="upload").set_value(("tiny.png", png(pixels), "image/png")).run()
    assert_no_exception(at, "3×3 upload")
    at = visit(at, "patches", lang)
    assert_no_exception(at, "patches page after a 3×3 upload")
    notes = [i.value for i in at.info if "3×3" in i.value]
    assert notes, f"no note about enlarging the 3×3 image: {[i.value for i in at.info]}"
    assert hangul(notes[0]) == (lang == "ko"), notes[0]
    captions = [c for image in at.main.image for c in image.captions]
    k = -(-224 // 3)
    assert any("3×3 px" in c and (f"{k}×" in c or f"{k}배" in c) for c in captions), captions
