"""Process-wide setup and the models every session shares.

Models are shared across sessions in ``st.cache_resource`` and never changed after loading; a
model a user loads from their own files stays in that user's session (see :mod:`ui.state`).
"""

from __future__ import annotations

import gc
import os
import threading
from contextlib import contextmanager

import streamlit as st
import torch

import vit
from ui.i18n import N_, _

UNTRAINED = " (untrained)"
LOCAL = "Local checkpoint…"
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
ALLOW_LOCAL_MODELS = os.environ.get("VIT_EXPLORER_LOCAL_MODELS", "1") != "0"


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
    with _model_slots():
        yield


@st.cache_resource(max_entries=8, show_spinner=False)
def _shared_model(name: str) -> vit.VisionTransformer:
    if name.endswith(UNTRAINED):
        return vit.untrained_like(_shared_model(name[: -len(UNTRAINED)]))
    if name in vit.available_models():
        return vit.load_model(name)
    # No bundled checkpoints (e.g. a fresh clone during development): a random model of the shapes size.
    model = vit.VisionTransformer(vit.ViTConfig.preset("tiny-shapes"))
    model.meta = {"name": name, "untrained": True, "mean": [0.5] * 3, "std": [0.5] * 3}
    model.class_names = [f"class {i}" for i in range(10)]
    return vit.weights.prepare_for_inference(model, vit.choose_device())


def shared_model(name: str) -> vit.VisionTransformer:
    """A bundled model, or its untrained twin. Loaded once per server and never modified."""
    with st.spinner(_("Loading the model…"), show_time=True):
        return _shared_model(name)


def model_options() -> list[str]:
    bundled = vit.available_models() or [RANDOM_FALLBACK]
    options = bundled + [b + UNTRAINED for b in bundled]
    return options + ([LOCAL] if ALLOW_LOCAL_MODELS else [])


def option_label(name: str) -> str:
    """How a model option reads on screen: '(untrained)' and 'Local checkpoint…' in the page's language."""
    if name == LOCAL:
        return _("Local checkpoint…")
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
