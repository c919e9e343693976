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
from ui.models import UNTRAINED, UPLOADED, default_model_name, option_label
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


def model_options() -> list[str]:
    """The models this session may choose: the shared ones, and its own upload once it has one."""
    options = models.model_options()
    if "user_model" in st.session_state and UPLOADED not in options:
        options.append(UPLOADED)
    return options


def current_model_name() -> str:
    """The chosen model's option name. Kept in a plain key: widget state is dropped on other pages."""
    ss = st.session_state
    if ss.get("model_selected") not in model_options():  # first visit, maybe by a link with ?model=NAME
        wanted = st.query_params.get("model")
        ss["model_selected"] = wanted if wanted in model_options() and wanted != UPLOADED else default_model_name()
    return ss["model_selected"]


@dataclass(frozen=True)
class ModelChoice:
    model: vit.VisionTransformer
    key: str  # identifies the weights: a shared model's option name, or "session:upload:<sha256>"
    label: str  # markdown: a name from a file is escaped
    shared: bool  # False for a user's own checkpoint, which never enters shared caches


def current_model() -> ModelChoice:
    ss = st.session_state
    user = ss.get("user_model")
    name = current_model_name()
    if name == UPLOADED and user is not None:
        return ModelChoice(user["model"], user["key"], user["label"], shared=False)
    if name == UPLOADED:
        name = default_model_name()
    try:
        model = models.shared_model(name)
    except vit.CheckpointError:  # a teacher's checkpoint that failed to load: logged, and no longer offered
        ss["model_unavailable"] = True
        ss["model_selected"] = name = default_model_name()
        model = models.shared_model(name)
    base = name[: -len(UNTRAINED)] if name.endswith(UNTRAINED) else name
    label = md_escape(option_label(name)) if base in models.folder_models() else option_label(name)  # a file's name
    return ModelChoice(model, name, label, shared=True)


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


def load_uploaded_model(files: list[tuple[str, bytes]]) -> str | None:
    """Load a checkpoint a student uploaded (its .safetensors and .json, as bytes) into this session only:
    never written to disk, never put in a shared cache. Returns an error message, or None."""
    weights = [(n, b) for n, b in files if n.lower().endswith(".safetensors")]
    sidecars = [(n, b) for n, b in files if n.lower().endswith(".json")]
    if len(weights) != 1 or len(sidecars) != 1 or len(files) != 2:
        return _("Upload exactly two files: the checkpoint's .safetensors file and its .json file.")
    (weights_name, weights_bytes), (_sidecar_name, sidecar_bytes) = weights[0], sidecars[0]
    stem = weights_name[: -len(".safetensors")] or "checkpoint"
    limit = models.UPLOAD_LIMIT_MB * 1_000_000
    if len(weights_bytes) > limit:
        return _("The checkpoint is larger than {limit} MB, the limit for uploads.").format(limit=models.UPLOAD_LIMIT_MB)
    try:
        model = vit.weights.load_checkpoint_bytes(weights_bytes, sidecar_bytes, device=vit.choose_device(),
                                                  name=stem, max_bytes=limit)
    except vit.CheckpointError as e:
        return error_text(e)
    h = hashlib.sha256(weights_bytes)
    h.update(b"\0")
    h.update(sidecar_bytes)
    digest = h.hexdigest()
    st.session_state["user_model"] = {"model": model, "key": f"session:upload:{digest}", "label": md_escape(stem)}
    st.session_state["model_selected"] = UPLOADED
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


def _preempted(requests) -> bool:
    """Whether Streamlit holds a request that stops this script run at its next element: the student did
    something else (a full rerun: another choice, another page, another upload) or the session is stopping.
    A queued fragment rerun does not stop a full run, so it does not count."""
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

    state = requests._state
    if state == ScriptRequestType.STOP:
        return True
    if state != ScriptRequestType.RERUN:
        return False
    data = requests._rerun_data
    return not (data.fragment_id_queue and not data.is_fragment_scoped_rerun)


def _decode_unwanted():
    """A ``cancelled`` callback for a decode: True once this browser tab's session is gone, or once the
    student has done something else that stops this run (None outside a server: nothing to watch)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():  # bare mode, or AppTest: nothing to watch
            return None
        runtime, session_id, requests = Runtime.instance(), ctx.session_id, ctx.script_requests
    except Exception:
        return None

    def unwanted() -> bool:
        if not runtime.is_active_session(session_id):
            return True
        try:
            return requests is not None and _preempted(requests)
        except Exception:  # Streamlit's private request state changed shape: fall back to the session check
            return False

    return unwanted


class DecodeInterrupted(Exception):
    """The student did something else while their upload was decoding; the run is about to stop."""


KEPT_SIDE = 2048  # the longest side of an uploaded picture a session keeps


def set_image_from_bytes(data: bytes, label: str) -> str | None:
    """Decode an upload or camera shot safely and make it the session's image. Returns an error or None.

    The decode runs in a worker process with a time limit and a cap on concurrent decodes
    (:func:`vit.decoding.decode_upload`). It stops if the tab is closed meanwhile, and raises
    :class:`DecodeInterrupted` if the student does something else meanwhile.
    """
    from vit.decoding import decode_upload

    try:
        image, info = decode_upload(data, cancelled=_decode_unwanted())
    except ImageError as e:
        if e.code == "decode_cancelled":
            raise DecodeInterrupted from e
        return error_text(e)
    notes = _notes(info)
    if max(image.size) > KEPT_SIDE:  # the model sees at most a few hundred pixels; a session keeps a bounded copy
        w, h = image.size
        image.thumbnail((KEPT_SIDE, KEPT_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
        notes += ((N_("The picture was reduced from {w}×{h} to {new_w}×{new_h} pixels for the app; the model "
                      "sees far fewer pixels than that."), {"w": w, "h": h, "new_w": image.width, "new_h": image.height}),)
    st.session_state["image"] = ImageChoice(image, image_hash(image), label, notes)
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


def _image_now():
    return getattr(st.session_state.get("image"), "hash", None)


def take_file(file, source: str) -> None:
    """Decode a new upload or camera shot once; a bad file shows an error and keeps the old image.

    A decode the student interrupts (by choosing something else while it runs) stops at once. On the
    next run it starts again, unless the student chose another picture meanwhile: that choice stands.
    """
    if file is None:
        return
    marker = (source, file.file_id)
    interrupted = st.session_state.pop(f"interrupted_{source}", None)
    if interrupted is not None and interrupted[0] == marker and interrupted[1] != _image_now():
        st.session_state[f"taken_{source}"], st.session_state[f"error_{source}"] = marker, None
        return
    if st.session_state.get(f"taken_{source}") == marker:
        if st.session_state.get(f"error_{source}"):
            st.error(st.session_state[f"error_{source}"])
        return
    st.session_state[f"taken_{source}"] = marker
    try:
        error = set_image_from_bytes(file.getvalue(), f"{source}: {file.name}")
    except DecodeInterrupted:  # Streamlit stops this run at its next element and starts the new one
        st.session_state.pop(f"taken_{source}", None)
        st.session_state[f"interrupted_{source}"] = (marker, _image_now())
        return
    st.session_state[f"error_{source}"] = error
    if error:
        st.error(error)
