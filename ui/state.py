"""This session's choices: the image, the model and how a non-square image is made square.

Choices live in plain session keys, because Streamlit drops a widget's state on pages without that
widget. A page opened directly by URL (``?sample=cat.jpg&model=vit-tiny-fashion``) falls back to
what the link names, then to the defaults.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageOps

import vit
from ui.i18n import N_, _, error_text, md_escape
from ui import models
from ui.models import LOCAL, UNTRAINED, default_model_name, model_options, option_label
from vit.images import ImageError, load_image_info

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = ROOT / "assets" / "samples"
SAMPLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
FITS = {"crop": N_("Crop the centre"), "pad": N_("Pad to a square"), "squash": N_("Squash to a square")}
DEFAULT_SAMPLES = {"vit-tiny-symbols": "symbols-3", "vit-tiny-shapes": "shapes-arrow-up"}  # a sample each knows
SAMPLE_GROUPS = {  # file-name prefix: gallery heading; the rest are photos
    "symbols-": N_("Drawings (what vit-tiny-symbols knows)"),
    "fashion-": N_("Fashion-MNIST (what vit-tiny-fashion knows)"),
    "shapes-": N_("Generated shapes (what vit-tiny-shapes knows)"),
}
PHOTOS = N_("Photos")
SAMPLE_NAMES = {  # words of sample file names, for their button labels
    "ankle boot": N_("ankle boot"), "pullover": N_("pullover"), "dress": N_("dress"), "coat": N_("coat"),
    "trouser": N_("trouser"), "cross": N_("cross"), "astronaut": N_("astronaut"), "camera": N_("camera"),
    "cat": N_("cat"), "coffee": N_("coffee"), "rocket": N_("rocket"), "arrow": N_("arrow"),
}
CLASS_NAMES = (  # the bundled models' classes, so the pages can show them in the page's language
    N_("T-shirt/top"), N_("Trouser"), N_("Pullover"), N_("Dress"), N_("Coat"), N_("Sandal"), N_("Shirt"),
    N_("Sneaker"), N_("Bag"), N_("Ankle boot"),
    N_("arrow up"), N_("arrow down"), N_("arrow left"), N_("arrow right"), N_("L (corner bottom-left)"),
    N_("L (corner bottom-right)"), N_("L (corner top-left)"), N_("L (corner top-right)"), N_("circle"), N_("cross"),
    N_("nothing"),
)


def class_label(name: str) -> str:
    """A class name in the page's language where the catalogue has it (digits and unknown names stay as they are)."""
    return _(name) if name in CLASS_NAMES else name


# --- the model --------------------------------------------------------------------------------------


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
    user = st.session_state.get("user_model")
    name = current_model_name()
    if name == LOCAL and user is not None:
        return ModelChoice(user["model"], user["key"], user["label"], shared=False)
    if name == LOCAL:
        name = default_model_name()
    return ModelChoice(models.shared_model(name), name, option_label(name), shared=True)


def untrained_twin(choice: ModelChoice) -> vit.VisionTransformer | None:
    """The same architecture with random weights, to compare with a trained model; None if it is untrained."""
    if choice.model.meta.get("untrained"):
        return None
    if choice.shared:
        return models.shared_model(choice.key + UNTRAINED)
    user = st.session_state["user_model"]  # made once per loaded checkpoint, kept with it
    if "twin" not in user:
        user["twin"] = vit.untrained_like(choice.model)
    return user["twin"]


def load_user_model(path_text: str) -> str | None:
    """Load a user's checkpoint into this session only. Returns an error message, or None."""
    path = Path(path_text.strip()).expanduser()
    if not path_text.strip():
        return _("Type the path of a checkpoint directory or .safetensors file on this server.")
    if not path.exists():
        return _("Nothing found at {path}.").format(path=path)
    try:
        model = vit.load_model(path)
    except (vit.CheckpointError, ValueError, OSError) as e:
        return error_text(e)
    stamp = path.stat().st_mtime_ns
    st.session_state["user_model"] = {"model": model, "key": f"session:{path}@{stamp}", "label": md_escape(path.name)}
    return None


# --- the image --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageChoice:
    image: Image.Image
    hash: str  # sha256 of the decoded pixels: the only thing shared caches are keyed on
    label: str
    notes: tuple = ()  # (template, params) pairs from vit.load_image, rendered in the page's language


def image_hash(image: Image.Image) -> str:
    h = hashlib.sha256(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.glob("*") if p.suffix.lower() in SAMPLE_SUFFIXES)


def _words(parts: list[str]) -> str:
    text = " ".join(parts)
    return _(SAMPLE_NAMES[text]) if text in SAMPLE_NAMES else text


def sample_label(path: Path) -> str:
    """A short button label: 'fashion-0-ankle-boot' → 'ankle boot', 'shapes-arrow-up' → 'arrow ↑'."""
    parts = path.stem.split("-")
    if parts[0] == "fashion":
        return _words(parts[2:])
    if parts[0] in ("shapes", "symbols"):
        arrows = {"up": "↑", "down": "↓", "left": "←", "right": "→", "top-left": "↖", "top-right": "↗",
                  "bottom-left": "↙", "bottom-right": "↘"}
        rest = parts[1:]
        if rest[:1] == ["arrow"]:
            return f"{_('arrow')} {arrows.get(rest[1], rest[1])}"
        if rest[:2] == ["l", "corner"]:
            return f"L {arrows.get('-'.join(rest[2:]), ' '.join(rest[2:]))}"
        return _words(rest)
    return _words(parts)


def sample_groups(files: list[Path]) -> dict[str, list[Path]]:
    """Samples by gallery heading (message ids): drawings first (what the default model knows), then photos."""
    order = [SAMPLE_GROUPS["symbols-"], PHOTOS, *list(SAMPLE_GROUPS.values())[1:]]
    groups: dict[str, list[Path]] = {heading: [] for heading in order}
    for f in files:
        prefix = next((p for p in SAMPLE_GROUPS if f.stem.startswith(p)), None)
        groups[SAMPLE_GROUPS[prefix] if prefix else PHOTOS].append(f)
    return {k: v for k, v in groups.items() if v}


@st.cache_data(max_entries=64)
def sample_thumbnail(path: str, size: int = 96) -> Image.Image:
    image = Image.open(path).convert("RGB")
    return ImageOps.fit(image, (size, size), Image.Resampling.NEAREST if min(image.size) < size else Image.Resampling.LANCZOS)


@st.cache_data(max_entries=64)
def _read_sample(path: str) -> bytes:
    return Path(path).read_bytes()


def _notes(info) -> tuple:
    return tuple(getattr(info, "messages", ())) or tuple((note, {}) for note in info.notes)


def set_image_from_bytes(data: bytes, label: str) -> str | None:
    """Decode an upload or camera shot safely and make it the session's image. Returns an error or None."""
    try:
        image, info = load_image_info(data)
    except ImageError as e:
        return error_text(e)
    st.session_state["image"] = ImageChoice(image, image_hash(image), label, _notes(info))
    st.session_state.pop("sample_name", None)
    return None


def set_sample(path: Path) -> None:
    image, info = load_image_info(_read_sample(str(path)))
    st.session_state["image"] = ImageChoice(image, image_hash(image), path.stem, _notes(info))
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
            ss["image"] = ImageChoice(image, image_hash(image), "noise")
        else:
            set_sample(path)
    return ss["image"]


def image_label(choice: ImageChoice) -> str:
    """How the image is named on screen: 'sample: cat', 'upload: my.png', in the page's language."""
    source, _sep, name = choice.label.partition(": ")
    if choice.label == "noise":
        return _("random noise (no samples found)")
    if source == "upload" and name:  # the file's own name: the user's text, shown as text (escaped markdown)
        return _("upload: {name}").format(name=md_escape(name))
    if source == "camera" and name:
        return _("camera: {name}").format(name=md_escape(name))
    return _("sample: {name}").format(name=sample_label(Path(choice.label)))


def image_notes(choice: ImageChoice) -> list[str]:
    """The decoder's notes about this image (upscaled, cropped, …) in the page's language."""
    return [_(template).format(**params) if params else _(template) for template, params in choice.notes]


def current_fit() -> str:
    """The user's choice of fit, else the model's own (its meta["resize"], as in training), else crop."""
    chosen = st.session_state.get("fit_selected")
    if chosen in FITS:
        return chosen
    own = current_model().model.meta.get("resize")
    return own if own in FITS else "crop"


def fit_notes(choice: ImageChoice, model: vit.VisionTransformer) -> list[str]:
    """What making this image square for this model does that the user should know (upscaled, cut, padded)."""
    notes = vit.loading.fit_notes(choice.image.size, model.config.image_size, current_fit())
    return [_(template).format(**params) for template, params in notes]
