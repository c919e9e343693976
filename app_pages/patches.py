"""Stage 1: the image becomes a sequence of P×P patches, the "16×16 words"."""

import streamlit as st

from ui import compute, state, widgets
from ui.i18n import _
from vit import plots

choice, image = state.current_model(), state.current_image()
model, cfg = choice.model, choice.model.config
trace = compute.current_trace()
n, values = trace["patches"].shape
gh, gw = trace["grid"]
P, C = cfg.patch_size, cfg.in_channels

st.title(_("1. Image → patches"))
widgets.explain(
    _("A Transformer reads a **sequence**. To turn an image into one, the ViT cuts it into square patches "
      "of P×P pixels and flattens each patch into a vector of P²·C numbers. For this model P = {p} and "
      "C = {c}, so your image becomes a {gh}×{gw} grid of **N = {n} patches**, each a vector of "
      "{p}·{p}·{c} = **{values} values**: the \"words\" of the sentence the Transformer reads. "
      "They are numbered 1 to N, left to right and top to bottom, as the paper's xₚ¹ … xₚᴺ; "
      "position 0 of the sequence will be the [class] token."
      ).format(p=P, c=C, gh=gh, gw=gw, n=n, values=values),
    r"\mathbf{x} \in \mathbb{R}^{H \times W \times C} \;\longrightarrow\; "
    r"\mathbf{x}_p \in \mathbb{R}^{N \times (P^2 \cdot C)}, \qquad N = \frac{HW}{P^2}")
st.info(_("Live shapes: {s}×{s}×{c} image → {n} patches × {values} values = ({n}, {values}). "
          "Sequence length with the [class] token: {t}.").format(s=cfg.image_size, c=C, n=n, values=values, t=n + 1))


@widgets.fragment
def highlighted_grid() -> None:
    """The patch grid with one patch highlighted; reruns alone when the number changes."""
    highlight = int(st.number_input(
        _("Highlight patch"), 1, n, value=widgets.query_int("patch", 1, 1, n), key="patch",
        help=_("Patches are numbered 1 to {n}, left to right and top to bottom, as in the paper; "
               "token 0 of the sequence is the [class] token.").format(n=n)))
    widgets.plot(plots.patch_grid_figure(trace["input"], P, show_indices=n <= 400, highlight=highlight),
                 key="patch_grid", name=widgets.figure_name("patches-grid", patch=highlight))
    widgets.sync_query(patch=highlight)


left, right = widgets.columns([2, 3])
with left:
    st.subheader(_("What you gave"))
    w, h = image.image.size
    shown = widgets.display_image(image.image)
    caption = (_("{label} · {w}×{h} px, shown {k}× larger, pixel for pixel").format(
        label=state.image_label(image), w=w, h=h, k=shown.width // w) if shown.size != image.image.size
        else f"{state.image_label(image)} · {w}×{h} px")
    st.image(shown, caption=caption, width="stretch")
with right:
    st.subheader(_("What the model sees"))
    fit = _(state.FITS[state.current_fit()])
    made = (_("{fit}, resized to {s}×{s}, grayscale, normalised (shown here un-normalised)") if C == 1 else
            _("{fit}, resized to {s}×{s}, normalised (shown here un-normalised)"))
    st.caption(made.format(fit=fit, s=cfg.image_size))
    for note in state.fit_notes(image, model):
        st.info(note, icon=":material/info:")
    highlighted_grid()

st.subheader(_("The flattened sequence"))
st.markdown(_("Read left to right, top to bottom (row-major), the grid becomes a sequence of {n} patches. "
              "Each one is then flattened into a single row of numbers: the matrix the model actually receives."
              ).format(n=n))
c1, c2 = widgets.columns(2)
with c1:
    widgets.plot(plots.patch_sequence_figure(trace["patch_pixels"], P, C, max_patches=min(n, 64)),
                 key="patch_sequence", name=widgets.figure_name("patches-sequence"))
with c2:
    widgets.plot(plots.patch_vectors_figure(trace["patch_pixels"], max_patches=min(n, 64)),
                 key="patch_vectors", name=widgets.figure_name("patches-vectors"))


@widgets.fragment
def playground() -> None:
    """Patch size and resolution against sequence length; its sliders rerun only this part."""
    st.subheader(_("Playground: patch size and resolution"))
    st.markdown(_("Smaller patches or bigger images mean more tokens. Self-attention compares every token with "
                  "every other, so its cost grows with the **square** of the sequence length: (N+1)²."))
    pc1, pc2 = st.columns(2)
    with pc1:
        size = st.select_slider(_("Image size (pixels)"),
                                options=[28, 32, 56, 64, 96, 112, 128, 160, 224, 256, 320, 384, 448, 512],
                                value=224, key="play_size")
    with pc2:
        patch = st.select_slider(_("Patch size P"), options=[2, 4, 7, 8, 14, 16, 28, 32], value=16, key="play_patch")
    if size % patch:
        st.warning(_("{size} is not a multiple of {patch}: the last {rest} pixels of each row and column "
                     "would be cut off, so real models pick sizes that divide evenly.").format(
            size=size, patch=patch, rest=size % patch))
    gn = size // patch
    N = gn * gn
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(_("Grid"), f"{gn} × {gn}")
    m2.metric(_("Patches N"), f"{N:,}")
    m3.metric(_("Sequence length N+1"), f"{N + 1:,}")
    m4.metric(_("Attention cost (N+1)²"), f"{(N + 1) ** 2:,}")
    st.caption(_("Values per patch: P²·C = {p}·{p}·3 = {values} for an RGB image. Going from {s} px to {size} px "
                 "with this model's P = {mp} would need {needed} position embeddings instead of {learned}: "
                 "the paper interpolates them in 2-D (see the position-embeddings page).").format(
        p=patch, values=f"{patch * patch * 3:,}", s=cfg.image_size, size=size, mp=cfg.patch_size,
        needed=f"{(size // cfg.patch_size) ** 2:,}", learned=f"{cfg.num_patches:,}"))
    widgets.plot(plots.scaling_figure([s for s in (32, 64, 96, 128, 160, 224, 256, 320, 384, 448, 512) if s % patch == 0]
                                      or [size], patch),
                 key="scaling", name=widgets.figure_name("patches-cost", patch_size=patch))


playground()
