"""What a model actually shows, measured, so that the pages only claim what is there.

Each function returns plain numbers and a verdict computed from the loaded model (and image), for
the three effects the paper's Fig. 7 is known for: position embeddings that learn the 2-D grid,
patch-embedding filters with structure, and heads that attend locally or globally. A verdict is one
of ``"clear"``, ``"weak"`` or ``"none"``; the pages turn it into a sentence with the figures, and
say plainly when the model does not show the paper's effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .analysis import (embedding_filter_pca, neighbour_score, patch_distances, position_similarity,
                       similarity_distance_spearman)

__all__ = ["neighbour_chance", "uniform_attention_distance", "PositionClaim", "FilterClaim", "HeadClaim",
           "position_claim", "filter_claim", "head_claim"]


def neighbour_chance(grid: tuple[int, int]) -> float:
    """The neighbour score of embeddings with no spatial structure at all.

    If each position's most similar other position were a uniformly random one of the other N−1,
    position i would hit one of its grid neighbours with probability deg(i)/(N−1); the score is the
    mean of that over positions (3×3 grid: corners 3, edges 5, centre 8 → (4·3 + 4·5 + 8)/9/8 = 0.556).
    """
    gh, gw = grid
    n = gh * gw
    if n < 2:
        return 0.0
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    deg = (np.minimum(rows + 1, gh - 1) - np.maximum(rows - 1, 0) + 1) * (np.minimum(cols + 1, gw - 1) - np.maximum(cols - 1, 0) + 1) - 1
    return float(deg.mean() / (n - 1))


def uniform_attention_distance(grid: tuple[int, int], patch_size: float) -> float:
    """Mean attention distance (pixels) of a head that attends equally to every patch.

    The reference line for :func:`vit.analysis.mean_attention_distance`: a head well below it is
    local, one near it is global. (2×1 grid, P = 1: pairs at distance 0, 1, 1, 0 → 0.5.)
    """
    return float(patch_distances(grid, float(patch_size)).mean())


@dataclass(frozen=True)
class PositionClaim:
    neighbour_score: float
    chance: float
    spearman: float
    verdict: str  # "clear": the grid is there; "weak": some 2-D structure; "none": no more than chance


def position_claim(position_embeddings: torch.Tensor, grid: tuple[int, int]) -> PositionClaim:
    """Is the 2-D grid in these position embeddings? (1, N+1, D) or (N, D).

    clear: neighbour score ≥ 0.8 and Spearman ≤ −0.3; weak: neighbour score ≥ chance + 0.2 or
    Spearman ≤ −0.15; none otherwise.
    """
    sim = position_similarity(position_embeddings.detach().float().cpu())
    score = neighbour_score(sim, grid)
    rho = similarity_distance_spearman(sim, grid)
    chance = neighbour_chance(grid)
    if score >= 0.8 and rho <= -0.3:
        verdict = "clear"
    elif score >= chance + 0.2 or rho <= -0.15:
        verdict = "weak"
    else:
        verdict = "none"
    return PositionClaim(score, chance, rho, verdict)


@dataclass(frozen=True)
class FilterClaim:
    k: int
    trained_share: float    # variance explained by the top k principal components of the trained filters
    untrained_share: float  # the same for the untrained twin
    verdict: str            # "clear": far more concentrated than random; "weak": somewhat; "none": like random


def filter_claim(trained_weight: torch.Tensor, untrained_weight: torch.Tensor, k: int = 8) -> FilterClaim:
    """Do the patch-embedding filters have more structure than random ones of the same shape?

    Structure shows as variance concentrated in few principal components (the paper's Fig. 7 shows
    the top 28 of ViT-L/32 as smooth, edge- and colour-like bases). clear: the top ``k`` explain at
    least 0.15 more of the variance than the untrained twin's; weak: at least 0.05 more.
    """
    k = max(1, min(k, trained_weight.shape[0], trained_weight[0].numel()))
    t = float(embedding_filter_pca(trained_weight, k)[1].sum())
    u = float(embedding_filter_pca(untrained_weight, k)[1].sum())
    verdict = "clear" if t - u >= 0.15 else "weak" if t - u >= 0.05 else "none"
    return FilterClaim(k, t, u, verdict)


@dataclass(frozen=True)
class HeadClaim:
    layer: int            # 0-based
    local_head: int       # 0-based index of the head with the smallest mean distance
    global_head: int
    local_distance: float  # pixels
    global_distance: float
    uniform_distance: float
    ratio: float           # local / global
    verdict: str           # "clear": a local and a global head; "weak": some spread; "none": all alike


def head_claim(distances: np.ndarray | torch.Tensor, grid: tuple[int, int], patch_size: int, layer: int = 0) -> HeadClaim:
    """Are some heads of ``layer`` local and others global? ``distances`` is (L, H) in pixels.

    clear: the most local head's distance is at most half the most global head's, and the most
    global reaches 75% of the uniform-attention distance; weak: the ratio is at most 0.75; none otherwise.
    """
    d = np.asarray(distances, dtype=np.float64)[layer]
    lo, hi = int(d.argmin()), int(d.argmax())
    uniform = uniform_attention_distance(grid, patch_size)
    ratio = float(d[lo] / d[hi]) if d[hi] > 0 else 1.0
    if ratio <= 0.5 and d[hi] >= 0.75 * uniform:
        verdict = "clear"
    elif ratio <= 0.75:
        verdict = "weak"
    else:
        verdict = "none"
    return HeadClaim(layer, lo, hi, float(d[lo]), float(d[hi]), uniform, ratio, verdict)
