"""The model run on the image: every stage as numpy arrays (the *trace*), computed once and cached.

Traces are shared in ``st.cache_data`` only under a key made of the model's name and a hash of the
image's pixels, so a session can only ever get results for an image it supplied itself. A user's
own checkpoint never enters a shared cache: its traces stay in that user's session.
"""

from __future__ import annotations

import io

import numpy as np
import streamlit as st
import torch
from PIL import Image

import vit
from ui.i18n import _
from ui.models import model_slot
from ui.state import current_fit, current_image, current_model
from vit import analysis

_BATCH_FIRST = ("patches", "patch_embeddings", "final_tokens", "pooled", "logits", "pre_logits")


def compute_trace(model: vit.VisionTransformer, image: Image.Image, fit: str) -> dict[str, np.ndarray]:
    """Run the model on the image and return every stage as numpy arrays, plus derived analyses."""
    x = vit.preprocess(image, model, fit=fit)
    device = next(model.parameters()).device
    with model_slot(), torch.inference_mode():
        t = model.trace(x.to(device))
    cfg = model.config
    out = t.to_numpy()
    out = {k: (v[0] if k in _BATCH_FIRST else v) for k, v in out.items()}
    for k in ("hidden_states", "attentions", "residual_mid"):
        out[k] = out[k][:, 0]  # drop the batch axis: (L, ...) for one image
    out["input"] = vit.denormalize(x, model).astype(np.float32)  # (H, W, C) what the model sees
    p, c = cfg.patch_size, cfg.in_channels
    out["patch_pixels"] = out["input"].reshape(t.grid[0], p, t.grid[1], p, c).transpose(0, 2, 1, 3, 4).reshape(-1, p * p * c)
    out["distances"] = analysis.attention_distances(list(t.attentions), t.grid, p)[:, 0].cpu().numpy()  # (L, H)
    out["token_norms"] = analysis.token_norms(t.hidden_states)[:, 0].cpu().numpy()  # (L+1, N+1)
    if t.logits is not None:
        with torch.inference_mode():
            lens = model.logit_lens(list(t.hidden_states))
        out["lens_probs"] = lens[:, 0].float().softmax(-1).cpu().numpy()  # (L+1, classes)
        out["probs"] = out["lens_probs"][-1]
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def _shared_trace(model_key: str, image_key: str, fit: str, _model, _image) -> dict[str, np.ndarray]:
    return compute_trace(_model, _image, fit)


def current_trace() -> dict[str, np.ndarray]:
    """The trace of the session's model on the session's image, computed once and cached."""
    choice, image = current_model(), current_image()
    fit = current_fit()
    if choice.shared:
        with st.spinner(_("Running the model on your image…")):
            return _shared_trace(choice.key, image.hash, fit, choice.model, image.image)
    cache = st.session_state.setdefault("user_traces", {})
    key = (choice.key, image.hash, fit)
    if key not in cache:
        while len(cache) >= 4:
            cache.pop(next(iter(cache)))
        with st.spinner(_("Running your model on your image…")):
            cache[key] = compute_trace(choice.model, image.image, fit)
    return cache[key]


def trace_npz(trace: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v for k, v in trace.items() if isinstance(v, np.ndarray)})
    return buf.getvalue()
