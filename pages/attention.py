"""Stage 4: multi-head self-attention, per head, per layer, per query patch; rollout and distance."""

import numpy as np
import streamlit as st
import torch

from ui import compute, state, widgets
from vit import analysis, claims, plots

choice = state.current_model()
model, cfg = choice.model, choice.model.config
trace = compute.current_trace()
att = trace["attentions"]  # (L, H, T, T)
L, H, T, _ = att.shape
gh, gw = (int(v) for v in trace["grid"])
N = T - 1
ss = st.session_state

st.title("4. Multi-head self-attention")
widgets.explain(
    f"In every block, each token asks every other token how relevant it is. Each of the {H} **heads** "
    f"projects the {T} tokens into queries q, keys k and values v of {cfg.head_dim} dimensions, scores every "
    "pair by q·k, turns each row of scores into probabilities with a softmax, and averages the values with "
    "them. Heads work in parallel and can look for different things; their outputs are concatenated and "
    "projected back. Everything below is a row of those softmax probabilities, for your image.",
    r"\text{SA}(\mathbf{z}) = \text{softmax}\!\left(\frac{\mathbf{q}\mathbf{k}^\top}{\sqrt{D_h}}\right)\mathbf{v}, "
    r"\qquad \text{MSA}(\mathbf{z}) = [\text{SA}_1(\mathbf{z}); \dots; \text{SA}_H(\mathbf{z})]\,\mathbf{U}_{msa}")
image = trace["input"]


def heads_sentence(c: claims.HeadClaim) -> str:
    """What the first block's heads do on this image, from :func:`vit.claims.head_claim`."""
    figures = (f"in layer 1, head {c.local_head + 1} looks {c.local_distance:.1f} px away on average and head "
               f"{c.global_head + 1} {c.global_distance:.1f} px, where attention spread evenly over all patches "
               f"would give {c.uniform_distance:.1f} px (the dashed line)")
    if c.verdict == "clear":
        return f"**This model has local and global heads too**, on your image: {figures}."
    if c.verdict == "weak":
        return (f"**This model separates local and global heads only weakly** on your image: {figures}. A clear "
                "split would have the most local head at most half as far as the most global one, and that one "
                "near the dashed line.")
    return (f"**This model does not show local and global heads** on your image: {figures}. Its first-layer "
            "heads all look about equally far: none is clearly local, none clearly global.")


head_claim = claims.head_claim(trace["distances"], (gh, gw), cfg.patch_size)
st.info(f"Live shapes: {L} layers × {H} heads, each an attention matrix of ({T}, {T}) = {T * T:,} weights; "
        f"q, k, v per head: ({T}, {cfg.head_dim}).")

@st.fragment
def per_head() -> None:
    """Everything that depends on the chosen layer, head and query patch; reruns alone when they change."""
    # Clicks on figures choose a head or a query patch; apply them before the widgets are drawn.
    widgets.apply_click("distance_plot", {"layer": (0, 1), "head": (1, 1)})
    widgets.apply_click("query_grid", {"query": (0, 0)})
    ss.setdefault("layer", widgets.query_int("layer", 1, 1, L))
    ss.setdefault("head", widgets.query_int("head", 1, 1, H))
    ss.setdefault("query", widgets.query_int("query", N // 2 + gw // 2, 1, N) - 1)
    ss["layer"] = min(max(ss["layer"], 1), L)
    ss["head"] = min(max(ss["head"], 1), H)
    ss["query"] = min(max(ss["query"], 0), N - 1)

    c1, c2 = st.columns(2)
    layer = c1.slider("Layer", 1, L, key="layer")
    head = c2.slider("Head", 1, H, key="head")
    li, hi = layer - 1, head - 1

    st.subheader(f"Where the [class] token looks — layer {layer}, head {head}")
    left, right = st.columns(2)
    with left:
        cls_map = att[li, hi, 0, 1:].reshape(gh, gw)
        widgets.plot(plots.patch_map_figure(cls_map, image, title=f"[class] → patches, layer {layer} head {head}",
                                           colorbar_title="attention", percent=True), key="cls_map")
        st.caption(f"Row 0 of the attention matrix, without its own column. Attention to itself: {att[li, hi, 0, 0]:.1%}.")
    with right:
        st.markdown(f"**All {H} heads of layer {layer}** (shared colour scale)")
        heads = att[li, :, 0, 1:].reshape(1, H, gh, gw)
        widgets.plot(plots.maps_grid_figure(heads, None, [f"head {h + 1}" for h in range(H)], shared_scale=True), key="heads_grid")

    st.subheader("Where does one patch look?")
    st.markdown("Pick a query patch by clicking it on the grid, or by its number. Early layers often look at "
                "their neighbours; later ones at whatever matters for the class.")
    q1, q2 = st.columns(2)
    with q1:
        query = st.number_input("Query patch", 0, N - 1, key="query")
        widgets.plot(plots.patch_grid_figure(image, cfg.patch_size, show_indices=N <= 100, highlight=int(query)),
                    key="query_grid", on_select="rerun", selection_mode="points")
    with q2:
        qmap = att[li, hi, int(query) + 1, 1:].reshape(gh, gw)
        widgets.plot(plots.patch_map_figure(qmap, image, title=f"Patch {int(query)} → patches, layer {layer} head {head}",
                                           colorbar_title="attention", percent=True), key="query_map")

    # Drawn only on request: the largest figure of the page, and rarely needed on every slider step.
    if st.toggle(f"Show the full {T}×{T} attention matrix of layer {layer}, head {head}", key="show_matrix"):
        widgets.plot(plots.attention_matrix_figure(att[li, hi], title=f"Layer {layer}, head {head}: rows are queries, columns keys"),
                    key="matrix")

    st.subheader("How far does each head look?")
    widgets.explain(
        "The paper's Fig. 7 (right): for each head, the average distance in pixels between a query patch and the "
        "patches it attends to, weighted by attention. A CNN's early layers can only see locally; in the paper's "
        "large models, some heads already attended to most of the image in the first layer while others stayed "
        "local. **Click a point** to open that head above.",
        r"d_{l,h} = \frac{1}{N}\sum_{i=1}^{N}\sum_{j=1}^{N} \hat{A}^{l,h}_{ij}\,\lVert \mathbf{p}_i - \mathbf{p}_j \rVert, "
        r"\quad \hat{A}_{ij} = \frac{A_{ij}}{\sum_{k\ge 1} A_{ik}}")
    st.markdown(heads_sentence(head_claim))
    widgets.plot(plots.attention_distance_figure(trace["distances"], selected=(li, hi), uniform=head_claim.uniform_distance),
                key="distance_plot", on_select="rerun", selection_mode="points")
    st.caption(f"Distances for your image; the farthest two patches on this {gh}×{gw} grid are "
               f"{np.hypot(gh - 1, gw - 1) * cfg.patch_size:.0f} px apart.")
    widgets.sync_query(layer=layer, head=head, query=int(query) + 1)


per_head()

st.subheader("Every layer × every head")
scale = st.toggle("Normalise each map to its own maximum", value=True, key="overview_norm",
                  help="Attention in later layers is often sharper; per-map scaling shows the pattern of each head.")
overview = att[:, :, 0, 1:].reshape(L, H, gh, gw)
widgets.plot(plots.maps_grid_figure(overview, [f"layer {i + 1}" for i in range(L)], [f"head {h + 1}" for h in range(H)],
                                   title="[class] → patch attention", shared_scale=not scale), key="overview")

st.subheader("Attention rollout")
widgets.explain(
    "One layer's map shows only one step. **Rollout** (Abnar & Zuidema 2020; the paper's Fig. 6) follows "
    "attention through all layers: fuse the heads, add the identity for the residual connection (a token "
    "also keeps itself), re-normalise each row, and multiply the layers together.",
    r"\tilde{A}_l = \text{norm}\big(\text{fuse}_h(A_l) + I\big), \qquad R = \tilde{A}_L \tilde{A}_{L-1}\cdots\tilde{A}_1")
r1, r2 = st.columns(2)
fusion = r1.radio("Head fusion", ["mean", "max", "min"], horizontal=True, key="fusion")
discard = r2.slider("Discard the weakest share of attention", 0.0, 0.95, 0.0, 0.05, key="discard",
                    help="Zeroes the lowest weights in each layer (never the [class] column) before rolling out.")
rollout = analysis.attention_rollout([torch.from_numpy(a)[None] for a in att], fusion, discard)
rmap = analysis.class_rollout_map(rollout, (gh, gw))[0].numpy()
ra, rb = st.columns(2)
with ra:
    widgets.plot(plots.patch_map_figure(rmap, image, title=f"Rollout, {fusion} fusion, discard {discard:.0%}",
                                       colorbar_title="relative"), key="rollout")
with rb:
    widgets.plot(plots.patch_map_figure(att[-1].mean(0)[0, 1:].reshape(gh, gw), image,
                                       title="For comparison: last layer only, mean of heads", colorbar_title="attention", percent=True),
                key="last_layer")

