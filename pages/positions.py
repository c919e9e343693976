"""Stage 3: learned 1-D position embeddings, their 2-D similarity structure and interpolation."""

import streamlit as st
import torch

import vit
from ui import state, widgets
from vit import analysis, claims, plots

choice = state.current_model()
model, cfg = choice.model, choice.model.config
g = cfg.grid_size
N = cfg.num_patches


def similarity_of(m: vit.VisionTransformer, grid: tuple[int, int]) -> torch.Tensor:
    with torch.inference_mode():
        return analysis.position_similarity(m.position_embeddings_for(grid).detach().cpu())


def claim_sentence(c: claims.PositionClaim) -> str:
    """What this model shows, with its figures, for the verdict of :func:`vit.claims.position_claim`."""
    figures = (f"neighbour score {c.neighbour_score:.2f} against a chance level of {c.chance:.2f}, "
               f"Spearman ρ(similarity, distance) = {c.spearman:+.2f}")
    if c.verdict == "clear":
        return (f"**This model has learned the grid too**: {figures}. For most positions the most similar other "
                "position is a grid neighbour, and similarity falls with distance on the grid.")
    if c.verdict == "weak":
        return (f"**This model shows the grid only weakly**: {figures} (a clear grid scores at least 0.80 with ρ "
                "at most −0.30).")
    return (f"**This model does not show the grid**: {figures}. Its position embeddings carry no more sign of "
            "the 2-D grid than random vectors would.")


st.title("3. Position embeddings")
widgets.explain(
    "Attention by itself has no idea *where* a patch came from: shuffle the patches and it computes the "
    "same thing. So the ViT adds a learned vector **E_pos** to every token, one per position in the "
    f"sequence ({N} patch positions + 1 for [class]). They are plain 1-D embeddings: nobody tells the "
    f"model that position {g} sits below position 0. In the paper, trained on large image datasets, "
    "neighbouring positions ended up with similar embeddings: the models learned the 2-D grid by themselves "
    "(the paper's Fig. 7, centre).",
    r"\mathbf{E}_\text{pos} \in \mathbb{R}^{(N+1)\times D}, \qquad "
    r"\text{sim}(i,j) = \frac{\mathbf{E}_\text{pos}^{i}\cdot\mathbf{E}_\text{pos}^{j}}"
    r"{\lVert\mathbf{E}_\text{pos}^{i}\rVert\,\lVert\mathbf{E}_\text{pos}^{j}\rVert}")

if cfg.pos_embedding != "learned":
    st.warning(f"This model uses **{cfg.pos_embedding}** position embeddings, which are fixed, not learned: "
               "the structure below was put there by hand.")

sim = similarity_of(model, (g, g))
with torch.inference_mode():
    claim = claims.position_claim(model.position_embeddings_for((g, g)), (g, g))
st.markdown(claim_sentence(claim))
st.info(f"Live shapes: E_pos is ({N + 1}, {cfg.dim}); the similarity matrix between the {N} patch positions "
        f"is ({N}, {N}), drawn as {g}×{g} tiles of {g}×{g}.")
m1, m2 = st.columns(2)
m1.metric("Neighbour score", f"{claim.neighbour_score:.2f}", f"chance {claim.chance:.2f}", delta_color="off", delta_arrow="off",
          help="Share of positions whose most similar other position is one of its (up to 8) grid neighbours. "
               f"Embeddings without spatial structure score about {claim.chance:.2f} on this {g}×{g} grid "
               "(the chance level).")
m2.metric("Spearman(similarity, distance)", f"{claim.spearman:+.2f}",
          help="Negative: nearby positions are more similar. Near 0: no spatial structure.")

untrained = state.untrained_twin(choice)

left, right = st.columns(2)
with left:
    st.subheader(f"{choice.label}")
    widgets.plot(plots.position_similarity_figure(sim.numpy(), (g, g)), key="pos_sim")
with right:
    if untrained is not None:
        st.subheader("The same architecture, untrained")
        sim_u = similarity_of(untrained, (g, g))
        widgets.plot(plots.position_similarity_figure(sim_u.numpy(), (g, g)), key="pos_sim_untrained")
        st.caption(f"Neighbour score {analysis.neighbour_score(sim_u, (g, g)):.2f} (chance {claim.chance:.2f}): "
                   f"random vectors in {cfg.dim} dimensions are nearly orthogonal, so every tile is a single bright dot.")
    else:
        st.subheader("Compare with a trained model")
        st.markdown("You are looking at an untrained model: each position is similar only to itself. "
                    "Choose a trained model on the start page to see the grid emerge.")

st.subheader("One position, large")
pos = st.slider("Patch position", 0, N - 1, widgets.query_int("position", N // 2 + g // 2, 0, N - 1), key="position")
r, c = divmod(pos, g)
widgets.plot(plots.patch_map_figure(sim[pos].reshape(g, g).numpy(), None, title=f"Similarity of position {pos} (row {r}, column {c}) to all others",
                                   colorscale="RdBu_r", zmin=-1, zmax=1, colorbar_title="cosine"), key="pos_one")

st.subheader("Higher resolution: 2-D interpolation")
st.markdown(f"Fine-tuning at a higher resolution keeps P, so the grid grows and there are more positions than "
            f"were learned. The paper resizes the {g}×{g} grid of embeddings as an image, by 2-D bicubic "
            "interpolation; the [class] position is kept as it is.")
new_g = st.slider("New grid size", g, 3 * g, min(2 * g, 3 * g), key="interp_grid")
with torch.inference_mode():
    pos_new = vit.interpolate_position_embeddings(model.position_embeddings_for((g, g)).detach().cpu(), (new_g, new_g)) \
        if cfg.pos_embedding == "learned" else model.position_embeddings_for((new_g, new_g)).detach().cpu()
sim_new = analysis.position_similarity(pos_new)
st.info(f"Live shapes: ({N + 1}, {cfg.dim}) → ({new_g * new_g + 1}, {cfg.dim}) for a "
        f"{new_g * cfg.patch_size}×{new_g * cfg.patch_size} image.")
pos_r, pos_c = round(r * (new_g - 1) / max(1, g - 1)), round(c * (new_g - 1) / max(1, g - 1))
b, a = st.columns(2)
with b:
    widgets.plot(plots.patch_map_figure(sim[pos].reshape(g, g).numpy(), None, title=f"Before: {g}×{g}, position ({r}, {c})",
                                       colorscale="RdBu_r", zmin=-1, zmax=1), key="interp_before")
with a:
    idx = pos_r * new_g + pos_c
    widgets.plot(plots.patch_map_figure(sim_new[idx].reshape(new_g, new_g).numpy(), None,
                                       title=f"After: {new_g}×{new_g}, position ({pos_r}, {pos_c})",
                                       colorscale="RdBu_r", zmin=-1, zmax=1), key="interp_after")
widgets.sync_query(position=pos)
