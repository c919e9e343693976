"""The attention and encoder pages in both languages, patch numbers from 1 to N on screen and in the
URL, and the prediction of a photo the model does not know (``streamlit.testing.v1.AppTest``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import frame, models
from vit import i18n

ROOT = Path(__file__).resolve().parent.parent
PAGES = {key: f"{frame.PAGES_DIR.name}/{frame.STAGES[key][0]}" for key in ("attention", "encoder")}
NOT_KNOWN = ("Not recognised", "No digit or arrow", "Nothing it knows")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def run(at: AppTest) -> AppTest:
    """``at.run()`` with the test's thread in the page's language too: AppTest reads the widgets' values
    back through their ``format_func`` in this thread, and a translated label must match the page's."""
    with i18n.use_language(at.query_params.get("lang", "en")):
        return at.run()


def open_page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    run(at)
    run(at.switch_page(PAGES[page]))
    if at.exception:
        pytest.fail(f"{page} {query}: " + "\n\n".join(f"{e.value}\n{''.join(e.stack_trace)}" for e in at.exception))
    assert not at.error, [e.value for e in at.error]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def chart_titles(at: AppTest) -> str:
    """The titles of every Plotly figure on the page (no-break spaces, which keep "패치 5" on one line, as spaces)."""
    titles = []
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec.get("layout", {}).get("title", {})
        titles.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return "\n".join(titles).replace("\u00a0", " ")


@pytest.mark.parametrize("page", list(PAGES))
def test_page_in_english_and_korean(page: str) -> None:
    english = open_page(page, lang="en")
    title = texts(english.title)
    assert page in title.lower() and not hangul(title), title
    korean = open_page(page, lang="ko")
    title = texts(korean.title)
    assert hangul(title), f"the {page} page's title is not Korean: {title!r}"
    said = "\n".join([texts(korean.markdown), texts(korean.subheader), texts(korean.caption), texts(korean.info)])
    for english_words in ("[class] token is", "Where does one", "Live shapes", "The head", "Logit lens:", "Top-1 after"):
        assert english_words not in said, f"untranslated on the Korean {page} page: {english_words!r}"
    assert korean.query_params.get("lang") == "ko"


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_query_in_the_url_is_the_patch_number_on_screen(lang: str) -> None:
    at = open_page("attention", query="5", lang=lang)
    query = at.number_input(key="query")
    assert query.value == 5 and query.min == 0, "query 0 is the [class] token, query k is patch k"
    assert at.query_params.get("query") == "5"
    titles = chart_titles(at)
    assert ("Patch 5 →" if lang == "en" else "패치 5 →") in titles, titles
    if lang == "en":
        assert "Row 5 of the attention matrix (patch 5 as the query)" in texts(at.caption)

    at.number_input(key="query").set_value(0)
    run(at)
    assert not at.exception
    assert at.query_params.get("query") == "0"
    assert "[class] → patches" in chart_titles(at) or lang == "ko"

    n = int(at.number_input(key="query").max)
    at.number_input(key="query").set_value(n)
    run(at)
    assert not at.exception and at.query_params.get("query") == str(n), "the last patch is patch N"


def test_click_on_the_grid_opens_that_patch() -> None:
    """A click's customdata is the 0-based index of the patch under it; patch numbers start at 1."""
    at = open_page("attention", query="5")
    at.session_state["query_grid"] = {"selection": {"points": [{"customdata": 0, "point_index": 0}]}}
    run(at)
    assert not at.exception
    assert at.number_input(key="query").value == 1 and at.query_params.get("query") == "1"


def test_unknown_photo_in_korean() -> None:
    """A cat is none of the bundled models' classes: the metric says so, in Korean."""
    english = open_page("encoder", sample="cat.jpg", lang="en")
    metric = next(m for m in english.metric if m.label == "Prediction")
    if metric.value not in NOT_KNOWN:
        pytest.skip(f"{models.default_model_name()} takes the cat for {metric.value!r}")
    assert "it would say “" in texts(english.caption)

    at = open_page("encoder", sample="cat.jpg", lang="ko")
    metrics = [m for m in at.metric if hangul(m.label)]
    assert len(metrics) == 1, [(m.label, m.value) for m in at.metric]
    assert hangul(metrics[0].value) and metrics[0].value not in NOT_KNOWN, metrics[0].value
    said = texts(at.info) + texts(at.caption)
    assert hangul(said) and "A softmax" not in said and "Forced to choose" not in said, said
    assert "”라고 답할 것입니다" in texts(at.caption)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_in_projector_mode(page: str) -> None:
    """Side-by-side figures become rows in projector mode: nothing on the page is in a column."""
    at = open_page(page, lang="ko", present="1")
    assert at.session_state["present"]
    charts = [c.proto.id for c in at.get("plotly_chart")]
    in_columns = [c.proto.id for column in at.columns for c in column.get("plotly_chart")]
    assert charts and not in_columns, in_columns
