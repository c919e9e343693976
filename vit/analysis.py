"""Analyses of a trained ViT: pure functions, tensors in and tensors out.

Each matches the paper's figures: PCA of the patch-embedding filters (Fig. 7 left), cosine
similarity of position embeddings (Fig. 7 centre), mean attention distance (Fig. 7 right) and
attention rollout (Fig. 6, after Abnar & Zuidema 2020); and its class-specific, gradient-weighted
variant (Chefer et al. 2021), used by ``vit.explain``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def grid_coordinates(grid: tuple[int, int]) -> Tensor:
    """(N, 2) row/column of each patch, in the row-major order of the token sequence."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    return torch.stack((rows.flatten(), cols.flatten()), dim=1).float()


def patch_distances(grid: tuple[int, int], patch_size: float = 1.0) -> Tensor:
    """(N, N) Euclidean distance between patch centres, in units of ``patch_size`` (pixels if P)."""
    xy = grid_coordinates(grid)
    return torch.cdist(xy, xy) * patch_size


# --- position embeddings ------------------------------------------------------------------------


def position_similarity(position_embeddings: Tensor, drop_class: bool = True) -> Tensor:
    """(N, N) cosine similarity between every pair of patch position embeddings.

    Accepts (1, N+1, D) as used by the model (the [class] position is dropped) or (N, D).
    """
    pos = position_embeddings
    if pos.ndim == 3:
        pos = pos[0]
    if drop_class:
        pos = pos[1:] if position_embeddings.ndim == 3 else pos
    pos = torch.nn.functional.normalize(pos.float(), dim=-1)
    return pos @ pos.T


def neighbour_score(similarity: Tensor, grid: tuple[int, int]) -> float:
    """Share of positions whose most similar *other* position is one of its 8 grid neighbours."""
    sim = similarity.clone().float()
    sim.fill_diagonal_(-float("inf"))
    best = sim.argmax(dim=1)
    xy = grid_coordinates(grid)
    chebyshev = (xy - xy[best]).abs().max(dim=1).values
    return float((chebyshev == 1).float().mean())


def _rank(x: Tensor) -> Tensor:
    """Average ranks (ties share their mean rank), as Spearman's rho needs."""
    order = x.argsort()
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype)
    uniq, inverse = torch.unique(x, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=x.dtype).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(uniq), dtype=x.dtype).index_add_(0, inverse, torch.ones_like(x))
    return (sums / counts)[inverse]


def spearman(a: Tensor, b: Tensor) -> float:
    ra, rb = _rank(a.double().flatten()), _rank(b.double().flatten())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def similarity_distance_spearman(similarity: Tensor, grid: tuple[int, int]) -> float:
    """Spearman correlation between similarity and grid distance over all pairs (negative = 2-D structure)."""
    i, j = torch.triu_indices(similarity.shape[0], similarity.shape[0], offset=1)
    return spearman(similarity[i, j], patch_distances(grid)[i, j])


# --- attention ----------------------------------------------------------------------------------


def fuse_heads(attention: Tensor, head_fusion: str = "mean") -> Tensor:
    """(..., H, T, T) → (..., T, T) by the mean, max or min over heads."""
    if head_fusion == "mean":
        return attention.mean(dim=-3)
    if head_fusion == "max":
        return attention.amax(dim=-3)
    if head_fusion == "min":
        return attention.amin(dim=-3)
    raise ValueError(f"head_fusion must be 'mean', 'max' or 'min', not {head_fusion!r}")


def attention_rollout(attentions: list[Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): (B, T, T) flow of attention from the input tokens.

    For each layer: fuse the heads; optionally zero the weakest ``discard_ratio`` share of weights
    (never the [class] column); add the identity for the residual connection; re-normalise rows;
    then multiply the layers together, first layer rightmost. Row 0 is the [class] token's flow.
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError("discard_ratio must be in [0, 1)")
    result = None
    for attn in attentions:
        a = attn if attn.ndim == 4 else attn[None]
        fused = fuse_heads(a.float(), head_fusion)  # (B, T, T)
        if discard_ratio > 0:
            b, t, _ = fused.shape
            flat = fused.reshape(b, -1).clone()
            k = int(flat.shape[1] * discard_ratio)
            if k:
                drop = flat.topk(k, dim=1, largest=False).indices
                keep_cls = drop % t != 0  # the [class] column is never discarded
                rows = torch.arange(b)[:, None].expand_as(drop)
                flat[rows[keep_cls], drop[keep_cls]] = 0
            fused = flat.reshape(b, t, t)
        eye = torch.eye(fused.shape[-1], dtype=fused.dtype)
        a = fused + eye
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    if result is None:
        raise ValueError("attention_rollout needs at least one layer")
    return result


def class_rollout_map(rollout: Tensor, grid: tuple[int, int]) -> Tensor:
    """The [class] token's row of a rollout, over the patches, as a (B, gh, gw) map scaled to max 1."""
    m = rollout[:, 0, 1:].reshape(-1, *grid)
    return m / m.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def class_attention_map(attention: Tensor, grid: tuple[int, int], head_fusion: str = "mean") -> Tensor:
    """The [class] token's attention over the patches in one layer, heads fused: (B, gh, gw) from
    (B, H, N+1, N+1). Raw probabilities: with the [class] token's attention to itself, they sum to 1."""
    return fuse_heads(attention.float(), head_fusion)[:, 0, 1:].reshape(-1, *grid)


def gradient_rollout(attentions: list[Tensor], gradients: list[Tensor | None]) -> Tensor:
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, "Generic Attention-model
    Explainability"): (B, T, T) from each layer's attention A (B, H, T, T) and ∂y_c/∂A.

    Start from R = I (each token is relevant to itself, through the residual); for each layer, first
    to last, weight the attention by its gradient, keep the positive part and average the heads,
    Ā = E_h[(∇A ⊙ A)⁺], and add what flows through it: R ← R + Ā·R. Row 0 is the relevance of every
    token for the [class] token's decision on class c. Unlike rollout it depends on c, and heads that
    push against c count for nothing. A missing gradient (None) counts as zero.
    """
    result = None
    for attn, grad in zip(attentions, gradients, strict=True):
        a = attn.float()
        weighted = torch.zeros_like(a) if grad is None else (grad.float() * a).clamp_min(0)
        fused = weighted.mean(dim=-3)  # (B, T, T)
        if result is None:
            result = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device).expand_as(fused)
        result = result + fused @ result
    if result is None:
        raise ValueError("gradient_rollout needs at least one layer")
    return result


def mean_attention_distance(attention: Tensor, grid: tuple[int, int], patch_size: int) -> Tensor:
    """Mean attention distance in pixels per head, (B, H), for one layer's (B, H, N+1, N+1).

    For each patch query, the attention over the patch keys is re-normalised to sum to 1 (the
    [class] token has no position in the image), the distances between patch centres are
    averaged under it, and the result is averaged over the queries.
    """
    patch_attn = attention[..., 1:, 1:].float()
    patch_attn = patch_attn / patch_attn.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    dist = patch_distances(grid, float(patch_size)).to(patch_attn.device)
    return (patch_attn * dist).sum(dim=-1).mean(dim=-1)


def attention_distances(attentions: list[Tensor], grid: tuple[int, int], patch_size: int) -> Tensor:
    """(L, B, H) mean attention distance of every head in every layer."""
    return torch.stack([mean_attention_distance(a, grid, patch_size) for a in attentions])


# --- patch embedding ----------------------------------------------------------------------------


def embedding_filter_pca(weight: Tensor, k: int = 28) -> tuple[Tensor, Tensor]:
    """Principal components of the patch-embedding filters E (paper Fig. 7 left).

    ``weight`` is the Conv2d weight (D, C, P, P): D filters of C·P·P values. Returns the top ``k``
    components as (k, C, P, P) and the share of variance each explains (k,).
    """
    d = weight.shape[0]
    flat = weight.detach().float().reshape(d, -1)
    flat = flat - flat.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    k = min(k, vh.shape[0])
    variance = s**2
    return vh[:k].reshape(k, *weight.shape[1:]), variance[:k] / variance.sum().clamp_min(1e-12)


# --- tokens and predictions ---------------------------------------------------------------------


def token_norms(hidden_states: list[Tensor]) -> Tensor:
    """(L+1, B, N+1) L2 norm of every token after every block."""
    return torch.stack([h.float().norm(dim=-1) for h in hidden_states])


def top_k(logits: Tensor, k: int = 5) -> tuple[Tensor, Tensor]:
    """Softmax probabilities and class indices of the k most likely classes, for (B, classes)."""
    probs = logits.float().softmax(dim=-1)
    p, idx = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return p, idx
