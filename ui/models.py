"""Process-wide setup and the models every session shares.

Models are shared across sessions in ``st.cache_resource`` and never changed after loading; a
model a user uploads stays in that user's session (see :mod:`ui.state`).

Besides the bundled models, a teacher may offer the checkpoints of a folder on the server: set
``VIT_EXPLORER_MODELS_DIR``. Each is checked once, when the server first lists them; its problems go
to the server log (one line each), and a broken one is not offered. Students choose them by name and
never type a path. ``VIT_EXPLORER_CHECKPOINT_UPLOADS=1`` lets a student upload a checkpoint into their
own session. Both settings are read when they are used, not when this module is imported.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
import torch

import vit
from ui.i18n import N_, _

UNTRAINED = " (untrained)"
UPLOADED = "Your checkpoint…"  # the option for a checkpoint this session uploaded
MODELS_DIR_ENV = "VIT_EXPLORER_MODELS_DIR"  # a folder of checkpoints the teacher offers
UPLOADS_ENV = "VIT_EXPLORER_CHECKPOINT_UPLOADS"  # "1": students may upload a checkpoint into their session
UPLOAD_LIMIT_MB = 50  # an uploaded checkpoint's weights; its JSON has vit.weights.MAX_JSON_BYTES
SYMBOLS_MODEL = "vit-tiny-symbols"
DEFAULT_MODELS = (SYMBOLS_MODEL, "vit-tiny-shapes")  # the first one bundled is the default
RANDOM_FALLBACK = "tiny-shapes (random)"
TRAINED_ON = {  # a model's meta["dataset"]: what it was trained on, in plain words
    "symbols": N_("hand-drawn or printed digits 0–9 and arrows (up, down, left, right) on paper, a whiteboard or "
                  "a screen, held up to a camera"),
    "shapes": N_("generated pictures of arrows, L-shapes, circles and crosses"),
    "fashion-mnist": N_("10 kinds of clothing, photographed as light items on a black background, 28×28 px in "
                        "grayscale"),
}
DATASET_NAMES = {  # a model's meta["dataset"], as a name a student reads
    "symbols": N_("drawn digits and arrows"),
    "shapes": N_("generated shapes"),
    "fashion-mnist": "Fashion-MNIST",
}
MAX_CONCURRENT = int(os.environ.get("VIT_EXPLORER_CONCURRENCY", "2"))
log = logging.getLogger("vit_explorer.models")


@st.cache_resource
def configure_torch() -> int:
    """Set torch's CPU threads once, at start-up, for the whole server."""
    threads = int(os.environ.get("VIT_EXPLORER_THREADS", "0")) or max(1, (os.cpu_count() or 2) // max(1, MAX_CONCURRENT))
    torch.set_num_threads(threads)
    return threads


@st.cache_resource
def start_image_decoder() -> bool:
    """Start the worker that decodes uploads (vit.decoding) once per server, so the first upload does not wait."""
    vit.decoding.warm_up()
    return True


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
    with _model_slots():
        yield


def server_log() -> logging.Logger:
    """The teacher's log: the server's standard error, where Streamlit writes its own lines."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s ViT Explorer: %(message)s"))
        log.addHandler(handler)
        if log.level == logging.NOTSET:
            log.setLevel(logging.INFO)
    return log


def uploads_enabled() -> bool:
    return os.environ.get(UPLOADS_ENV, "0").strip().lower() in ("1", "true", "yes", "on")


def models_dir() -> str | None:
    return os.environ.get(MODELS_DIR_ENV, "").strip() or None


def _reserved(name: str) -> bool:
    return (name in vit.available_models() or name.endswith(UNTRAINED) or name in (UPLOADED, RANDOM_FALLBACK)
            or not name.isprintable())


def scan_models_dir(folder: str) -> dict[str, Path]:
    """The folder's checkpoints that passed every check, by name; each problem is one line of the server log."""
    logger = server_log()
    found, problems = vit.loading.scan_checkpoints(folder)
    for name in [n for n in found if _reserved(n)]:
        problems.append((name, None))
        del found[name]
    for name, error in problems:
        why = error if error is not None else "its name is taken by a bundled model or is not allowed"
        logger.warning("%s=%s: %s is not offered: %s", MODELS_DIR_ENV, folder, name, why)
    logger.info("%s=%s: offering %d checkpoint(s)%s", MODELS_DIR_ENV, folder, len(found),
                (": " + ", ".join(found)) if found else "")
    return found


@st.cache_resource(show_spinner=False)
def _folder_catalogue(folder: str) -> dict[str, Path]:
    """Checked once per server and folder (a teacher restarts the server after changing the folder)."""
    return scan_models_dir(folder)


def folder_models() -> dict[str, Path]:
    """The teacher's checkpoints (``VIT_EXPLORER_MODELS_DIR``) by name, less any that failed to load."""
    folder = models_dir()
    if folder is None:
        return {}
    failed = _load_failures()
    return {name: path for name, path in _folder_catalogue(folder).items() if str(path) not in failed}


@st.cache_resource
def _load_failures() -> set[str]:
    """Folder checkpoints that passed the checks but failed to load (e.g. NaN weights): never offered again."""
    return set()


@st.cache_resource(max_entries=8, show_spinner=False)
def _shared_model(name: str, source: str = "") -> vit.VisionTransformer:
    if name.endswith(UNTRAINED):
        return vit.untrained_like(_shared_model(name[: -len(UNTRAINED)], source))
    if source:  # a teacher's checkpoint, checked when the folder was listed
        model = vit.load_model(source)
        model.meta["name"] = name
        return model
    if name in vit.available_models():
        return vit.load_model(name)
    # No bundled checkpoints (e.g. a fresh clone during development): a random model of the shapes size.
    model = vit.VisionTransformer(vit.ViTConfig.preset("tiny-shapes"))
    model.meta = {"name": name, "untrained": True, "mean": [0.5] * 3, "std": [0.5] * 3}
    model.class_names = [f"class {i}" for i in range(10)]
    return vit.weights.prepare_for_inference(model, vit.choose_device())


def shared_model(name: str) -> vit.VisionTransformer:
    """A bundled model, a teacher's checkpoint, or its untrained twin. Loaded once per server and never
    modified. A teacher's checkpoint that fails to load raises ``CheckpointError`` once, is logged, and is
    no longer offered."""
    base = name[: -len(UNTRAINED)] if name.endswith(UNTRAINED) else name
    path = folder_models().get(base) if base not in vit.available_models() else None
    with st.spinner(_("Loading the model…"), show_time=True):
        try:
            return _shared_model(name, str(path) if path else "")
        except vit.CheckpointError as e:
            if path is None:
                raise
            _load_failures().add(str(path))
            server_log().warning("%s: %s is not offered: loading it failed: %s", MODELS_DIR_ENV, base, e)
            raise


def model_options() -> list[str]:
    """Every model a session may choose: bundled ones and their untrained twins, the teacher's folder,
    and (when uploads are on) the session's own upload."""
    bundled = vit.available_models() or [RANDOM_FALLBACK]
    options = bundled + [b + UNTRAINED for b in bundled] + list(folder_models())
    return options + ([UPLOADED] if uploads_enabled() else [])


def option_label(name: str) -> str:
    """How a model option reads on screen: '(untrained)' and 'Your checkpoint…' in the page's language."""
    if name == UPLOADED:
        return _("Your checkpoint…")
    if name.endswith(UNTRAINED):
        return _("{name} (untrained)").format(name=name[: -len(UNTRAINED)])
    return name


def default_model_name() -> str:
    bundled = vit.available_models()
    preferred = [name for name in DEFAULT_MODELS if name in bundled]
    return (preferred or bundled or [RANDOM_FALLBACK])[0]


def dataset_name(model: vit.VisionTransformer) -> str:
    """The name of the model's training data in the page's language ('Fashion-MNIST', '생성한 도형')."""
    dataset = model.meta.get("dataset") or ""
    name = DATASET_NAMES.get(dataset)
    return _(name) if name and name != "Fashion-MNIST" else (name or dataset)


def trained_on(model: vit.VisionTransformer) -> str:
    """What the model was trained on, in plain words, from its metadata."""
    dataset = model.meta.get("dataset")
    if dataset in TRAINED_ON:
        return _(TRAINED_ON[dataset])
    names = model.class_names or []
    classes = (_("the classes {names}").format(names=", ".join(names)) if names
               else _("{n} classes").format(n=model.config.num_classes))
    return _("{classes} (dataset: {dataset})").format(classes=classes, dataset=dataset) if dataset else classes
