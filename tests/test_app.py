"""The Streamlit app, page by page, without a browser (``streamlit.testing.v1.AppTest``).

Every page with the default sample, after an upload, after bad uploads, with every model option
(each bundled model, its untrained twin, or the random fallback when none is bundled, and a checkpoint
without a head from the teacher's models folder), and deep links. The expected numbers (N patches, token counts, ...) are
computed here from each model's configuration, not read back from the app.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import vit
from vit import claims
from vit.symbols import SYMBOL_CLASSES

from ui import frame, models, state

ROOT = Path(__file__).resolve().parent.parent
PAGE_KEYS = list(frame.STAGES)
PAGE_PATHS = {key: f"{frame.PAGES_DIR.name}/{frame.STAGES[key][0]}" for key in PAGE_KEYS}
assert PAGE_KEYS == ["patches", "embeddings", "positions", "attention", "encoder", "whatif"]
RANDOM_FALLBACK = models.RANDOM_FALLBACK
BUNDLED = vit.available_models()
BASE_NAMES = BUNDLED or [RANDOM_FALLBACK]
MODEL_OPTIONS = BASE_NAMES + [name + models.UNTRAINED for name in BASE_NAMES]
SYMBOLS = models.SYMBOLS_MODEL
NOT_KNOWN = ("Not recognised", "No digit or arrow", "Nothing it knows")  # the Prediction metric without an answer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- helpers ---------------------------------------------------------------------------------------


def new_app(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def visit(at: AppTest, key: str) -> AppTest:
    return at.switch_page(f"{frame.PAGES_DIR.name}/{frame.START[0]}" if key == "start" else PAGE_PATHS[key]).run()


def assert_no_exception(at: AppTest, where: str) -> None:
    if at.exception:
        text = "\n\n".join(f"{e.value}\n{''.join(e.stack_trace)}" for e in at.exception)
        pytest.fail(f"{where}: the app raised\n{text}")


def shown(markdown: str) -> str:
    """Markdown as a reader sees it: user text (file names) is backslash-escaped by the app, shown without
    (and a zero-width space that keeps a bare web address from becoming a link is invisible)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")


def sidebar_caption(at: AppTest) -> str:
    """The caption under the sidebar's image: the label of the session's image."""
    captions = [shown(c) for image in at.sidebar.image for c in image.captions]
    assert captions, "the sidebar shows no image (frame.sidebar() did not run on this page)"
    return captions[0]


def sidebar_text(at: AppTest) -> str:
    return "\n".join(shown(m.value) for m in at.sidebar.markdown)


def default_label() -> str:
    path = state.default_sample()
    return f"sample: {state.sample_label(path)}" if path is not None else "random noise (no samples found)"


def base_name(option: str) -> str:
    return option[: -len(models.UNTRAINED)] if option.endswith(models.UNTRAINED) else option


_CONFIGS: dict[str, vit.ViTConfig] = {}
_CLASSES: dict[str, list[str] | None] = {}


def config_of(option: str) -> vit.ViTConfig:
    """The configuration of a model option, read from its checkpoint (or the fallback's preset)."""
    name = base_name(option)
    if name not in _CONFIGS:
        if name == RANDOM_FALLBACK:
            _CONFIGS[name] = vit.ViTConfig.preset("tiny-shapes")
            _CLASSES[name] = [f"class {i}" for i in range(10)]
        else:
            model = vit.load_model(name, device="cpu")
            _CONFIGS[name], _CLASSES[name] = model.config, list(model.class_names or []) or None
    return _CONFIGS[name]


def shapes(cfg: vit.ViTConfig) -> dict[str, int]:
    grid = cfg.image_size // cfg.patch_size
    n = grid * grid
    return dict(S=cfg.image_size, P=cfg.patch_size, C=cfg.in_channels, G=grid, N=n, V=cfg.patch_size ** 2 * cfg.in_channels,
                T=n + 1, D=cfg.dim, L=cfg.depth, H=cfg.heads, Dh=cfg.dim // cfg.heads, M=cfg.mlp_dim)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def check_page(at: AppTest, key: str, cfg: vit.ViTConfig, *, label: str, model_label: str) -> None:
    """What every page must show for this model: its title, the paper's equation, live shapes, the sidebar."""
    where = f"page {key!r} with model {model_label!r}"
    assert_no_exception(at, where)
    assert not at.error, f"{where}: unexpected error: {texts(at.error)}"
    s = shapes(cfg)
    titles = texts(at.title)
    info = texts(at.info)
    if key == "start":
        assert "ViT Explorer" in titles
        assert len(at.page_link) == len(PAGE_KEYS), f"{where}: expected a link to each stage"
        captions = texts(at.caption)
        for expected in (f"{s['S']}×{s['S']}×{s['C']} image → {s['N']} patches × {s['V']} values",
                         f"{s['T']} × {s['D']}", f"{s['L']} blocks × {s['H']} heads", f"{s['T']}×{s['T']}"):
            assert expected in captions, f"{where}: pipeline lacks {expected!r}:\n{captions}"
        assert f"D = {s['D']}" in texts(at.markdown), f"{where}: the model card lacks D = {s['D']}"
    else:
        assert at.latex, f"{where}: no equation"
        expected_title = {"patches": "patches", "embeddings": "linear projection", "positions": "position embeddings",
                          "attention": "attention", "encoder": "encoder", "whatif": "what if"}[key]
        assert expected_title in titles.lower(), f"{where}: title {titles!r}"
        wanted = {
            "patches": [f"{s['N']} patches × {s['V']} values", f"({s['N']}, {s['V']})", f"class] token: {s['T']}"],
            "embeddings": [f"({s['N']}, {s['V']})", f"({s['V']}, {s['D']})", f"({s['T']}, {s['D']})"],
            "positions": [f"({s['T']}, {s['D']})", f"({s['N']}, {s['N']})", f"{s['G']}×{s['G']} tiles"],
            "attention": [f"{s['L']} layers × {s['H']} heads", f"({s['T']}, {s['T']})", f"({s['T']}, {s['Dh']})"],
            "encoder": [],
            "whatif": [],
        }[key]
        for expected in wanted:
            assert expected in info, f"{where}: live shapes lack {expected!r}:\n{info}"
        if key == "encoder":
            assert f"{s['D']} → {s['M']} → {s['D']}" in texts(at.markdown), f"{where}: the MLP's shapes are missing"
        if key == "attention":
            assert at.slider(key="layer").max == s["L"] and at.slider(key="head").max == s["H"]
    assert sidebar_caption(at) == label, f"{where}: sidebar image is {sidebar_caption(at)!r}, expected {label!r}"
    assert model_label in sidebar_text(at), f"{where}: the sidebar does not name the model"


def png_bytes(width: int = 96, height: int = 72, seed: int = 1) -> bytes:
    """A small, distinctive RGB picture: a gradient with a coloured square."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 90)], -1).astype(np.uint8)
    a, b = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    rgb[a:a + height // 3, b:b + width // 3] = rng.integers(0, 255, 3, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(buf, format="JPEG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header declares 900 megapixels (valid CRCs, almost no pixel data)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    return at.file_uploader(key="upload").set_value((name, data, mime)).run()


# --- the default sample, page by page ------------------------------------------------------------


@pytest.fixture(scope="module")
def default_app() -> AppTest:
    return new_app()


@pytest.mark.parametrize("key", ["start"] + PAGE_KEYS)
def test_every_page_with_the_default_sample(default_app: AppTest, key: str) -> None:
    at = visit(default_app, key)
    name = models.default_model_name()
    check_page(at, key, config_of(name), label=default_label(), model_label=name)


def test_start_page_offers_every_model() -> None:
    at = new_app()
    options = at.selectbox(key="model_name").options
    assert options[: len(MODEL_OPTIONS)] == MODEL_OPTIONS
    assert set(options) - set(MODEL_OPTIONS) <= {models.UPLOADED} | set(models.folder_models())
    assert at.selectbox(key="model_name").value == models.default_model_name()
    if BUNDLED:
        assert RANDOM_FALLBACK not in options, "the random fallback is only for a checkout without bundled models"


# --- uploads ---------------------------------------------------------------------------------------


def test_upload_is_used_on_every_page() -> None:
    at = new_app()
    upload(at, "student.png", png_bytes(96, 72))
    assert_no_exception(at, "upload")
    assert not at.error, texts(at.error)
    name = models.default_model_name()
    for key in PAGE_KEYS + ["start"]:
        visit(at, key)
        check_page(at, key, config_of(name), label="upload: student.png", model_label=name)
        if key == "patches":
            given = [shown(c) for image in at.main.image for c in image.captions]
            assert any("upload: student.png" in c and "96×72" in c for c in given), given


BAD_UPLOADS = {
    "text named .png": (b"Dear teacher, this is my homework.\n" * 20, "image/png", ("not an image", "format")),
    "truncated JPEG": (truncated_jpeg(), "image/jpeg", ("damaged", "cut off", "truncated")),
    "decompression bomb": (bomb_png(), "image/png", ("megapixel", "too large", "limit")),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_shows_an_error_and_keeps_the_image(case: str) -> None:
    data, mime, hints = BAD_UPLOADS[case]
    at = new_app()
    upload(at, "first.png", png_bytes(80, 80, seed=2))
    assert not at.error and sidebar_caption(at) == "upload: first.png"

    upload(at, "broken.png" if mime == "image/png" else "broken.jpg", data, mime)
    assert_no_exception(at, case)
    assert len(at.error) == 1, f"{case}: expected one error, got {texts(at.error)!r}"
    message = at.error[0].value
    assert len(message) > 30 and "Traceback" not in message and "PIL" not in message, message
    assert any(h in message.lower() for h in hints), f"{case}: unhelpful message {message!r}"
    assert sidebar_caption(at) == "upload: first.png", "a bad upload must keep the previous image"
    visit(at, "patches")
    assert_no_exception(at, f"{case}, then the patches page")
    assert sidebar_caption(at) == "upload: first.png"

    visit(at, "start")
    upload(at, "second.png", png_bytes(64, 48, seed=3))
    assert_no_exception(at, f"{case}, then a good upload")
    assert not at.error, texts(at.error)
    assert sidebar_caption(at) == "upload: second.png"


# --- every model option ------------------------------------------------------------------------------


@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_every_page_with_each_model(option: str) -> None:
    cfg = config_of(option)
    untrained = option.endswith(models.UNTRAINED) or base_name(option) == RANDOM_FALLBACK
    at = new_app()
    at.selectbox(key="model_name").set_value(option).run()
    check_page(at, "start", cfg, label=default_label(), model_label=option)
    for key in PAGE_KEYS:
        visit(at, key)
        check_page(at, key, cfg, label=default_label(), model_label=option)
        if key == "positions":
            headings = texts(at.subheader)
            # A trained model is compared with its untrained twin; an untrained one is told to choose a trained one.
            assert ("Compare with a trained model" in headings) == untrained, headings
            # The choice survives a rerun on a page that has no model selector.
            at.slider(key="position").set_value(0).run()
            check_page(at, key, cfg, label=default_label(), model_label=option)
        if key == "encoder" and cfg.num_classes:
            metric = next((m for m in at.metric if m.label == "Prediction"), None)
            assert metric is not None, "the encoder page shows no prediction"
            names = _CLASSES[base_name(option)] or [f"class {i}" for i in range(cfg.num_classes)]
            assert metric.value in names or metric.value in NOT_KNOWN, metric.value
            if metric.value in NOT_KNOWN:
                assert "it would say" in texts(at.caption), "an image that is not recognised still gets the forced guess"
            assert ("untrained" in texts(at.warning).lower()) == untrained
            lens = texts(at.caption)
            assert f"{cfg.depth}: " in lens, "the logit lens should list blocks 0 to L"
    visit(at, "start")
    assert at.selectbox(key="model_name").value == option, "the model choice was lost on the way back"


def test_folder_checkpoint_without_a_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A teacher's checkpoint (VIT_EXPLORER_MODELS_DIR) is chosen by name, never by a typed path."""
    cfg = vit.ViTConfig(image_size=24, patch_size=8, in_channels=3, dim=32, depth=2, heads=2, mlp_dim=64, num_classes=0)
    model = vit.VisionTransformer(cfg)
    model.meta = {"name": "mini", "mean": [0.5] * 3, "std": [0.5] * 3}
    path = vit.save_model(model, tmp_path / "models" / "mini").with_suffix(".safetensors")
    assert path.is_file()
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(path.parent))

    at = new_app()
    assert_no_exception(at, "the start page with a models folder")
    assert "mini" in at.selectbox(key="model_name").options
    assert not at.text_input, "nobody types a server path"
    at.selectbox(key="model_name").set_value("mini").run()
    assert_no_exception(at, "a folder checkpoint")
    assert not at.error, texts(at.error)
    check_page(at, "start", cfg, label=default_label(), model_label="mini")
    for key in PAGE_KEYS:
        visit(at, key)
        check_page(at, key, cfg, label=default_label(), model_label="mini")
    assert not [m for m in at.metric if m.label == "Prediction"], "a model without a head cannot predict"
    assert "no classification head" in texts(at.info)


# --- "I don't know", and claims that follow the model ---------------------------------------------------


def constructed_model(favourite: str | None, rule: dict | None, dataset: str = "symbols") -> vit.VisionTransformer:
    """A small model with the symbols' classes whose answer is fixed by its head's bias, whatever the image:
    ``favourite`` gets a logit of 8 (about 98%), or no class stands out (each about 1/15)."""
    cfg = vit.ViTConfig(image_size=32, patch_size=8, in_channels=3, dim=32, depth=2, heads=2, mlp_dim=64,
                        num_classes=len(SYMBOL_CLASSES))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = vit.VisionTransformer(cfg)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        if favourite is not None:
            model.head.bias[SYMBOL_CLASSES.index(favourite)] = 8.0
    model.class_names = list(SYMBOL_CLASSES)
    model.meta = {"name": "constructed", "dataset": dataset, "mean": [0.5] * 3, "std": [0.5] * 3, "resize": "pad"}
    if rule is not None:
        model.meta["known_rule"] = rule
    return vit.weights.prepare_for_inference(model, "cpu")


def app_with_model(model: vit.VisionTransformer, page: str) -> AppTest:
    """The app with ``model`` as the session's own checkpoint, opened on ``page``."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["user_model"] = {"model": model, "key": "session:constructed", "label": "constructed"}
    at.session_state["model_selected"] = models.UPLOADED
    at.run()
    assert_no_exception(at, "start page with a constructed model")
    visit(at, page)
    assert_no_exception(at, f"{page} page with a constructed model")
    return at


def test_the_smallest_model_on_every_page() -> None:
    """One block, one head, one class and a single patch: sliders with a single value are a plain line."""
    cfg = vit.ViTConfig(image_size=8, patch_size=8, in_channels=3, dim=8, depth=1, heads=1, mlp_dim=16, num_classes=1)
    model = vit.VisionTransformer(cfg)
    model.meta = {"name": "smallest", "mean": [0.5] * 3, "std": [0.5] * 3}
    model.class_names = ["only"]
    at = app_with_model(vit.weights.prepare_for_inference(model, "cpu"), "start")
    for key in PAGE_KEYS:
        visit(at, key)
        assert_no_exception(at, f"{key} page with a one-block, one-head model")
        assert not at.error, texts(at.error)
    visit(at, "attention")
    assert "Layer: **1**" in texts(at.markdown) and "Head: **1**" in texts(at.markdown)


RULE = {"score": "max_prob", "threshold": 0.5, "nothing_class": "nothing", "keep": 0.97}


@pytest.mark.parametrize("case, favourite, rule, shown, words", [
    ("known", "3", RULE, "3", ["Recognised", "reaches the threshold of 50.0%"]),
    ("not recognised", None, RULE, "Not recognised", ["Not sure enough", "hand-drawn or printed digits",
                                                      "A softmax always picks one of its classes",
                                                      "is below the threshold of 50.0%"]),
    ("nothing", "nothing", RULE, "No digit or arrow", ["The class *nothing* won", "sees no digit or arrow"]),
    ("impossible threshold", "3", {**RULE, "threshold": 1.01}, "Not recognised", ["is below the threshold of 101.0%"]),
    ("no rule", "3", None, "3", ["No \"I don't know\" rule was calibrated for this model"]),
])
def test_prediction_says_when_it_does_not_know(case, favourite, rule, shown, words) -> None:
    at = app_with_model(constructed_model(favourite, rule), "encoder")
    metrics = [m for m in at.metric if m.label == "Prediction"]
    assert len(metrics) == 1 and metrics[0].value == shown, f"{case}: {[m.value for m in metrics]}"
    said = "\n".join([texts(at.info), texts(at.caption), texts(at.markdown)])
    for w in words:
        assert w in said, f"{case}: the page does not say {w!r}:\n{said}"
    forced = "it would say “3” (" if favourite == "3" else "it would say “"
    assert (forced in texts(at.caption)) == (shown in NOT_KNOWN), f"{case}: the forced guess, in small print only without an answer"
    if favourite == "nothing":
        assert "“nothing”" not in texts(at.caption), "the forced guess is a real class, never 'nothing'"
    assert at.get("plotly_chart"), "the top-k chart stays: it is the truth about the softmax"


def grid_position_embeddings(g: int, dim: int) -> torch.Tensor:
    """(1, g*g + 1, dim) embeddings that fall off smoothly with grid distance (a bump around each
    position's place on the grid): a clear 2-D grid."""
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    places = torch.stack([rows.reshape(-1), cols.reshape(-1)], 1).float()
    bumps = torch.exp(-torch.cdist(places, places) ** 2 / 2)  # (g*g, g*g)
    pos = torch.zeros(g * g + 1, dim)
    pos[1:, : g * g] = bumps
    return pos[None]


def test_positions_claim_follows_the_verdict() -> None:
    """The positions page says what the loaded model shows: a clear grid, or plainly that it shows none."""
    structured = constructed_model("3", RULE)
    g = structured.config.grid_size
    with torch.no_grad():
        structured.pos_embed.copy_(grid_position_embeddings(g, structured.config.dim))
    cases = [("structured", structured, "clear", "This model has learned the grid too"),
             ("random", constructed_model("3", RULE), "none", "This model does not show the grid")]
    for name, model, verdict, wording in cases:
        with torch.no_grad():
            claim = claims.position_claim(model.position_embeddings_for((g, g)), (g, g))
        assert claim.verdict == verdict, f"{name}: the test's model should be {verdict}, not {claim}"
        at = app_with_model(model, "positions")
        said = texts(at.markdown)
        assert wording in said, f"{name}: {said}"
        assert f"chance level of {claim.chance:.2f}" in said and f"{claim.spearman:+.2f}" in said
        assert "learns the 2-D grid" not in said


def test_untrained_twin_does_not_show_the_papers_effects() -> None:
    option = models.default_model_name() + models.UNTRAINED
    at = new_app(model=option)
    name = models.default_model_name()
    twin = vit.untrained_like(vit.load_model(name, device="cpu")) if name in BUNDLED else models.shared_model(option)
    g = twin.config.grid_size
    with torch.no_grad():
        claim = claims.position_claim(twin.position_embeddings_for((g, g)), (g, g))
    assert claim.verdict == "none"
    visit(at, "positions")
    assert "This model does not show the grid" in texts(at.markdown)
    help_text = next(m for m in at.metric if m.label == "Neighbour score").help
    assert f"about {claims.neighbour_chance((g, g)):.2f}" in help_text and "8/N" not in help_text
    visit(at, "embeddings")
    assert "This model is untrained" in texts(at.markdown) and "pure noise" not in texts(at.markdown)
    visit(at, "attention")
    uniform = claims.uniform_attention_distance((g, g), twin.config.patch_size)
    said = texts(at.markdown)
    assert f"would give {uniform:.1f} px" in said and "already global in the first layer" not in said
    assert "This model does not show local and global heads" in said


# --- the symbol model and the camera -------------------------------------------------------------------


@pytest.mark.skipif(SYMBOLS not in BUNDLED, reason=f"{SYMBOLS} is not bundled")
def test_symbol_model_is_the_default_with_a_drawing_and_the_camera() -> None:
    assert models.default_model_name() == SYMBOLS
    assert state.default_sample().stem.startswith("symbols-")
    groups = state.sample_groups(state.sample_files())
    assert f"Drawings (what {SYMBOLS} knows)" in groups
    at = new_app()
    assert_no_exception(at, "start page")
    assert at.selectbox(key="model_name").value == SYMBOLS
    invitation = texts(at.markdown)
    assert "draw a digit" in invitation.lower() and "**Camera**" in invitation, invitation
    assert "The whole photo is padded to a square" in texts(at.caption), "the Camera tab says the drawing stays whole"
    assert at.radio(key="fit").value == "pad", "the model's own fit keeps a 4:3 drawing whole"
    # Until the user chooses, the fit follows the model; once chosen, it stays.
    at.selectbox(key="model_name").set_value("vit-tiny-shapes" if "vit-tiny-shapes" in BUNDLED else SYMBOLS + models.UNTRAINED).run()
    expected = vit.load_model(base_name(at.selectbox(key="model_name").value), device="cpu").meta.get("resize", "crop")
    assert at.radio(key="fit").value == expected
    at.radio(key="fit").set_value("squash").run()
    at.selectbox(key="model_name").set_value(SYMBOLS).run()
    assert at.radio(key="fit").value == "squash"
    assert "Choose *Pad to a square*" in texts(at.caption)


# --- deep links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer, head", [("2", "3"), ("99", "0"), ("two", "")])
def test_deep_link_opens_the_attention_view(layer: str, head: str) -> None:
    cfg = config_of(models.default_model_name())

    def expect(text: str) -> int:
        try:
            return min(max(int(text), 1), {"layer": cfg.depth, "head": cfg.heads}[which])
        except ValueError:
            return 1

    at = new_app(layer=layer, head=head)
    visit(at, "attention")
    assert_no_exception(at, f"?layer={layer}&head={head}")
    for which, text in (("layer", layer), ("head", head)):
        assert at.slider(key=which).value == expect(text), f"?{which}={text}"
    assert at.query_params.get("layer") == str(expect(layer)), "the URL should show the layer in view"


def test_attention_matrix_is_drawn_on_request() -> None:
    at = visit(new_app(), "attention")
    charts = len(at.get("plotly_chart"))
    at.toggle(key="show_matrix").set_value(True).run()
    assert_no_exception(at, "attention matrix shown")
    assert len(at.get("plotly_chart")) == charts + 1, "turning the toggle on should add the attention matrix"
    at.slider(key="layer").set_value(at.slider(key="layer").max).run()
    assert_no_exception(at, "attention matrix of the last layer")
    assert len(at.get("plotly_chart")) == charts + 1


def test_deep_link_to_a_sample_and_a_model() -> None:
    samples = state.sample_files()
    if len(samples) < 2:
        pytest.skip("needs two sample images")
    sample = next(p for p in samples if p != state.default_sample())
    model = MODEL_OPTIONS[-1]
    at = new_app(sample=sample.name, model=model)
    assert_no_exception(at, "?sample=&model=")
    assert sidebar_caption(at) == f"sample: {state.sample_label(sample)}"
    assert at.selectbox(key="model_name").value == model


def test_server_settings_keep_reruns_cheap() -> None:
    """A full gc.collect() after every run holds the GIL for 100+ ms with torch and plotly loaded, on
    every slider step of every student: the server turns it off and freezes its start-up objects."""
    import gc
    import tomllib

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["runner"]["postScriptGC"] is False
    assert settings["server"]["fileWatcherType"] == "none"
    at = new_app()
    assert_no_exception(at, "start page")
    assert gc.get_freeze_count() > 10_000  # torch, numpy, plotly and Streamlit's own objects


# --- both languages ------------------------------------------------------------------------------------


def hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


@pytest.mark.parametrize("key", ["start", *PAGE_KEYS])
def test_every_page_in_both_languages(key: str) -> None:
    """Every page runs in English and Korean; in Korean its title, navigation and sidebar are Korean,
    and the language stays in the URL while the student moves between pages."""
    from vit import i18n

    for lang in ("en", "ko"):
        with i18n.use_language(lang):  # AppTest formats widget options in this thread
            at = new_app(lang=lang)
            visit(at, key)
        assert_no_exception(at, f"{key} in {lang}")
        title = texts(at.title)
        assert hangul(title) == (lang == "ko") or key == "start", f"{key} in {lang}: title {title!r}"
        assert at.query_params["lang"] == [lang] or at.query_params["lang"] == lang, at.query_params
        assert hangul(sidebar_text(at)) == (lang == "ko"), f"{key} in {lang}: sidebar {sidebar_text(at)!r}"


def test_the_browser_language_is_the_default_and_the_switch_changes_it() -> None:
    at = new_app()
    assert at.query_params["lang"] in ("en", ["en"]), "AppTest has no browser locale: English"
    at.segmented_control(key="lang_switch").set_value("ko").run()  # widgets are read in English, as shown
    assert_no_exception(at, "after the switch")
    assert at.query_params["lang"] in ("ko", ["ko"]) and hangul(texts(at.markdown))


# --- hostile text and unexpected errors ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["[click me](https://example.org).png", "![t](http://127.0.0.1:9/x.png).png",
                                  "$\\rule{2000px}{2000px}$.png", "<img src=x onerror=alert(1)>.png"])
def test_a_file_name_is_shown_as_text(name: str) -> None:
    """An upload's file name is the user's text: in every markdown and caption it is escaped, so it can be
    no link, no image fetched from elsewhere, no formula and no HTML; a reader sees the name itself."""
    at = new_app()
    upload(at, name, png_bytes(40, 30))
    assert_no_exception(at, name)
    shown_texts = [c for image in at.sidebar.image for c in image.captions] + [m.value for m in at.markdown]
    carrying = [t for t in shown_texts if shown(t).find(name) >= 0]
    assert carrying, f"the file name {name!r} is not shown at all"
    for t in carrying:
        raw = t[t.find("upload: ") + len("upload: "):] if "upload: " in t else t
        assert not re.search(r"(?<!\\)[\[\]()$<>!]", raw.split(" · ")[0]), f"unescaped markup in {t!r}"


def test_an_unexpected_error_shows_an_apology_not_a_traceback(monkeypatch) -> None:
    from ui import compute

    at = new_app()

    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/path: something internal")

    monkeypatch.setattr(compute, "_shared_trace", broken)
    visit(at, "attention")
    assert not at.exception, "the error reached Streamlit, which would show its traceback"
    said = texts(at.error)
    assert "Sorry, something went wrong" in said and "/srv/secret" not in said and "Traceback" not in said
    assert at.button(key="start_over")
    monkeypatch.undo()
    at.button(key="start_over").click().run()
    assert_no_exception(at, "after starting over")
    assert not at.error and sidebar_caption(at) == default_label()


def test_the_shipped_config_hides_tracebacks() -> None:
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] in ("none", "type")


@pytest.mark.parametrize("size", [(1000, 6), (4000, 1), (3, 3)])
def test_extreme_shapes_display_on_every_page(size) -> None:
    """Images the loader accepts but a browser cannot show as they are (160:1 and worse) are shown as a
    bounded, padded picture: no page fails, and every picture the app sends is at most 16:1 and 1600 px."""
    from ui.widgets import display_image

    shown_image = display_image(Image.new("RGB", size, "red"))
    w, h = shown_image.size
    assert max(w, h) <= 1600 and max(w, h) <= 16 * min(w, h), (size, shown_image.size)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    at = new_app()
    upload(at, "odd.png", buf.getvalue())
    assert sidebar_caption(at) == "upload: odd.png", "the odd image should be the session's image"
    for key in ["start", *PAGE_KEYS]:
        visit(at, key)
        assert_no_exception(at, f"{key} with a {size[0]}×{size[1]} image")


def test_a_large_upload_is_kept_at_a_bounded_size() -> None:
    """A session keeps at most KEPT_SIDE pixels on the longest side of an upload, and says so."""
    buf = io.BytesIO()
    Image.new("RGB", (5000, 400), "navy").save(buf, "PNG")
    at = new_app()
    upload(at, "wide.png", buf.getvalue())
    assert sidebar_caption(at) == "upload: wide.png"
    kept = at.session_state["image"].image
    assert kept.size == (state.KEPT_SIDE, round(400 * state.KEPT_SIDE / 5000)), kept.size
    shown = "\n".join([texts(at.info), texts(at.caption), texts(at.markdown)])
    assert "reduced from 5000×400 to 2048×164 pixels" in shown, shown
