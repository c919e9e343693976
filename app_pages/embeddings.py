"""Stage 2: the linear patch embedding E and the [class] token."""

import numpy as np
import streamlit as st
import torch

from ui import compute, state, widgets
from ui.i18n import _
from vit import analysis, claims, plots

choice = state.current_model()
model, cfg = choice.model, choice.model.config
trace = compute.current_trace()
n, values = trace["patches"].shape
tokens, D = trace["hidden_states"].shape[-2:]
gh, gw = (int(v) for v in trace["grid"])


def filter_sentence(weight: torch.Tensor) -> str:
    """What this model's filters show against its untrained twin's, from :func:`vit.claims.filter_claim`."""
    twin = state.untrained_twin(choice)
    if twin is None:
        return _("This model is untrained: its filters are random numbers. Choose a trained model on the start "
                 "page to compare.")
    c = claims.filter_claim(weight, twin.patch_embed.weight.detach().cpu())
    figures = _("the top {k} components explain {trained} of the filters' variance, against {untrained} for the "
                "same architecture untrained").format(k=c.k, trained=f"{c.trained_share:.0%}",
                                                      untrained=f"{c.untrained_share:.0%}")
    if c.verdict == "clear":
        shown = _("**This model has it**: {figures}.").format(figures=figures)
    elif c.verdict == "weak":
        shown = _("**This model has only a little more of it than random filters**: {figures}.").format(figures=figures)
    else:
        shown = _("**This model's filters have no more of it than random ones**: {figures}. A tiny model with "
                  "{p}×{p} patches has little room for the paper's smooth filters.").format(figures=figures,
                                                                                           p=cfg.patch_size)
    return _("Structure shows as variance gathered in a few components.") + " " + shown


st.title(_("2. Linear projection and the [class] token"))
widgets.explain(
    _("Each flattened patch (a vector of {values} values) is multiplied by one learned matrix **E** of shape "
      "{values} × {d}. Every patch gets the *same* projection, so the model sees each patch in the same "
      "\"vocabulary\" of {d} dimensions. In code this is a Conv2d whose kernel and stride are both P = {p}: "
      "sliding a P×P filter with no overlap is exactly a matrix product with each flattened patch. "
      "Then a learned **[class]** token is put in front of the sequence, as BERT's [CLS]. It belongs to no patch; "
      "through attention it gathers what the head needs, and its final state is what the model classifies."
      ).format(values=values, d=D, p=cfg.patch_size),
    r"\mathbf{z}_0 = [\,\mathbf{x}_\text{class};\; \mathbf{x}_p^1\mathbf{E};\; \mathbf{x}_p^2\mathbf{E};\; \dots;\; "
    r"\mathbf{x}_p^N\mathbf{E}\,] + \mathbf{E}_\text{pos}, \qquad \mathbf{E} \in \mathbb{R}^{(P^2\cdot C)\times D}")
st.info(_("Live shapes: patches ({n}, {values}) × E ({values}, {d}) = ({n}, {d}); with [class] prepended: "
          "({t}, {d}); plus E_pos ({t}, {d}) → z₀ ({t}, {d}).").format(n=n, values=values, d=D, t=tokens))

st.subheader(_("Conv2d with kernel = stride = P is a Linear layer"))
with torch.inference_mode():
    x = torch.from_numpy(trace["patches"])[None]
    w = model.patch_embed.weight.detach().cpu().float()
    linear = x @ w.permute(0, 2, 3, 1).reshape(D, -1).T + model.patch_embed.bias.detach().cpu().float()
diff = float((linear[0].numpy() - trace["patch_embeddings"]).__abs__().max())
if diff == 0:
    st.markdown(_("Flattening the {n} patches and multiplying by the reshaped Conv2d weight gives a {n} × {d} "
                  "matrix that is **exactly the same** as the convolution's output, on your image.").format(n=n, d=D))
else:
    st.markdown(_("Flattening the {n} patches and multiplying by the reshaped Conv2d weight gives a {n} × {d} "
                  "matrix that is **the same as the convolution's output up to floating-point rounding** (largest "
                  "difference {diff}), on your image.").format(n=n, d=D, diff=f"{diff:.1e}"))
st.code("patches = rearrange(x, 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)', p1=P, p2=P)\n"
        "E = rearrange(conv.weight, 'd c p1 p2 -> (p1 p2 c) d')\n"
        "assert torch.allclose(patches @ E + conv.bias, conv(x).flatten(2).transpose(1, 2))", language="python")


@widgets.fragment
def filters() -> None:
    """The filter PCA; the slider reruns only this part."""
    st.subheader(_("What E looks for"))
    k = widgets.int_slider(_("Principal components"), min(4, D, values), min(28, D, values), min(28, D, values), key="pca_k")
    weight = model.patch_embed.weight.detach().cpu()
    components, explained = analysis.embedding_filter_pca(weight, k)
    st.markdown(_("The paper's Fig. 7 (left): the top principal components of the {d} learned filters in E, "
                  "each drawn as a {p}×{p} patch. In the paper's large models they looked like smooth, "
                  "low-frequency basis functions (blobs, stripes, edges).").format(d=D, p=cfg.patch_size))
    st.markdown(filter_sentence(weight))
    widgets.plot(plots.filters_figure(components.numpy(), explained.numpy()), key="filters_pca",
                 name=widgets.figure_name("embeddings-filters", components=k))


left, right = widgets.columns(2)
with left:
    filters()
with right:
    st.subheader(_("How strongly each patch is embedded"))
    norms = np.linalg.norm(trace["patch_embeddings"], axis=-1).reshape(gh, gw)
    st.markdown(_("The length {norm} of each patch embedding, laid over the image. Patches with more structure "
                  "(edges, texture) often get longer vectors than flat background.").format(
        norm=r"$\lVert \mathbf{x}_p \mathbf{E} \rVert$"))
    widgets.plot(plots.patch_map_figure(norms, trace["input"], title=_("Length ‖xₚE‖ of each patch embedding"),
                                        colorbar_title=_("length ‖xₚE‖")),
                 key="embed_norms", name=widgets.figure_name("embeddings-lengths"))

st.subheader(_("The token matrix z₀"))
st.markdown(_("Each row is one token, each column one of the {d} dimensions: row 0 is the [class] token, "
              "rows 1–{n} are patches 1 to {n} in order. This is what enters the first encoder block."
              ).format(d=D, n=n))
widgets.plot(plots.token_matrix_figure(trace["hidden_states"][0], max_dims=256), key="token_matrix",
             name=widgets.figure_name("embeddings-tokens"))
if D > 256:
    st.caption(_("The first 256 of {d} dimensions are drawn; the download in the sidebar has them all.").format(d=D))
with st.expander(_("[class] token or mean pooling?")):
    st.markdown(_("The paper reads the final [class] token. Some later models (and the paper's own ablation in "
                  "Appendix D.3) instead average all patch tokens — *global average pooling* — and reach similar "
                  "accuracy."))
    st.markdown(_("This model uses **the [class] token**.") if cfg.pool == "cls" else
                _("This model uses **mean pooling**."))
