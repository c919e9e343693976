"""What every page shares: the chosen image and model, cached models and traces, the sidebar.

Models are shared across sessions in ``st.cache_resource`` and never changed after loading.
Traces are shared in ``st.cache_data`` only under a key made of the model's name and a hash of
the image's pixels, so a session can only ever get results for an image it supplied itself.
A model a user loads from their own files stays in that user's session.
"""

from __future__ import annotations

import gc
import hashlib
import io
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image, ImageOps

import vit
from vit import analysis
from vit.images import ImageError, load_image_info

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = ROOT / "assets" / "samples"
SAMPLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
UNTRAINED = " (untrained)"
LOCAL = "Local checkpoint…"
FITS = {"crop": "Crop the centre", "pad": "Pad to a square", "squash": "Squash to a square"}
SYMBOLS_MODEL = "vit-tiny-symbols"
DEFAULT_MODELS = (SYMBOLS_MODEL, "vit-tiny-shapes")  # the first one bundled is the default
DEFAULT_SAMPLES = {SYMBOLS_MODEL: "symbols-3", "vit-tiny-shapes": "shapes-arrow-up"}  # a sample each knows
SAMPLE_GROUPS = {  # file-name prefix: gallery heading; the rest are photos
    "symbols-": f"Drawings (what {SYMBOLS_MODEL} knows)",
    "fashion-": "Fashion-MNIST (what vit-tiny-fashion knows)",
    "shapes-": "Generated shapes (what vit-tiny-shapes knows)",
}
TRAINED_ON = {  # a model's meta["dataset"]: what it was trained on, in plain words
    "symbols": "hand-drawn or printed digits 0–9 and arrows (up, down, left, right) on paper, a whiteboard or a "
               "screen, held up to a camera",
    "shapes": "generated pictures of arrows, L-shapes, circles and crosses",
    "fashion-mnist": "10 kinds of clothing, photographed as light items on a black background, 28×28 px in grayscale",
}
MAX_CONCURRENT = int(os.environ.get("VIT_EXPLORER_CONCURRENCY", "2"))
ALLOW_LOCAL_MODELS = os.environ.get("VIT_EXPLORER_LOCAL_MODELS", "1") != "0"

PAGES = {
    "patches": ("pages/patches.py", "1. Patches", ":material/grid_on:"),
    "embeddings": ("pages/embeddings.py", "2. Embeddings", ":material/linear_scale:"),
    "positions": ("pages/positions.py", "3. Position embeddings", ":material/pin_drop:"),
    "attention": ("pages/attention.py", "4. Attention", ":material/visibility:"),
    "encoder": ("pages/encoder.py", "5. Encoder & prediction", ":material/account_tree:"),
}
SHORT_TITLES = {"patches": "Patches", "embeddings": "Embedding", "positions": "Positions",
                "attention": "Attention", "encoder": "Prediction"}


# --- process-wide setup -----------------------------------------------------------------------------


@st.cache_resource
def configure_torch() -> int:
    """Set torch's CPU threads once, at start-up, for the whole server."""
    threads = int(os.environ.get("VIT_EXPLORER_THREADS", "0")) or max(1, (os.cpu_count() or 2) // max(1, MAX_CONCURRENT))
    torch.set_num_threads(threads)
    return threads


@st.cache_resource
def freeze_startup_objects() -> int:
    """Move everything imported at start-up out of the garbage collector's view, once per server.

    torch, numpy, plotly and Streamlit leave ~260k long-lived objects; a full collection walks them
    all and holds the GIL for 100-150 ms, which a student feels as a stalled slider. Frozen objects
    are the modules themselves, which live as long as the server anyway. Returns how many were frozen.
    """
    import plotly.graph_objects  # noqa: F401  (the pages' imports, so they are frozen too)

    from vit import plots  # noqa: F401

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@st.cache_resource
def _model_slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(MAX_CONCURRENT)


@contextmanager
def model_slot():
    """At most ``MAX_CONCURRENT`` model calls at once, so many users cannot oversubscribe the CPU."""
    slots = _model_slots()
    with slots:
        yield


# --- models -----------------------------------------------------------------------------------------


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def shared_model(name: str) -> vit.VisionTransformer:
    """A bundled model, or its untrained twin. Loaded once per server and never modified."""
    if name.endswith(UNTRAINED):
        return vit.untrained_like(shared_model(name[: -len(UNTRAINED)]))
    if name in vit.available_models():
        return vit.load_model(name)
    # No bundled checkpoints (e.g. a fresh clone during development): a random model of the shapes size.
    model = vit.VisionTransformer(vit.ViTConfig.preset("tiny-shapes"))
    model.meta = {"name": name, "untrained": True, "mean": [0.5] * 3, "std": [0.5] * 3}
    model.class_names = [f"class {i}" for i in range(10)]
    return vit.weights.prepare_for_inference(model, vit.choose_device())


def model_options() -> list[str]:
    bundled = vit.available_models() or ["tiny-shapes (random)"]
    options = bundled + [b + UNTRAINED for b in bundled]
    return options + ([LOCAL] if ALLOW_LOCAL_MODELS else [])


def default_model_name() -> str:
    bundled = vit.available_models()
    preferred = [name for name in DEFAULT_MODELS if name in bundled]
    return (preferred or bundled or ["tiny-shapes (random)"])[0]


def current_model_name() -> str:
    """The chosen model's option name. Kept in a plain key: widget state is dropped on other pages."""
    ss = st.session_state
    if ss.get("model_selected") not in model_options():  # first visit, maybe by a link with ?model=NAME
        wanted = st.query_params.get("model")
        ss["model_selected"] = wanted if wanted in model_options() and wanted != LOCAL else default_model_name()
    return ss["model_selected"]


@dataclass(frozen=True)
class ModelChoice:
    model: vit.VisionTransformer
    key: str  # identifies the weights: a bundled name, or "session:<path>@<mtime>"
    label: str
    shared: bool  # False for a user's own checkpoint, which never enters shared caches


def current_model() -> ModelChoice:
    ss = st.session_state
    user = ss.get("user_model")
    if current_model_name() == LOCAL and user is not None:
        return ModelChoice(user["model"], user["key"], user["label"], shared=False)
    name = current_model_name()
    if name == LOCAL:
        name = default_model_name()
    return ModelChoice(shared_model(name), name, name, shared=True)


def untrained_twin(choice: ModelChoice) -> vit.VisionTransformer | None:
    """The same architecture with random weights, to compare with a trained model; None if it is untrained."""
    if choice.model.meta.get("untrained"):
        return None
    if choice.shared:
        return shared_model(choice.key + UNTRAINED)
    user = st.session_state["user_model"]  # made once per loaded checkpoint, kept with it
    if "twin" not in user:
        user["twin"] = vit.untrained_like(choice.model)
    return user["twin"]


def trained_on(model: vit.VisionTransformer) -> str:
    """What the model was trained on, in plain words, from its metadata."""
    dataset = model.meta.get("dataset")
    if dataset in TRAINED_ON:
        return TRAINED_ON[dataset]
    names = model.class_names or []
    classes = f"the classes {', '.join(names)}" if names else f"{model.config.num_classes} classes"
    return f"{classes} (dataset: {dataset})" if dataset else classes


def load_user_model(path_text: str) -> str | None:
    """Load a user's checkpoint into this session only. Returns an error message, or None."""
    path = Path(path_text.strip()).expanduser()
    if not path_text.strip():
        return "Type the path of a checkpoint directory or .safetensors file on this server."
    if not path.exists():
        return f"Nothing found at {path}."
    try:
        model = vit.load_model(path)
    except (vit.CheckpointError, ValueError, OSError) as e:
        return str(e)
    stamp = path.stat().st_mtime_ns
    st.session_state["user_model"] = {"model": model, "key": f"session:{path}@{stamp}", "label": path.name}
    return None


# --- images -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageChoice:
    image: Image.Image
    hash: str  # sha256 of the decoded pixels: the only thing shared caches are keyed on
    label: str
    notes: tuple[str, ...] = ()


def image_hash(image: Image.Image) -> str:
    h = hashlib.sha256(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.glob("*") if p.suffix.lower() in SAMPLE_SUFFIXES)


def sample_label(path: Path) -> str:
    """A short button label: 'fashion-0-ankle-boot' → 'ankle boot', 'shapes-arrow-up' → 'arrow ↑'."""
    parts = path.stem.split("-")
    if parts[0] == "fashion":
        return " ".join(parts[2:])
    if parts[0] in ("shapes", "symbols"):
        arrows = {"up": "↑", "down": "↓", "left": "←", "right": "→", "top-left": "↖", "top-right": "↗",
                  "bottom-left": "↙", "bottom-right": "↘"}
        rest = parts[1:]
        if rest[:1] == ["arrow"]:
            return f"arrow {arrows.get(rest[1], rest[1])}"
        if rest[:2] == ["l", "corner"]:
            return f"L {arrows.get('-'.join(rest[2:]), ' '.join(rest[2:]))}"
        return " ".join(rest)
    return " ".join(parts)


def sample_groups(files: list[Path]) -> dict[str, list[Path]]:
    """Samples by gallery heading: drawings first (what the default model knows), then photos, then the rest."""
    order = [SAMPLE_GROUPS["symbols-"], "Photos", *list(SAMPLE_GROUPS.values())[1:]]
    groups: dict[str, list[Path]] = {heading: [] for heading in order}
    for f in files:
        prefix = next((p for p in SAMPLE_GROUPS if f.stem.startswith(p)), None)
        groups[SAMPLE_GROUPS[prefix] if prefix else "Photos"].append(f)
    return {k: v for k, v in groups.items() if v}


@st.cache_data(max_entries=64)
def sample_thumbnail(path: str, size: int = 96) -> Image.Image:
    image = Image.open(path).convert("RGB")
    return ImageOps.fit(image, (size, size), Image.Resampling.NEAREST if min(image.size) < size else Image.Resampling.LANCZOS)


@st.cache_data(max_entries=64)
def _read_sample(path: str) -> bytes:
    return Path(path).read_bytes()


def set_image_from_bytes(data: bytes, label: str) -> str | None:
    """Decode an upload or camera shot safely and make it the session's image. Returns an error or None."""
    try:
        image, info = load_image_info(data)
    except ImageError as e:
        return str(e)
    st.session_state["image"] = ImageChoice(image, image_hash(image), label, tuple(info.notes))
    return None


def set_sample(path: Path) -> None:
    image, info = load_image_info(_read_sample(str(path)))
    st.session_state["image"] = ImageChoice(image, image_hash(image), f"sample: {path.stem}", tuple(info.notes))
    st.session_state["sample_name"] = path.name


def default_sample() -> Path | None:
    """A sample the default model knows, else the first sample, else None."""
    files = sample_files()
    preferred = [p for p in files if p.stem == DEFAULT_SAMPLES.get(default_model_name())]
    return (preferred or files or [None])[0]


def current_image() -> ImageChoice:
    """The session's image; a page opened directly by URL falls back to a default sample."""
    ss = st.session_state
    if "image" not in ss:
        wanted = st.query_params.get("sample")
        path = next((p for p in sample_files() if p.name == wanted), None) or default_sample()
        if path is None:
            rng = np.random.default_rng(0)
            image = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
            ss["image"] = ImageChoice(image, image_hash(image), "random noise (no samples found)")
        else:
            set_sample(path)
    return ss["image"]


def current_fit() -> str:
    """The user's choice of fit, else the model's own (its meta["resize"], as in training), else crop."""
    chosen = st.session_state.get("fit_selected")
    if chosen in FITS:
        return chosen
    own = current_model().model.meta.get("resize")
    return own if own in FITS else "crop"


# --- traces -----------------------------------------------------------------------------------------


def _compute_trace(model: vit.VisionTransformer, image: Image.Image, fit: str) -> dict[str, np.ndarray]:
    """Run the model on the image and return every stage as numpy arrays, plus derived analyses."""
    x = vit.preprocess(image, model, fit=fit)
    device = next(model.parameters()).device
    with model_slot(), torch.inference_mode():
        t = model.trace(x.to(device))
    cfg = model.config
    out = t.to_numpy()
    out = {k: (v[0] if k in ("patches", "patch_embeddings", "final_tokens", "pooled", "logits", "pre_logits") else v) for k, v in out.items()}
    for k in ("hidden_states", "attentions", "residual_mid"):
        out[k] = out[k][:, 0]  # drop the batch axis: (L, ...) for one image
    out["input"] = vit.denormalize(x, model).astype(np.float32)  # (H, W, C) what the model sees
    p, c = cfg.patch_size, cfg.in_channels
    out["patch_pixels"] = out["input"].reshape(t.grid[0], p, t.grid[1], p, c).transpose(0, 2, 1, 3, 4).reshape(-1, p * p * c)
    attentions = [a for a in t.attentions]
    out["distances"] = analysis.attention_distances(attentions, t.grid, p)[:, 0].cpu().numpy()  # (L, H)
    out["token_norms"] = analysis.token_norms(t.hidden_states)[:, 0].cpu().numpy()  # (L+1, N+1)
    if t.logits is not None:
        with torch.inference_mode():
            lens = model.logit_lens([h for h in t.hidden_states])
        out["lens_probs"] = lens[:, 0].float().softmax(-1).cpu().numpy()  # (L+1, classes)
        out["probs"] = out["lens_probs"][-1]
    return out


@st.cache_data(max_entries=64, show_spinner="Running the model on your image…")
def _shared_trace(model_key: str, image_key: str, fit: str, _model, _image) -> dict[str, np.ndarray]:
    return _compute_trace(_model, _image, fit)


def current_trace() -> dict[str, np.ndarray]:
    """The trace of the session's model on the session's image, computed once and cached."""
    choice, image = current_model(), current_image()
    fit = current_fit()
    if choice.shared:
        return _shared_trace(choice.key, image.hash, fit, choice.model, image.image)
    cache = st.session_state.setdefault("user_traces", {})
    key = (choice.key, image.hash, fit)
    if key not in cache:
        while len(cache) >= 4:
            cache.pop(next(iter(cache)))
        with st.spinner("Running your model on your image…"):
            cache[key] = _compute_trace(choice.model, image.image, fit)
    return cache[key]


def trace_npz(trace: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v for k, v in trace.items() if isinstance(v, np.ndarray)})
    return buf.getvalue()


# --- the frame around every page --------------------------------------------------------------------

_frame = threading.local()


def run_frame(start_page) -> None:
    """Page config, navigation, the chosen page, then the sidebar. app.py calls this."""
    st.set_page_config(page_title="ViT Explorer", page_icon=str(ROOT / "assets" / "icon.png"), layout="wide")
    configure_torch()
    freeze_startup_objects()
    pages = [st.Page(start_page, title="Start", icon=":material/home:", default=True)]
    pages += [st.Page(path, title=title, icon=icon, url_path=key) for key, (path, title, icon) in PAGES.items()]
    nav = st.navigation(pages)
    _frame.active = True
    try:
        nav.run()
    finally:
        _frame.active = False
    sidebar()  # after the page, so it shows what the page just chose


def require_frame() -> None:
    """Make sure a page runs inside the frame.

    Streamlit treats a folder named pages/ beside the entry point as an old-style multipage app
    until the first run of app.py, so a link such as /attention opened first on a fresh server
    runs the page file alone. Then the frame is built here, it runs the page, and this run stops.
    """
    if getattr(_frame, "active", False):
        return
    import app

    run_frame(app.start_page)
    st.stop()


# --- page furniture ---------------------------------------------------------------------------------


def sidebar() -> None:
    """The current image, model and device, shown on every page."""
    image, choice = current_image(), current_model()
    with st.sidebar:
        st.image(image.image, caption=image.label, width=160)
        model = choice.model
        cfg = model.config
        trained = "untrained" if model.meta.get("untrained") else "trained"
        st.markdown(f"**Model:** {choice.label}  \n{trained} · {cfg.image_size}px · P={cfg.patch_size} · "
                    f"D={cfg.dim} · L={cfg.depth} · H={cfg.heads}")
        st.caption(f"Device: {vit.describe_device(next(model.parameters()).device)}")
        trace = current_trace()
        st.download_button("Download the trace (.npz)", data=lambda: trace_npz(trace), file_name="vit-trace.npz",
                           mime="application/octet-stream", key="download_trace", on_click="ignore",
                           help="Every stage for this image and model as numpy arrays. Figures have a camera "
                                "button in their toolbar for a PNG.")


def shapes_line(trace: dict[str, np.ndarray], model: vit.VisionTransformer) -> str:
    """A sentence of live tensor shapes, e.g. '64 patches × 48 values → 65 × 64 tokens'."""
    n, v = trace["patches"].shape
    t, d = trace["hidden_states"].shape[-2:]
    return f"{n} patches × {v} values → {t} tokens × {d} dimensions"


def explain(text: str, equation: str | None = None) -> None:
    """The teaching paragraph and the paper's equation at the top of a page."""
    st.markdown(text)
    if equation:
        st.latex(equation)


def plot(fig, key: str, **kwargs):
    """Show a Plotly figure with a PNG download in its toolbar; returns the selection event if any."""
    config = {"toImageButtonOptions": {"format": "png", "filename": key, "scale": 2}, "displaylogo": False}
    return st.plotly_chart(fig, key=key, config=config, **kwargs)


def query_int(name: str, default: int, low: int, high: int) -> int:
    """An integer from the URL (?layer=2), clamped to [low, high], for links that open a view."""
    try:
        value = int(st.query_params.get(name, default))
    except (TypeError, ValueError):
        value = default
    return min(max(value, low), high)


def sync_query(**values) -> None:
    """Write the current view into the URL so it can be shared."""
    for k, v in values.items():
        if st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


def apply_click(chart_key: str, targets: dict[str, tuple[int, int]]) -> None:
    """Turn a click on a figure (its point's customdata) into widget values, once per new click.

    ``targets`` maps a widget key to (position in customdata, offset added), e.g. a 0-based layer
    index in customdata[0] becomes the 1-based slider value with ``{"layer": (0, 1)}``.
    """
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    if not points:
        return
    marker = repr(points)
    if st.session_state.get(f"_clicked_{chart_key}") == marker:
        return
    st.session_state[f"_clicked_{chart_key}"] = marker
    data = points[0].get("customdata")
    if data is None:
        return
    if isinstance(data, dict):  # a 2-D customdata row can arrive as {"0": layer, "1": head}
        data = [data[k] for k in sorted(data, key=int)]
    data = data if isinstance(data, (list, tuple)) else [data]
    for widget, (pos, offset) in targets.items():
        if pos < len(data):
            st.session_state[widget] = int(data[pos]) + offset


if __name__ == "__main__":  # opened directly as an old-style page: show the app instead
    require_frame()
