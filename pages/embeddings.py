"""Stage 2: the linear patch embedding E and the [class] token."""

import numpy as np
import streamlit as st
import torch

from ui import compute, state, widgets
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
        return ("This model is untrained: its filters are random numbers. Choose a trained model on the start "
                "page to compare.")
    c = claims.filter_claim(weight, twin.patch_embed.weight.detach().cpu())
    figures = (f"the top {c.k} components explain {c.trained_share:.0%} of the filters' variance, against "
               f"{c.untrained_share:.0%} for the same architecture untrained")
    shown = {"clear": f"**This model has it**: {figures}.",
             "weak": f"**This model has only a little more of it than random filters**: {figures}.",
             "none": f"**This model's filters have no more of it than random ones**: {figures}. A tiny model with "
                     f"{cfg.patch_size}×{cfg.patch_size} patches has little room for the paper's smooth filters."}
    return "Structure shows as variance gathered in a few components. " + shown[c.verdict]


st.title("2. Linear projection and the [class] token")
widgets.explain(
    f"Each flattened patch (a vector of {values} values) is multiplied by one learned matrix **E** of shape "
    f"{values} × {D}. Every patch gets the *same* projection, so the model sees each patch in the same "
    f"\"vocabulary\" of {D} dimensions. In code this is a Conv2d whose kernel and stride are both P = {cfg.patch_size}: "
    "sliding a P×P filter with no overlap is exactly a matrix product with each flattened patch. "
    "Then a learned **[class]** token is put in front of the sequence, as BERT's [CLS]. It belongs to no patch; "
    "through attention it gathers what the head needs, and its final state is what the model classifies.",
    r"\mathbf{z}_0 = [\,\mathbf{x}_\text{class};\; \mathbf{x}_p^1\mathbf{E};\; \mathbf{x}_p^2\mathbf{E};\; \dots;\; "
    r"\mathbf{x}_p^N\mathbf{E}\,] + \mathbf{E}_\text{pos}, \qquad \mathbf{E} \in \mathbb{R}^{(P^2\cdot C)\times D}")
st.info(f"Live shapes: patches ({n}, {values}) × E ({values}, {D}) = ({n}, {D}); with [class] prepended: "
        f"({tokens}, {D}); plus E_pos ({tokens}, {D}) → z₀ ({tokens}, {D}).")

st.subheader("Conv2d with kernel = stride = P is a Linear layer")
with torch.inference_mode():
    x = torch.from_numpy(trace["patches"])[None]
    w = model.patch_embed.weight.detach().cpu().float()
    linear = x @ w.permute(0, 2, 3, 1).reshape(D, -1).T + model.patch_embed.bias.detach().cpu().float()
diff = float((linear[0].numpy() - trace["patch_embeddings"]).__abs__().max())
same = "exactly the same" if diff == 0 else f"the same up to floating-point rounding (largest difference {diff:.1e})"
st.markdown(f"Flattening the {n} patches and multiplying by the reshaped Conv2d weight gives a {n} × {D} "
            f"matrix that is **{same}** as the convolution's output, on your image.")
st.code("patches = rearrange(x, 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)', p1=P, p2=P)\n"
        "E = rearrange(conv.weight, 'd c p1 p2 -> (p1 p2 c) d')\n"
        "assert torch.allclose(patches @ E + conv.bias, conv(x).flatten(2).transpose(1, 2))", language="python")

left, right = st.columns(2)
with left:
    st.subheader("What E looks for")
    k = st.slider("Principal components", 4, min(28, D, values), min(28, D, values), key="pca_k")
    weight = model.patch_embed.weight.detach().cpu()
    components, explained = analysis.embedding_filter_pca(weight, k)
    st.markdown(f"The paper's Fig. 7 (left): the top principal components of the {D} learned filters in E, "
                f"each drawn as a {cfg.patch_size}×{cfg.patch_size} patch. In the paper's large models they "
                "looked like smooth, low-frequency basis functions (blobs, stripes, edges).")
    st.markdown(filter_sentence(weight))
    widgets.plot(plots.filters_figure(components.numpy(), explained.numpy()), key="filters_pca")
with right:
    st.subheader("How strongly each patch is embedded")
    norms = np.linalg.norm(trace["patch_embeddings"], axis=-1).reshape(gh, gw)
    st.markdown(r"The length $\lVert \mathbf{x}_p \mathbf{E} \rVert$ of each patch embedding, laid over the image. Patches with more "
                "structure (edges, texture) often get longer vectors than flat background.")
    widgets.plot(plots.patch_map_figure(norms, trace["input"], title="‖xₚE‖ per patch", colorbar_title="norm"), key="embed_norms")

st.subheader("The token matrix z₀")
st.markdown(f"Each row is one token, each column one of the {D} dimensions: row 0 is the [class] token, "
            f"rows 1–{n} are the patches in order. This is what enters the first encoder block.")
widgets.plot(plots.token_matrix_figure(trace["hidden_states"][0], max_dims=256), key="token_matrix")
if D > 256:
    st.caption(f"The first 256 of {D} dimensions are drawn; the download in the sidebar has them all.")
with st.expander("[class] token or mean pooling?"):
    st.markdown("The paper reads the final [class] token. Some later models (and the paper's own ablation in "
                "Appendix D.3) instead average all patch tokens — *global average pooling* — and reach similar "
                f"accuracy. This model uses **{'the [class] token' if cfg.pool == 'cls' else 'mean pooling'}**.")
