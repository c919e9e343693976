"""Stage 3: learned 1-D position embeddings, their 2-D similarity structure and interpolation."""

import streamlit as st
import torch

import vit
from ui import state, widgets
from ui.i18n import _
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
    figures = _("neighbour score {score} against a chance level of {chance}, Spearman ρ(similarity, distance) = "
                "{rho}").format(score=f"{c.neighbour_score:.2f}", chance=f"{c.chance:.2f}", rho=f"{c.spearman:+.2f}")
    if c.verdict == "clear":
        return _("**This model has learned the grid too**: {figures}. For most positions the most similar other "
                 "position is a grid neighbour, and similarity falls with distance on the grid.").format(figures=figures)
    if c.verdict == "weak":
        return _("**This model shows the grid only weakly**: {figures} (a clear grid scores at least {score} with ρ "
                 "at most {rho}).").format(figures=figures, score="0.80", rho="−0.30")
    return _("**This model does not show the grid**: {figures}. Its position embeddings carry no more sign of "
             "the 2-D grid than random vectors would.").format(figures=figures)


st.title(_("3. Position embeddings: where each patch sits"))
widgets.explain(
    _("Attention by itself has no idea *where* a patch came from: shuffle the patches and it computes the "
      "same thing. So the ViT adds a learned vector **E_pos** to every token, one per position in the "
      "sequence ({n} patch positions + 1 for [class]). They are plain 1-D embeddings: nobody tells the "
      "model that patch {below} sits below patch 1. In the paper, trained on large image datasets, "
      "neighbouring positions ended up with similar embeddings: the models learned the 2-D grid by themselves "
      "(the paper's Fig. 7, centre).").format(n=N, below=g + 1),
    r"\mathbf{E}_\text{pos} \in \mathbb{R}^{(N+1)\times D}, \qquad "
    r"\text{sim}(i,j) = \frac{\mathbf{E}_\text{pos}^{i}\cdot\mathbf{E}_\text{pos}^{j}}"
    r"{\lVert\mathbf{E}_\text{pos}^{i}\rVert\,\lVert\mathbf{E}_\text{pos}^{j}\rVert}")

if cfg.pos_embedding != "learned":
    st.warning(_("This model uses **{kind}** position embeddings, which are fixed, not learned: "
                 "the structure below was put there by hand.").format(kind=cfg.pos_embedding))

sim = similarity_of(model, (g, g))
with torch.inference_mode():
    claim = claims.position_claim(model.position_embeddings_for((g, g)), (g, g))
st.markdown(claim_sentence(claim))
st.info(_("Live shapes: E_pos is ({t}, {d}); the similarity matrix between the {n} patch positions "
          "is ({n}, {n}), drawn as {g}×{g} tiles of {g}×{g}.").format(t=N + 1, d=cfg.dim, n=N, g=g))
m1, m2 = st.columns(2)
m1.metric(_("Neighbour score"), f"{claim.neighbour_score:.2f}",
          _("chance {chance}").format(chance=f"{claim.chance:.2f}"), delta_color="off", delta_arrow="off",
          help=_("Share of positions whose most similar other position is one of its (up to 8) grid neighbours. "
                 "Embeddings without spatial structure score about {chance} on this {g}×{g} grid "
                 "(the chance level).").format(chance=f"{claim.chance:.2f}", g=g))
m2.metric(_("Spearman(similarity, distance)"), f"{claim.spearman:+.2f}",
          help=_("Negative: nearby positions are more similar. Near 0: no spatial structure."))

untrained = state.untrained_twin(choice)

left, right = widgets.columns(2)
with left:
    st.subheader(choice.label)
    widgets.plot(plots.position_similarity_figure(sim.numpy(), (g, g)), key="pos_sim",
                 name=widgets.figure_name("positions-similarity"))
with right:
    if untrained is not None:
        st.subheader(_("The same architecture, untrained"))
        sim_u = similarity_of(untrained, (g, g))
        widgets.plot(plots.position_similarity_figure(sim_u.numpy(), (g, g)), key="pos_sim_untrained",
                     name=widgets.figure_name("positions-similarity-untrained"))
        st.caption(_("Neighbour score {score} (chance {chance}): random vectors in {d} dimensions are nearly "
                     "orthogonal, so every tile is a single bright dot.").format(
            score=f"{analysis.neighbour_score(sim_u, (g, g)):.2f}", chance=f"{claim.chance:.2f}", d=cfg.dim))
    else:
        st.subheader(_("Compare with a trained model"))
        st.markdown(_("You are looking at an untrained model: each position is similar only to itself. "
                      "Choose a trained model on the start page to see the grid emerge."))

st.subheader(_("One position, large"))
pos = widgets.int_slider(_("Patch position"), 1, N, widgets.query_int("position", N // 2 + g // 2 + 1, 1, N), key="position",
                help=_("Patches are numbered 1 to {n}, left to right and top to bottom, as on the patches page; "
                       "position 0 of the sequence is the [class] token.").format(n=N))
r, c = divmod(pos - 1, g)
cosine = dict(colorscale="RdBu_r", zmin=-1, zmax=1)  # cosine similarity: the whole -1..1 range, 0 in the middle
widgets.plot(plots.patch_map_figure(sim[pos - 1].reshape(g, g).numpy(), None,
                                    title=_("Similarity of patch {k} (row {row}, column {col}) to every patch").format(
                                        k=pos, row=r + 1, col=c + 1),
                                    colorbar_title=_("cosine similarity to patch {k}").format(k=pos), **cosine),
             key="pos_one", name=widgets.figure_name("positions-one", position=pos))

st.subheader(_("Higher resolution: 2-D interpolation"))
st.markdown(_("Fine-tuning at a higher resolution keeps P, so the grid grows and there are more positions than "
              "were learned. The paper resizes the {g}×{g} grid of embeddings as an image, by 2-D bicubic "
              "interpolation; the [class] position is kept as it is.").format(g=g))
new_g = st.slider(_("New grid size"), g, 3 * g, min(2 * g, 3 * g), key="interp_grid")
with torch.inference_mode():
    pos_new = (vit.interpolate_position_embeddings(model.position_embeddings_for((g, g)).detach().cpu(), (new_g, new_g))
               if cfg.pos_embedding == "learned" else model.position_embeddings_for((new_g, new_g)).detach().cpu())
sim_new = analysis.position_similarity(pos_new)
st.info(_("Live shapes: ({t}, {d}) → ({t_new}, {d}) for a {s}×{s} image.").format(
    t=N + 1, d=cfg.dim, t_new=new_g * new_g + 1, s=new_g * cfg.patch_size))
pos_r, pos_c = round(r * (new_g - 1) / max(1, g - 1)), round(c * (new_g - 1) / max(1, g - 1))
b, a = widgets.columns(2)
with b:
    widgets.plot(plots.patch_map_figure(sim[pos - 1].reshape(g, g).numpy(), None,
                                        title=_("Before: {g}×{g} grid, patch {k} (row {row}, column {col})").format(
                                            g=g, k=pos, row=r + 1, col=c + 1),
                                        colorbar_title=_("cosine similarity to patch {k}").format(k=pos), **cosine),
                 key="interp_before", name=widgets.figure_name("positions-before", grid=g, position=pos))
with a:
    idx = pos_r * new_g + pos_c
    widgets.plot(plots.patch_map_figure(sim_new[idx].reshape(new_g, new_g).numpy(), None,
                                        title=_("After: {g}×{g} grid, patch {k} (row {row}, column {col})").format(
                                            g=new_g, k=idx + 1, row=pos_r + 1, col=pos_c + 1),
                                        colorbar_title=_("cosine similarity to patch {k}").format(k=idx + 1),
                                        **cosine),
                 key="interp_after", name=widgets.figure_name("positions-after", grid=new_g, position=idx + 1))
widgets.sync_query(position=pos)
