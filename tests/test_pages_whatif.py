"""The "What if…?" page (``streamlit.testing.v1.AppTest``): it renders in English and Korean on the
default model and its untrained twin; a preset asks for a guess before it shows anything; shuffling
without position embeddings leaves the prediction exactly as it was (checked against the model
itself, not read back from the page); hiding patches, by session state or by a click, changes the
after-prediction; a model without a head and a one-block, one-head, one-patch model work too."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import vit
from ui import frame, models, state
from vit import i18n, whatif
from vit.intervention import Intervention

ROOT = Path(__file__).resolve().parent.parent
PAGE = f"{frame.PAGES_DIR.name}/{frame.STAGES['whatif'][0]}"
DEFAULT = models.default_model_name()
OPTIONS = [DEFAULT, DEFAULT + models.UNTRAINED]
GUESS_KEYS = ("wi_guess_same", "wi_guess_confidence", "wi_guess_changed")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- helpers (as in test_app.py) ----------------------------------------------------------------------


def run(at: AppTest) -> AppTest:
    """``at.run()`` with this thread in the page's language, as AppTest reads widgets back through it."""
    with i18n.use_language(at.query_params.get("lang", "en")):
        return at.run()


def assert_no_exception(at: AppTest, where: str) -> None:
    if at.exception:
        text = "\n\n".join(f"{e.value}\n{''.join(e.stack_trace)}" for e in at.exception)
        pytest.fail(f"{where}: the app raised\n{text}")
    assert not at.error, f"{where}: {[e.value for e in at.error]}"


def open_page(option: str = DEFAULT, lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["lang"] = lang
    run(at)
    if option != DEFAULT:
        with i18n.use_language(lang):
            at.selectbox(key="model_name").set_value(option)
        run(at)
    run(at.switch_page(PAGE))
    assert_no_exception(at, f"what-if page, {option}, {lang}")
    return at


def app_with_model(model: vit.VisionTransformer) -> AppTest:
    """The app with ``model`` as the session's own checkpoint, opened on the what-if page."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["user_model"] = {"model": model, "key": "session:constructed", "label": "constructed"}
    at.session_state["model_selected"] = models.UPLOADED
    run(at)
    run(at.switch_page(PAGE))
    assert_no_exception(at, "what-if page with a constructed model")
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def said(at: AppTest) -> str:
    return "\n".join(texts(getattr(at, kind)) for kind in ("markdown", "info", "success", "caption", "warning"))


def hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def press(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click()
    run(at)
    assert_no_exception(at, f"after pressing {key}")
    return at


def metric(at: AppTest, starts: str):
    found = [m for m in at.metric if m.label.startswith(starts)]
    assert len(found) == 1, [(m.label, m.value) for m in at.metric]
    return found[0]


_MODELS: dict[str, vit.VisionTransformer] = {}


def model_of(option: str) -> vit.VisionTransformer:
    """The option's model, built here as the app builds it (the untrained twin from the same seed)."""
    if option not in _MODELS:
        base = option[: -len(models.UNTRAINED)] if option.endswith(models.UNTRAINED) else option
        if base == models.RANDOM_FALLBACK:
            pytest.skip("no bundled model")
        model = vit.load_model(base, device="cpu")
        _MODELS[option] = vit.untrained_like(model) if option.endswith(models.UNTRAINED) else model
    return _MODELS[option]


def model_input(model: vit.VisionTransformer) -> torch.Tensor:
    path = state.default_sample()
    image, _info = vit.load_image_info(path.read_bytes())
    fit = model.meta.get("resize") if model.meta.get("resize") in state.FITS else "crop"
    return vit.preprocess(image, model, fit=fit)


def probabilities(model, x, iv) -> np.ndarray:
    with torch.no_grad():
        return model(x, intervention=iv).double().softmax(-1)[0].numpy()


# --- renders --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("option", OPTIONS)
def test_page_renders_in_both_languages(option: str, lang: str) -> None:
    at = open_page(option, lang)
    title = texts(at.title)
    assert ("What if" in title) == (lang == "en") and hangul(title) == (lang == "ko"), title
    assert at.latex, "the page states what it measures as an equation"
    assert at.query_params.get("lang") in (lang, [lang])
    assert not any(b.key in GUESS_KEYS for b in at.button), "nothing is changed yet: nothing to guess"
    if lang == "ko":
        text = said(at) + texts(at.subheader)
        for english in ("Try a change", "Nothing is changed", "None of these maps", "Explanations side by side",
                        "Check 1", "deletion", "sanity check"):
            assert english not in text, f"untranslated on the Korean page: {english!r}"
    headings = texts(at.subheader)
    assert ("Explanations side by side" in headings) == (lang == "en")


# --- predict, then reveal ---------------------------------------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS)
def test_shuffle_without_position_embeddings_changes_nothing(option: str) -> None:
    at = open_page(option)
    press(at, "wi_preset_shuffle-no-positions")
    perm = at.session_state["wi_shuffle"]
    assert perm is not None and sorted(perm) == list(range(len(perm))) and perm != tuple(range(len(perm)))
    assert at.session_state["wi_positions"] == "both"
    # Before the reveal: the question and the guesses, no result.
    assert all(at.button(key=k) for k in GUESS_KEYS)
    assert "Will shuffling the patches change the prediction?" in texts(at.markdown)
    assert not at.metric, "the result must wait for the guess"
    press(at, "wi_guess_same")
    assert not any(b.key in GUESS_KEYS for b in at.button)

    # The numbers, from the model itself: the same to 1e-6.
    model = model_of(option)
    x = model_input(model)
    before = probabilities(model, x, Intervention(positions="zero"))
    after = probabilities(model, x, Intervention(positions="zero", shuffle=perm))
    np.testing.assert_allclose(after, before, atol=1e-6, rtol=0)
    top = int(np.argmax(before))
    name = state.class_label(model.class_names[top]) if model.class_names else f"class {top}"

    text = texts(at.success) + texts(at.info)
    assert "Your guess was right." in text, text
    assert f"The prediction stayed “{name}” and its probability moved by 0.0 points" in text, text
    assert "shuffling them changes nothing" in text
    shown = f"{before[top]:.1%}"
    assert metric(at, "Before").value == shown and metric(at, "After").value == shown


def test_shuffle_with_position_embeddings_is_explained_from_its_numbers() -> None:
    at = open_page()
    press(at, "wi_preset_shuffle")
    press(at, "wi_guess_changed")
    model = model_of(DEFAULT)
    x = model_input(model)
    before = probabilities(model, x, Intervention())
    after = probabilities(model, x, Intervention(shuffle=at.session_state["wi_shuffle"]))
    o = whatif.outcome(before, after)
    text = texts(at.success) + texts(at.info)
    delta = f"{round(o.delta * 100, 1):+.1f}".replace("-", "−") if round(o.delta * 100, 1) else "0.0"
    assert f"moved by {delta} points" in text, text
    assert ("Your guess was right." in text) == (o.verdict == "changed"), (o.verdict, text)
    if o.verdict in ("same", "small"):
        assert "the answer held" in text
    else:
        assert "its answer moves" in text


def test_hiding_patches_changes_the_after_prediction() -> None:
    at = open_page()
    at.toggle(key="wi_guessing").set_value(False)
    model = model_of(DEFAULT)
    x = model_input(model)
    image = vit.denormalize(x, model)
    ink = whatif.ink_patches(image, model.config.patch_size)
    assert ink, "the default sample has ink"
    at.session_state["wi_hide"] = list(ink)
    run(at)
    assert_no_exception(at, "after hiding the ink")
    before = probabilities(model, x, Intervention())
    after = probabilities(model, x, Intervention(hide=ink))
    top = int(np.argmax(before))
    assert abs(after[top] - before[top]) > 0.01, "hiding the ink should move the prediction"
    assert metric(at, "Before").value == f"{before[top]:.1%}"
    assert metric(at, "After").value == f"{after[top]:.1%}" != metric(at, "Before").value
    words = texts(at.info)
    assert f"{len(ink)} patches hidden" in words or f"{len(ink)} patch hidden" in words, words

    # A click on the grid toggles a patch: hide patch 1, then show it again with a second click.
    press(at, "wi_reset")
    for expected in ([0], []):
        at.session_state[at.session_state["wi_grid_key"]] = {"selection": {"points": [{"customdata": 0, "point_index": 0}]}}
        run(at)
        assert_no_exception(at, "after a click on the grid")
        assert at.session_state["wi_hide"] == expected
    at.session_state[at.session_state["wi_grid_key"]] = {"selection": {"points": [{"customdata": 0, "point_index": 0}]}}
    run(at)
    hidden_one = probabilities(model, x, Intervention(hide=(0,)))
    assert metric(at, "After").value == f"{hidden_one[top]:.1%}"
    assert "1 patch hidden" in texts(at.info)
    # ...and by number: patch 3 is hidden, then shown again; the box is empty after each choice
    for expected in ([0, 2], [0]):
        at.selectbox(key="wi_patch_pick").set_value(3)
        run(at)
        assert_no_exception(at, "after choosing a patch by number")
        assert at.session_state["wi_hide"] == expected and at.selectbox(key="wi_patch_pick").value is None


def test_the_ink_preset_asks_first_and_says_the_numbers() -> None:
    at = open_page()
    press(at, "wi_preset_ink")
    assert "Will hiding the ink change the prediction?" in texts(at.markdown)
    assert all(at.button(key=k) for k in GUESS_KEYS) and not at.metric
    press(at, "wi_guess_changed")
    assert len(at.metric) == 2 and "points" in texts(at.success) + texts(at.info)


def test_head_presets_switch_off_the_heads_they_name() -> None:
    at = open_page()
    press(at, "wi_preset_top-head")
    model = model_of(DEFAULT)
    x = model_input(model)
    effects = whatif.head_effects(model, x)
    assert at.session_state["wi_heads"] == [whatif.most_important_head(effects)]
    layer, head = at.session_state["wi_heads"][0]
    assert f"head L{layer + 1}·H{head + 1} off" in texts(at.info)
    assert "Will switching off the most important head change the prediction?" in texts(at.markdown)
    press(at, "wi_preset_random-head")
    (pair,) = at.session_state["wi_heads"]
    assert pair != (layer, head), "the random head is another one than the most important"
    # a click on the heads figure switches a head on again, and the box switches one off
    at.session_state[at.session_state["wi_heads_key"]] = {"selection": {"points": [{"customdata": list(pair)}]}}
    run(at)
    assert_no_exception(at, "after a click on the heads figure")
    assert at.session_state["wi_heads"] == []
    at.selectbox(key="wi_head_pick").set_value(model.config.heads + 1)  # layer 2, head 2
    run(at)
    assert at.session_state["wi_heads"] == [(1, 1)] and "head L2·H2 off" in texts(at.info)


def test_sanity_check_runs_on_request() -> None:
    at = open_page()
    assert not any(c.key == "wi_sanity_plot" for c in at.get("plotly_chart"))
    press(at, "wi_sanity")
    keys = [c.proto.id for c in at.get("plotly_chart")]
    assert any("wi_sanity_plot" in k for k in keys), keys
    assert "Changed when the weights became random" in said(at) or "Stayed similar" in said(at)


def test_korean_result_is_korean() -> None:
    at = open_page(lang="ko")
    press(at, "wi_preset_shuffle-no-positions")
    assert hangul(texts(at.markdown))
    press(at, "wi_guess_same")
    text = texts(at.success) + texts(at.info)
    assert hangul(text) and "prediction" not in text and "points" not in text, text
    assert re.search(r"0\.0", text), text


# --- every kind of model ------------------------------------------------------------------------------------


def test_a_model_without_a_head() -> None:
    cfg = vit.ViTConfig(image_size=24, patch_size=8, in_channels=3, dim=32, depth=2, heads=2, mlp_dim=64, num_classes=0)
    model = vit.VisionTransformer(cfg)
    model.meta = {"name": "headless", "mean": [0.5] * 3, "std": [0.5] * 3}
    at = app_with_model(vit.weights.prepare_for_inference(model, "cpu"))
    assert "no classification head" in texts(at.info)
    assert at.button(key="wi_preset_top-head").disabled
    for preset in ("shuffle", "ink", "random-head", "shuffle-no-positions"):
        press(at, f"wi_preset_{preset}")
        assert not any(b.key in GUESS_KEYS for b in at.button), "no prediction: nothing to guess"
        assert not at.metric
        keys = [c.proto.id for c in at.get("plotly_chart")]
        assert any("wi_attention" in k for k in keys) and any("wi_rollout" in k for k in keys), keys


def test_the_smallest_model() -> None:
    """One block, one head, one class and a single patch."""
    cfg = vit.ViTConfig(image_size=8, patch_size=8, in_channels=3, dim=8, depth=1, heads=1, mlp_dim=16, num_classes=1)
    model = vit.VisionTransformer(cfg)
    model.meta = {"name": "smallest", "mean": [0.5] * 3, "std": [0.5] * 3}
    model.class_names = ["only"]
    at = app_with_model(vit.weights.prepare_for_inference(model, "cpu"))
    at.toggle(key="wi_guessing").set_value(False)
    run(at)
    assert at.button(key="wi_preset_shuffle").disabled and at.button(key="wi_shuffle_on").disabled, \
        "one patch: nothing to shuffle"
    press(at, "wi_preset_ink")
    assert "ink" in texts(at.warning), "one patch is all ink or none: the page says so"
    for preset in ("not-ink", "top-head", "random-head", "reset"):
        press(at, "wi_reset" if preset == "reset" else f"wi_preset_{preset}")
    at.session_state["wi_hide"] = [0]
    at.session_state["wi_heads"] = [(0, 0)]
    run(at)
    assert_no_exception(at, "everything hidden and the only head off")
    assert "heads" not in texts(at.info) and "head L1·H1 off" in texts(at.info)
