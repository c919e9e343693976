"""Stage 1: the image becomes a sequence of P×P patches, the "16×16 words"."""

import streamlit as st

from ui import compute, state, widgets
from vit import plots

choice, image = state.current_model(), state.current_image()
model, cfg = choice.model, choice.model.config
trace = compute.current_trace()
n, values = trace["patches"].shape
gh, gw = trace["grid"]
P, C = cfg.patch_size, cfg.in_channels

st.title("1. Image → patches")
widgets.explain(
    f"A Transformer reads a **sequence**. To turn an image into one, the ViT cuts it into square patches "
    f"of P×P pixels and flattens each patch into a vector of P²·C numbers. For this model P = {P} and "
    f"C = {C}, so your image becomes a {gh}×{gw} grid of **N = {n} patches**, each a vector of "
    f"{P}·{P}·{C} = **{values} values**: the \"words\" of the sentence the Transformer reads.",
    r"\mathbf{x} \in \mathbb{R}^{H \times W \times C} \;\longrightarrow\; "
    r"\mathbf{x}_p \in \mathbb{R}^{N \times (P^2 \cdot C)}, \qquad N = \frac{HW}{P^2}")
st.info(f"Live shapes: {cfg.image_size}×{cfg.image_size}×{C} image → {n} patches × {values} values "
        f"= ({n}, {values}). Sequence length with the [class] token: {n + 1}.")

left, right = st.columns(2)
with left:
    st.subheader("What you gave")
    st.image(image.image, caption=f"{image.label} · {image.image.width}×{image.image.height} px", width="stretch")
with right:
    st.subheader("What the model sees")
    fit = state.FITS[state.current_fit()].lower()
    st.caption(f"{fit}, resized to {cfg.image_size}×{cfg.image_size}, "
               f"{'grayscale, ' if C == 1 else ''}normalised (shown here un-normalised)")
    highlight = st.number_input("Highlight patch", 0, n - 1, value=widgets.query_int("patch", 0, 0, n - 1), key="patch")
    widgets.plot(plots.patch_grid_figure(trace["input"], P, show_indices=n <= 400, highlight=int(highlight)), key="patch_grid")

st.subheader("The flattened sequence")
st.markdown(f"Read left to right, top to bottom (row-major), the grid becomes a sequence of {n} patches. "
            "Each one is then flattened into a single row of numbers: the matrix the model actually receives.")
c1, c2 = st.columns(2)
with c1:
    widgets.plot(plots.patch_sequence_figure(trace["patch_pixels"], P, C, max_patches=min(n, 64)), key="patch_sequence")
with c2:
    widgets.plot(plots.patch_vectors_figure(trace["patch_pixels"], max_patches=min(n, 64)), key="patch_vectors")

st.subheader("Playground: patch size and resolution")
st.markdown("Smaller patches or bigger images mean more tokens. Self-attention compares every token with "
            "every other, so its cost grows with the **square** of the sequence length: (N+1)².")
pc1, pc2 = st.columns(2)
with pc1:
    size = st.select_slider("Image size (pixels)", options=[28, 32, 56, 64, 96, 112, 128, 160, 224, 256, 320, 384, 448, 512],
                            value=224, key="play_size")
with pc2:
    patch = st.select_slider("Patch size P", options=[2, 4, 7, 8, 14, 16, 28, 32], value=16, key="play_patch")
if size % patch:
    st.warning(f"{size} is not a multiple of {patch}: the last {size % patch} pixels of each row and column "
               "would be cut off, so real models pick sizes that divide evenly.")
gn = size // patch
N = gn * gn
m1, m2, m3, m4 = st.columns(4)
m1.metric("Grid", f"{gn} × {gn}")
m2.metric("Patches N", f"{N:,}")
m3.metric("Sequence length N+1", f"{N + 1:,}")
m4.metric("Attention cost (N+1)²", f"{(N + 1) ** 2:,}")
st.caption(f"Values per patch: P²·C = {patch}·{patch}·3 = {patch * patch * 3:,} for an RGB image. "
           f"Going from {cfg.image_size} px to {size} px with this model's P = {cfg.patch_size} would need "
           f"{(size // cfg.patch_size) ** 2} position embeddings instead of {cfg.num_patches}: "
           "the paper interpolates them in 2-D (see the position-embeddings page).")
widgets.plot(plots.scaling_figure([s for s in (32, 64, 96, 128, 160, 224, 256, 320, 384, 448, 512) if s % patch == 0] or [size], patch),
            key="scaling")
widgets.sync_query(patch=int(highlight))
