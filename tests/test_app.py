"""The Streamlit app, page by page, without a browser (``streamlit.testing.v1.AppTest``).

Every page with the default sample, after an upload, after bad uploads, with every model option
(each bundled model, its untrained twin, or the random fallback when none is bundled, and a local
checkpoint without a head), and deep links. The expected numbers (N patches, token counts, ...) are
computed here from each model's configuration, not read back from the app.
"""

from __future__ import annotations

import importlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import vit

ROOT = Path(__file__).resolve().parent.parent
# The package that holds the pages and their shared state ("pages" today; found by content so a rename
# of the folder does not silently skip every test).
_COMMON = next(p for p in sorted(ROOT.glob("*/common.py")) if "PAGES" in p.read_text())
common = importlib.import_module(f"{_COMMON.parent.name}.common")

PAGE_KEYS = ["patches", "embeddings", "positions", "attention", "encoder"]
PAGE_PATHS = {key: common.PAGES[key][0] for key in PAGE_KEYS}
RANDOM_FALLBACK = "tiny-shapes (random)"
BUNDLED = vit.available_models()
BASE_NAMES = BUNDLED or [RANDOM_FALLBACK]
MODEL_OPTIONS = BASE_NAMES + [name + common.UNTRAINED for name in BASE_NAMES]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- helpers ---------------------------------------------------------------------------------------


def new_app(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def visit(at: AppTest, key: str) -> AppTest:
    if key != "start":
        return at.switch_page(PAGE_PATHS[key]).run()
    # The start page is a function page (st.Page(start_page)); AppTest.switch_page only takes files, so
    # ask for the page st.navigation registered without a script path, as the browser does for "/".
    start = [h for h, info in at._registered_pages.items() if not info.get("script_path")]
    assert len(start) == 1, f"cannot find the start page among {at._registered_pages}"
    at._page_hash = start[0]
    return at.run()


def assert_no_exception(at: AppTest, where: str) -> None:
    if at.exception:
        text = "\n\n".join(f"{e.value}\n{''.join(e.stack_trace)}" for e in at.exception)
        pytest.fail(f"{where}: the app raised\n{text}")


def sidebar_caption(at: AppTest) -> str:
    """The caption under the sidebar's image: the label of the session's image."""
    captions = [c for image in at.sidebar.image for c in image.captions]
    assert captions, "the sidebar shows no image (common.sidebar() did not run on this page)"
    return captions[0]


def sidebar_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def default_label() -> str:
    path = common.default_sample()
    return f"sample: {path.stem}" if path is not None else "random noise (no samples found)"


def base_name(option: str) -> str:
    return option[: -len(common.UNTRAINED)] if option.endswith(common.UNTRAINED) else option


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
                          "attention": "attention", "encoder": "encoder"}[key]
        assert expected_title in titles.lower(), f"{where}: title {titles!r}"
        wanted = {
            "patches": [f"{s['N']} patches × {s['V']} values", f"({s['N']}, {s['V']})", f"class] token: {s['T']}"],
            "embeddings": [f"({s['N']}, {s['V']})", f"({s['V']}, {s['D']})", f"({s['T']}, {s['D']})"],
            "positions": [f"({s['T']}, {s['D']})", f"({s['N']}, {s['N']})", f"{s['G']}×{s['G']} tiles"],
            "attention": [f"{s['L']} layers × {s['H']} heads", f"({s['T']}, {s['T']})", f"({s['T']}, {s['Dh']})"],
            "encoder": [],
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
    name = common.default_model_name()
    check_page(at, key, config_of(name), label=default_label(), model_label=name)


def test_start_page_offers_every_model() -> None:
    at = new_app()
    options = at.selectbox(key="model_name").options
    assert options[: len(MODEL_OPTIONS)] == MODEL_OPTIONS
    assert set(options) - set(MODEL_OPTIONS) <= {common.LOCAL}
    assert at.selectbox(key="model_name").value == common.default_model_name()
    if BUNDLED:
        assert RANDOM_FALLBACK not in options, "the random fallback is only for a checkout without bundled models"


# --- uploads ---------------------------------------------------------------------------------------


def test_upload_is_used_on_every_page() -> None:
    at = new_app()
    upload(at, "student.png", png_bytes(96, 72))
    assert_no_exception(at, "upload")
    assert not at.error, texts(at.error)
    name = common.default_model_name()
    for key in PAGE_KEYS + ["start"]:
        visit(at, key)
        check_page(at, key, config_of(name), label="upload: student.png", model_label=name)
        if key == "patches":
            given = [c for image in at.main.image for c in image.captions]
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
    untrained = option.endswith(common.UNTRAINED) or base_name(option) == RANDOM_FALLBACK
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
            assert metric.value in names, metric.value
            assert ("untrained" in texts(at.warning).lower()) == untrained
            lens = texts(at.caption)
            assert f"{cfg.depth}: " in lens, "the logit lens should list blocks 0 to L"
    visit(at, "start")
    assert at.selectbox(key="model_name").value == option, "the model choice was lost on the way back"


@pytest.mark.skipif(not common.ALLOW_LOCAL_MODELS, reason="local checkpoints are switched off")
def test_local_checkpoint_without_a_head(tmp_path: Path) -> None:
    cfg = vit.ViTConfig(image_size=24, patch_size=8, in_channels=3, dim=32, depth=2, heads=2, mlp_dim=64, num_classes=0)
    model = vit.VisionTransformer(cfg)
    model.meta = {"name": "mini", "mean": [0.5] * 3, "std": [0.5] * 3}
    path = vit.save_model(model, tmp_path / "mini").with_suffix(".safetensors")
    assert path.is_file()

    at = new_app()
    at.selectbox(key="model_name").set_value(common.LOCAL).run()
    at.text_input(key="local_path").set_value(str(tmp_path / "nowhere")).run()
    at.button(key="load_local").click().run()
    assert_no_exception(at, "a wrong checkpoint path")
    assert at.error and "nowhere" in at.error[0].value, texts(at.error)

    at.text_input(key="local_path").set_value(str(path)).run()
    at.button(key="load_local").click().run()
    assert_no_exception(at, "a local checkpoint")
    assert not at.error, texts(at.error)
    check_page(at, "start", cfg, label=default_label(), model_label=path.name)
    for key in PAGE_KEYS:
        visit(at, key)
        check_page(at, key, cfg, label=default_label(), model_label=path.name)
    assert not [m for m in at.metric if m.label == "Prediction"], "a model without a head cannot predict"
    assert "no classification head" in texts(at.info)


# --- deep links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer, head", [("2", "3"), ("99", "0"), ("two", "")])
def test_deep_link_opens_the_attention_view(layer: str, head: str) -> None:
    cfg = config_of(common.default_model_name())

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
    samples = common.sample_files()
    if len(samples) < 2:
        pytest.skip("needs two sample images")
    sample = next(p for p in samples if p != common.default_sample())
    model = MODEL_OPTIONS[-1]
    at = new_app(sample=sample.name, model=model)
    assert_no_exception(at, "?sample=&model=")
    assert sidebar_caption(at) == f"sample: {sample.stem}"
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
