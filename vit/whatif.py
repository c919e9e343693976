"""What if…? The analyses behind the page that changes a ViT's forward pass and shows what happens.

Pure functions of a model, an input and ``vit.Intervention`` values; nothing here imports streamlit or
changes the model it is given (interventions are data, see ``vit.intervention``).

* :func:`ink_patches`: the patches that hold the picture's "ink", by a rule on the image alone (no model):
  the **background** is the image's per-channel median colour (most of a drawing, a product photo or a
  generated shape is background); a pixel is **ink** when its colour lies more than ``INK_PIXEL`` (0.2 on
  a 0–1 scale, root-mean-square over the channels) from the background; a patch is an ink patch when at
  least ``INK_SHARE`` (10%) of its pixels are ink. A dark digit on white paper, a light boot on black and
  a light arrow on green grass all give the patches of the object. On a photo without a plain
  background the "ink" is whatever differs from the photo's typical colour; on a flat image there is none.
* :func:`cyclic_shuffle`: a random order of the patches in which every patch moves (Sattolo's algorithm).
* :func:`run`: one forward pass with an intervention, reduced to what the page compares: class
  probabilities and the [class] token's last-layer attention and attention rollout, in grid order
  (a shuffled token's attention is put back where its patch came from), with switched-off heads left
  out of both maps (they are computed but unused).
* :func:`head_effects`, :func:`most_important_head`, :func:`random_head`: switch off each head alone
  and measure the class's probability; the most important head is the one whose removal lowers it most.
* :func:`outcome`: what changed between two runs, in numbers, and a verdict for the page's sentences;
  :func:`change_kind`: which kind of change separates two interventions.
* :func:`explanations`, :func:`sanity`, :func:`sanity_summary`: the four explanation maps of
  ``vit.explain`` for one class with their deletion and insertion curves (and a random order's, for
  reference), and the sanity check, as numpy, ready for a cache.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import analysis as A
from .explain import METHODS, deletion_insertion, explanation_map, sanity_check
from .intervention import Intervention
from .loading import denormalize
from .model import VisionTransformer

INK_PIXEL = 0.2  # a pixel is ink when its colour is this far from the background (0–1, RMS over channels)
INK_SHARE = 0.1  # a patch is an ink patch when at least this share of its pixels is ink
SAME = 0.0005  # probabilities closer than this (0.05 percentage points) count as unchanged
LARGE = 0.05  # a change of the class's probability of 5 percentage points or more counts as large
STAYS = 0.5  # sanity check: a map whose rank correlation with the trained model's stays at or above this "stays"

__all__ = ["INK_PIXEL", "INK_SHARE", "SAME", "LARGE", "ink_scores", "ink_patches", "cyclic_shuffle", "run",
           "HeadEffects", "head_effects", "most_important_head", "random_head", "Outcome", "outcome",
           "change_kind", "explanations", "sanity", "sanity_summary", "STAYS"]


# --- ink ------------------------------------------------------------------------------------------


def _image(image) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected an image (H, W, C) with values in [0, 1], got shape {a.shape}")
    return a


def ink_scores(image, patch_size: int, pixel: float = INK_PIXEL) -> np.ndarray:
    """(gh, gw): the share of each patch's pixels that are ink (see the module docstring).

    ``image`` is (H, W, C) or (H, W) with values in [0, 1], e.g. what the model sees
    (``vit.denormalize``); rows and columns beyond the last whole patch are ignored."""
    a = _image(image)
    p = int(patch_size)
    if p <= 0:
        raise ValueError("patch_size must be positive")
    gh, gw = a.shape[0] // p, a.shape[1] // p
    if gh == 0 or gw == 0:
        raise ValueError(f"image {a.shape[0]}×{a.shape[1]} is smaller than one {p}×{p} patch")
    a = a[: gh * p, : gw * p]
    background = np.median(a.reshape(-1, a.shape[-1]), axis=0)
    distance = np.sqrt(((a - background) ** 2).mean(axis=-1))  # (H, W), 0–1
    ink = distance > pixel
    return ink.reshape(gh, p, gw, p).mean(axis=(1, 3))


def ink_patches(image, patch_size: int, pixel: float = INK_PIXEL, share: float = INK_SHARE) -> tuple[int, ...]:
    """The 0-based indices (row-major, as tokens) of the ink patches; () for a flat image."""
    scores = ink_scores(image, patch_size, pixel).ravel()
    return tuple(int(i) for i in np.flatnonzero((scores >= share) & (scores > 0)))


# --- shuffling ------------------------------------------------------------------------------------


def cyclic_shuffle(n: int, seed: int) -> tuple[int, ...]:
    """A random permutation of ``range(n)`` that moves every element when n > 1 (one n-cycle, drawn
    uniformly by Sattolo's algorithm), so a shuffle never leaves a patch in place by chance."""
    order = list(range(int(n)))
    rng = random.Random(int(seed))
    for i in range(len(order) - 1, 0, -1):
        j = rng.randrange(i)  # j < i: Sattolo, not Fisher–Yates
        order[i], order[j] = order[j], order[i]
    return tuple(order)


# --- one run ----------------------------------------------------------------------------------------


def _to_grid(row: torch.Tensor, patch_index: torch.Tensor | None, n: int) -> np.ndarray:
    """A (n_slots,) row over token slots → (n,) over the grid's patches (NaN where no slot carries one)."""
    out = np.full(n, np.nan, dtype=np.float32)
    values = row.detach().float().cpu().numpy()
    if patch_index is None:
        out[: values.shape[0]] = values
    else:
        out[patch_index.cpu().numpy()] = values
    return out


def _live_attention(attention: torch.Tensor, off: tuple[int, ...]) -> torch.Tensor:
    """(1, H, T, T) → (1, 1, T, T): the mean over the heads that are on; zeros if all are off (the
    branch then mixes nothing between tokens: rollout adds the identity and keeps each token as it is)."""
    on = [h for h in range(attention.shape[1]) if h not in off]
    if not on:
        return torch.zeros_like(attention[:, :1])
    return attention[:, on].float().mean(dim=1, keepdim=True)


def run(model: VisionTransformer, x: torch.Tensor, intervention: Intervention | None = None) -> dict[str, np.ndarray]:
    """One image ``x`` (1, C, H, W), already preprocessed, through ``model`` with ``intervention``.

    Returns numpy arrays: ``probs`` (classes,) or absent for a model without a head; ``attention``
    (gh, gw): the [class] token's last-layer attention over the patches, mean over the heads that are
    on; ``rollout`` (gh, gw): attention rollout's [class] row (raw shares, not rescaled, so two runs
    compare on one scale); both in grid order (NaN for a patch no token carries); ``seen`` (H, W, C)
    in [0, 1]: the picture the model got, token slot i drawn at grid cell i (covered patches show the
    colour they were covered with, shuffled ones where their tokens now sit); ``logits`` and ``probs``
    (classes,), absent for a model without a head.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"run takes one image (1, C, H, W), not {tuple(x.shape)}")
    with torch.no_grad():
        t = model.trace(x, intervention=intervention)
    gh, gw = t.grid
    n = gh * gw
    off = intervention.heads_off if intervention is not None else ()
    live = [_live_attention(a, tuple(h for (layer, h) in off if layer == i)) for i, a in enumerate(t.attentions)]
    rollout = A.attention_rollout(live)[0, 0, 1:]
    out = {
        "attention": _to_grid(live[-1][0, 0, 0, 1:], t.patch_index, n).reshape(gh, gw),
        "rollout": _to_grid(rollout, t.patch_index, n).reshape(gh, gw),
        "seen": _seen(model, t.patches[0], (gh, gw)),
    }
    if t.logits is not None:
        out["logits"] = t.logits[0].float().cpu().numpy()
        out["probs"] = t.logits[0].float().softmax(-1).cpu().numpy()
    return out


def _seen(model: VisionTransformer, patches: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """(n, P·P·C) normalised patches in token order → the (H, W, C) picture in [0, 1], slot i at cell i."""
    p, c = model.config.patch_size, model.config.in_channels
    gh, gw = grid
    full = patches.new_zeros(gh * gw, p * p * c)  # a slot without a token (a dropped patch): the mean colour
    full[: patches.shape[0]] = patches
    image = full.reshape(gh, gw, p, p, c).permute(4, 0, 2, 1, 3).reshape(1, c, gh * p, gw * p)
    return denormalize(image, model).astype(np.float32)


# --- heads --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadEffects:
    """The class's probability with each head switched off alone (on top of ``base``)."""

    probs: np.ndarray  # (L, H): p(target) with head (l, h) off
    base_prob: float  # p(target) with no head off (``base`` alone)
    target: int

    @property
    def drops(self) -> np.ndarray:
        """(L, H): how much switching each head off lowers p(target); negative where it raises it."""
        return self.base_prob - self.probs


def head_effects(model: VisionTransformer, x: torch.Tensor, target: int | None = None,
                 base: Intervention | None = None) -> HeadEffects:
    """Switch off every head in turn (zero ablation), each alone on top of ``base``, and measure the
    probability of ``target`` (default: the class ``base`` predicts).

    One forward pass per head: ``Intervention.heads_off`` applies to a whole batch, so heads cannot be
    batched the way occlusion batches patches. L·H passes of a bundled model take well under a second.
    """
    if model.config.num_classes < 1:
        raise ValueError("head effects need a classification head; this model has none")
    base = base or Intervention()
    depth, heads = model.config.depth, model.config.heads
    with torch.no_grad():
        base_probs = model(x, intervention=base).float().softmax(-1)[0]
        c = int(base_probs.argmax()) if target is None else int(target)
        probs = np.zeros((depth, heads), dtype=np.float64)
        for layer in range(depth):
            for head in range(heads):
                iv = replace(base, heads_off=base.heads_off + ((layer, head),))
                probs[layer, head] = float(model(x, intervention=iv).float().softmax(-1)[0, c])
    return HeadEffects(probs=probs, base_prob=float(base_probs[c]), target=c)


def most_important_head(effects: HeadEffects) -> tuple[int, int]:
    """(layer, head), 0-based: the head whose removal lowers the class's probability most (ties: the first)."""
    i = int(np.argmax(effects.drops.ravel()))
    return divmod(i, effects.probs.shape[1])


def random_head(depth: int, heads: int, seed: int, avoid: tuple[int, int] | None = None) -> tuple[int, int]:
    """A head drawn at random (seeded), other than ``avoid`` when the model has another one."""
    choices = [(layer, h) for layer in range(depth) for h in range(heads) if (layer, h) != avoid] or [(0, 0)]
    return random.Random(int(seed)).choice(choices)


# --- what changed ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Two runs compared, for the class that won before (``target``)."""

    target: int  # the class the model preferred before
    after_top: int  # the class it prefers after
    before_prob: float  # p(target) before
    after_prob: float  # p(target) after
    largest_change: float  # the largest change of any class's probability, in absolute value

    @property
    def delta(self) -> float:
        """p(target) after − before, as a share (× 100: percentage points)."""
        return self.after_prob - self.before_prob

    @property
    def verdict(self) -> str:
        """'same' (no probability moved by ``SAME`` or more), 'changed' (another class won), 'down' or
        'up' (the class's probability moved by ``LARGE`` or more), else 'small'."""
        if self.largest_change < SAME:
            return "same"
        if self.after_top != self.target:
            return "changed"
        if self.delta <= -LARGE:
            return "down"
        if self.delta >= LARGE:
            return "up"
        return "small"


def outcome(before_probs, after_probs, target: int | None = None) -> Outcome:
    """Compare two probability vectors; ``target`` defaults to the class that won before."""
    b = np.asarray(before_probs, dtype=np.float64).ravel()
    a = np.asarray(after_probs, dtype=np.float64).ravel()
    if b.shape != a.shape or b.size == 0:
        raise ValueError(f"two probability vectors of one length expected, got {b.shape} and {a.shape}")
    c = int(np.argmax(b)) if target is None else int(target)
    return Outcome(target=c, after_top=int(np.argmax(a)), before_prob=float(b[c]), after_prob=float(a[c]),
                   largest_change=float(np.abs(a - b).max()))


def change_kind(before: Intervention, after: Intervention) -> str:
    """What separates ``after`` from ``before``: 'none', 'hide', 'heads', 'positions', 'shuffle' (the
    order changes and position embeddings are kept), 'shuffle-no-positions' (only the order changes,
    and both have no position embeddings: nothing can tell the orders apart), 'skip' (a branch skipped)
    or 'mixed'."""
    parts = []
    if after.hide != before.hide or after.hide_each != before.hide_each or after.hide_with != before.hide_with:
        parts.append("hide")
    if after.heads_off != before.heads_off or after.heads_with != before.heads_with:
        parts.append("heads")
    if after.positions != before.positions or after.position_seed != before.position_seed:
        parts.append("positions")
    if after.shuffle != before.shuffle or after.move_positions != before.move_positions:
        parts.append("shuffle")
    if after.skip_attention != before.skip_attention or after.skip_mlp != before.skip_mlp:
        parts.append("skip")
    if not parts:
        return "none"
    if len(parts) > 1:
        return "mixed"
    if parts == ["shuffle"] and after.positions == "zero":
        return "shuffle-no-positions"
    return "skip" if parts == ["skip"] else parts[0]


# --- explanations and how far to trust them --------------------------------------------------------------


def explanations(model: VisionTransformer, x: torch.Tensor, target: int, methods=tuple(METHODS),
                 seed: int = 0) -> dict:
    """Every explanation method's map for ``target`` on ``x`` (1, C, H, W), with its deletion and
    insertion curves, plus the curves of a random order of the patches (``"random"``: the reference a
    useful map must beat). Numpy only, so it can be cached: ``maps`` method → (gh, gw) as the method
    gives it; ``fractions`` (S,); ``deletion``, ``insertion`` name → (S,); ``deletion_auc``,
    ``insertion_auc`` name → float."""
    maps, deletion, insertion, d_auc, i_auc = {}, {}, {}, {}, {}
    fractions = None
    grid = model.grid_for(x.shape[-2], x.shape[-1])
    rng = torch.Generator().manual_seed(int(seed))
    orders = {m: None for m in methods} | {"random": torch.rand(grid, generator=rng)}
    for name in orders:
        if name != "random":
            maps[name] = explanation_map(model, x, name, int(target))[0].detach().float().cpu()
        saliency = maps.get(name, orders[name])
        curves = deletion_insertion(model, x, saliency, int(target))
        fractions = curves.fractions.numpy()
        deletion[name], insertion[name] = curves.deletion.numpy(), curves.insertion.numpy()
        d_auc[name], i_auc[name] = curves.deletion_auc, curves.insertion_auc
    return dict(maps={k: v.numpy() for k, v in maps.items()}, fractions=fractions, deletion=deletion,
                insertion=insertion, deletion_auc=d_auc, insertion_auc=i_auc, target=int(target))


def sanity(model: VisionTransformer, x: torch.Tensor, target: int, methods=tuple(METHODS), seed: int = 0) -> dict:
    """``vit.sanity_check`` as numpy, for a cache: ``stages``, ``maps`` method → (S, gh, gw),
    ``similarity`` method → (S,)."""
    check = sanity_check(model, x, int(target), methods=methods, seed=seed)
    return dict(stages=list(check.stages), maps={k: v.numpy() for k, v in check.maps.items()},
                similarity={k: np.asarray(v, dtype=np.float64) for k, v in check.similarity.items()},
                target=check.target)


def sanity_summary(stages, similarity: dict, stays: float = STAYS) -> dict[str, dict]:
    """Per method: ``after_head``, its rank correlation with the trained map once the head (only) is
    random; ``final``, once every layer is; ``verdict``: 'stays' when ``final`` is at least ``stays`` (the
    map barely depends on the learned weights: it explains the image more than the model), else 'changes'."""
    stages = list(stages)
    head = stages.index("head") if "head" in stages else min(1, len(stages) - 1)
    out = {}
    for method, values in similarity.items():
        v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        out[method] = dict(after_head=float(v[head]), final=float(v[-1]),
                           verdict="stays" if float(v[-1]) >= stays else "changes")
    return out
