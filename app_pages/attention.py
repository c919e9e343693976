"""Stage 4: multi-head self-attention, per head, per layer, per query token; rollout and distance.

Tokens and patches are numbered as in the paper: token 0 is [class], token k is patch k (k = 1…N),
on screen and in the URL (``?query=5`` opens patch 5). Arrays are indexed by token, so query k is
row k of an attention matrix and patch k is column k (index k - 1 of a patch map).
"""

import numpy as np
import streamlit as st
import torch

from ui import compute, state, widgets
from ui.i18n import N_, _, number
from vit import analysis, claims, plots

choice = state.current_model()
model, cfg = choice.model, choice.model.config
trace = compute.current_trace()
att = trace["attentions"]  # (L, H, T, T)
L, H, T = att.shape[:3]
gh, gw = (int(v) for v in trace["grid"])
N = T - 1
ss = st.session_state
FUSIONS = {"mean": N_("mean of the heads"), "max": N_("max over the heads"), "min": N_("min over the heads")}

st.title(_("4. Multi-head self-attention"))
widgets.explain(
    _("In every block, each token asks every other token how relevant it is. Each of the {heads} **heads** "
      "projects the {tokens} tokens into queries q, keys k and values v of {dh} dimensions, scores every "
      "pair by q·k, turns each row of scores into probabilities with a softmax, and averages the values with "
      "them. Heads work in parallel and can look for different things; their outputs are concatenated and "
      "projected back. Everything below is a row of those softmax probabilities, for your image.")
    .format(heads=H, tokens=T, dh=cfg.head_dim),
    r"\text{SA}(\mathbf{z}) = \text{softmax}\!\left(\frac{\mathbf{q}\mathbf{k}^\top}{\sqrt{D_h}}\right)\mathbf{v}")
st.latex(r"\text{MSA}(\mathbf{z}) = [\text{SA}_1(\mathbf{z}); \dots; \text{SA}_H(\mathbf{z})]\,\mathbf{U}_{msa}")
image = trace["input"]


def heads_sentence(c: claims.HeadClaim) -> str:
    """What the first block's heads do on this image, from :func:`vit.claims.head_claim`."""
    figures = _("in layer {layer}, head {near} looks {near_px} px away on average and head {far} {far_px} px, "
                "where attention spread evenly over all patches would give {uniform_px} px (the dashed line)").format(
        layer=c.layer + 1, near=c.local_head + 1, near_px=f"{c.local_distance:.1f}", far=c.global_head + 1,
        far_px=f"{c.global_distance:.1f}", uniform_px=f"{c.uniform_distance:.1f}")
    if c.verdict == "clear":
        return _("**This model has local and global heads too**, on your image: {figures}.").format(figures=figures)
    if c.verdict == "weak":
        return _("**This model separates local and global heads only weakly** on your image: {figures}. A clear "
                 "split would have the most local head at most half as far as the most global one, and that one "
                 "near the dashed line.").format(figures=figures)
    return _("**This model does not show local and global heads** on your image: {figures}. Its first-layer "
             "heads all look about equally far: none is clearly local, none clearly global.").format(figures=figures)


head_claim = claims.head_claim(trace["distances"], (gh, gw), cfg.patch_size)
st.info(_("Live shapes: {layers} layers × {heads} heads, each an attention matrix of ({t}, {t}) = {weights} weights; "
          "q, k, v per head: ({t}, {dh}).").format(layers=L, heads=H, t=T, weights=number(T * T), dh=cfg.head_dim))


@widgets.fragment
def per_head() -> None:
    """Everything that depends on the chosen layer, head and query token; reruns alone when they change."""
    # Clicks on figures choose a head or a query patch; apply them before the widgets are drawn.
    # The patch grid's customdata is the 0-based patch index, so patch number = index + 1.
    widgets.apply_click("distance_plot", {"layer": (0, 1), "head": (1, 1)})
    widgets.apply_click("query_grid", {"query": (0, 1)})
    ss.setdefault("layer", widgets.query_int("layer", 1, 1, L))
    ss.setdefault("head", widgets.query_int("head", 1, 1, H))
    ss.setdefault("query", widgets.query_int("query", max(1, N // 2 + gw // 2), 0, N))
    ss["layer"] = min(max(ss["layer"], 1), L)
    ss["head"] = min(max(ss["head"], 1), H)
    ss["query"] = min(max(ss["query"], 0), N)

    c1, c2 = st.columns(2)
    layer = widgets.int_slider(_("Layer"), 1, L, key="layer", where=c1)
    head = widgets.int_slider(_("Head"), 1, H, key="head", where=c2)
    li, hi = layer - 1, head - 1

    st.subheader(_("Where the [class] token looks — layer {layer}, head {head}").format(layer=layer, head=head))
    left, right = widgets.columns(2)
    with left:
        cls_map = att[li, hi, 0, 1:].reshape(gh, gw)
        widgets.plot(plots.patch_map_figure(
            cls_map, image, title=_("[class] → patches, layer {layer} head {head}").format(layer=layer, head=head),
            attention=True),
            key="cls_map", name=widgets.figure_name("attention", layer=layer, head=head))
        st.caption(_("Row 0 of the attention matrix, without its own column. Attention to itself: {share}.")
                   .format(share=widgets.percent(att[li, hi, 0, 0])))
    with right:
        st.markdown(_("**All {heads} heads of layer {layer}** (shared colour scale)").format(heads=H, layer=layer))
        heads = att[li, :, 0, 1:].reshape(1, H, gh, gw)
        widgets.plot(plots.maps_grid_figure(heads, None, [_("Head {n}").format(n=h + 1) for h in range(H)],
                                            shared_scale=True, attention=True, wrap=4),  # 6 heads: 2 rows of 3
                     key="heads_grid", name=widgets.figure_name("attention", layer=layer, head="all"))

    st.subheader(_("Where does one token look?"))
    st.markdown(_("Pick a query patch by clicking it on the grid, or by its number: patches are numbered 1 to {n}, "
                  "and 0 is the [class] token. Early layers often look at their neighbours; later ones at whatever "
                  "matters for the class.").format(n=N))
    q1, q2 = widgets.columns(2)
    with q1:
        query = int(st.number_input(_("Query token (0 = [class], 1 to {n} = patches)").format(n=N), 0, N, key="query"))
        widgets.plot(plots.patch_grid_figure(image, cfg.patch_size, show_indices=N <= 100,
                                             highlight=query or None),
                     key="query_grid", name=widgets.figure_name("attention", figure="grid", query=query),
                     on_select="rerun", selection_mode="points")
    with q2:
        qmap = att[li, hi, query, 1:].reshape(gh, gw)
        title = (_("[class] → patches, layer {layer} head {head}") if query == 0
                 else _("Patch {patch} → patches, layer {layer} head {head}"))
        widgets.plot(plots.patch_map_figure(qmap, image, title=title.format(patch=query, layer=layer, head=head),
                                            attention=True),
                     key="query_map", name=widgets.figure_name("attention", layer=layer, head=head, query=query))
        caption = (_("Row 0 of the attention matrix, without its own column. Attention to itself: {share}.")
                   if query == 0 else
                   _("Row {row} of the attention matrix (patch {row} as the query), without the [class] column. "
                     "Attention to the [class] token: {share}."))
        st.caption(caption.format(row=query, share=widgets.percent(att[li, hi, query, 0])))

    # Drawn only on request: the largest figure of the page, and rarely needed on every slider step.
    if st.toggle(_("Show the full {t}×{t} attention matrix of layer {layer}, head {head}").format(t=T, layer=layer, head=head),
                 key="show_matrix"):
        widgets.plot(plots.attention_matrix_figure(
            att[li, hi], title=_("Layer {layer}, head {head}: rows are queries, columns keys").format(layer=layer, head=head)),
            key="matrix", name=widgets.figure_name("attention", figure="matrix", layer=layer, head=head))

    st.subheader(_("How far does each head look?"))
    widgets.explain(
        _("The paper's Fig. 7 (right): for each head, the average distance in pixels between a query patch and the "
          "patches it attends to, weighted by attention. A CNN's early layers can only see locally; in the paper's "
          "large models, some heads already attended to most of the image in the first layer while others stayed "
          "local. **Click a point** to open that head above."),
        r"d_{l,h} = \frac{1}{N}\sum_{i=1}^{N}\sum_{j=1}^{N} \hat{A}^{l,h}_{ij}\,\lVert \mathbf{p}_i - \mathbf{p}_j \rVert")
    st.latex(r"\hat{A}_{ij} = \frac{A_{ij}}{\sum_{k\ge 1} A_{ik}}")
    st.markdown(heads_sentence(head_claim))
    widgets.plot(plots.attention_distance_figure(trace["distances"], selected=(li, hi), uniform=head_claim.uniform_distance),
                 key="distance_plot", name=widgets.figure_name("attention", figure="distances"),
                 on_select="rerun", selection_mode="points")
    st.caption(_("Distances for your image; the farthest two patches on this {gh}×{gw} grid are {px} px apart.")
               .format(gh=gh, gw=gw, px=f"{np.hypot(gh - 1, gw - 1) * cfg.patch_size:.0f}"))
    widgets.sync_query(layer=layer, head=head, query=query)


per_head()

st.subheader(_("Every layer × every head"))
scale = st.toggle(_("Normalise each map to its own maximum"), value=True, key="overview_norm",
                  help=_("Attention in later layers is often sharper; per-map scaling shows the pattern of each head."))
overview = att[:, :, 0, 1:].reshape(L, H, gh, gw)
widgets.plot(plots.maps_grid_figure(overview, [_("Layer {n}").format(n=i + 1) for i in range(L)],
                                    [_("Head {n}").format(n=h + 1) for h in range(H)],
                                    title=_("[class] → patch attention"), shared_scale=not scale, attention=True),
             key="overview", name=widgets.figure_name("attention", layer="all", head="all"))

st.subheader(_("Attention rollout"))
widgets.explain(
    _("One layer's map shows only one step. **Rollout** (Abnar & Zuidema 2020; the paper's Fig. 6) follows "
      "attention through all layers: fuse the heads, add the identity for the residual connection (a token "
      "also keeps itself), re-normalise each row, and multiply the layers together."),
    r"\tilde{A}_l = \text{norm}\big(\text{fuse}_h(A_l) + I\big), \qquad R = \tilde{A}_L \tilde{A}_{L-1}\cdots\tilde{A}_1")
r1, r2 = st.columns(2)
fusion = r1.radio(_("Head fusion"), list(FUSIONS), format_func=lambda k: _(FUSIONS[k]), horizontal=True, key="fusion")
discard = r2.slider(_("Discard the weakest share of attention"), 0.0, 0.95, 0.0, 0.05, key="discard",
                    help=_("Zeroes the lowest weights in each layer (never the [class] column) before rolling out."))
rollout = analysis.attention_rollout([torch.from_numpy(a)[None] for a in att], fusion, discard)
rmap = analysis.class_rollout_map(rollout, (gh, gw))[0].numpy()
ra, rb = widgets.columns(2)
with ra:
    widgets.plot(plots.patch_map_figure(
        rmap, image, title=_("Rollout, {fusion}, weakest {share} discarded").format(
            fusion=_(FUSIONS[fusion]), share=widgets.percent(discard, 0)),
        colorbar_title=_("relative weight")),
        key="rollout", name=widgets.figure_name("attention", figure="rollout", fusion=fusion, discard=f"{discard:.2f}"))
with rb:
    widgets.plot(plots.patch_map_figure(att[-1].mean(0)[0, 1:].reshape(gh, gw), image,
                                        title=_("For comparison: last layer only, mean of heads"),
                                        attention=True),
                 key="last_layer", name=widgets.figure_name("attention", layer=L, head="mean"))
