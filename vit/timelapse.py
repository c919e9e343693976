"""What each snapshot of training shows, for one image: the measurements behind a training time-lapse.

:func:`timeline` runs the image through every snapshot of a series (:func:`vit.training_snapshots`)
and keeps, per snapshot, the figures a page draws and the claims it may make:

- the position embeddings: their similarity matrix and :func:`vit.claims.position_claim`;
- the patch-embedding filters: :func:`vit.claims.filter_claim` against the **initialisation** (the
  first snapshot), which is the untrained twin this model actually started from;
- the heads: mean attention distance of every head for this image, and the first block's
  :func:`vit.claims.head_claim`;
- the [class] token's attention over the patches in every layer and head, and the prediction.

:func:`story` condenses a timeline into the facts a page may state ("the grid appears at epoch 2"),
each one measured; a fact that never happens is ``None``, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .analysis import attention_distances, position_similarity
from .claims import FilterClaim, HeadClaim, PositionClaim, filter_claim, head_claim, position_claim
from .model import VisionTransformer
from .snapshots import Snapshot

__all__ = ["Moment", "Story", "measure", "timeline", "story", "first_epoch"]


@dataclass(frozen=True)
class Moment:
    """One snapshot, measured on one image. Arrays are numpy; distances in pixels."""

    step: int
    epoch: float
    loss: float  # held-out, recorded with the snapshot
    accuracy: float  # held-out, recorded with the snapshot
    position: PositionClaim
    filters: FilterClaim  # against the initialisation
    heads: HeadClaim  # the first block
    similarity: np.ndarray  # (N, N) cosine similarity of the patch position embeddings
    distances: np.ndarray  # (L, H) mean attention distance of every head, for this image
    class_attention: np.ndarray  # (L, H, gh, gw) the [class] token's attention over the patches
    probs: np.ndarray  # (classes,) the prediction for this image


def measure(model: VisionTransformer, x: torch.Tensor, init_filters: torch.Tensor, snapshot: Snapshot) -> Moment:
    """Measure one snapshot's model on ``x`` (1, C, H, W). ``init_filters``: the first snapshot's patch filters."""
    cfg = model.config
    with torch.inference_mode():
        trace = model.trace(x)
        grid = trace.grid
        pos = model.position_embeddings_for(grid).detach().float().cpu()
        weight = model.patch_embed.weight.detach().float().cpu()
    attentions = [a.float().cpu() for a in trace.attentions]
    distances = attention_distances(attentions, grid, cfg.patch_size)[:, 0].numpy()
    class_attention = np.stack([a[0, :, 0, 1:].reshape(-1, *grid).numpy() for a in attentions])
    logits = trace.logits
    probs = torch.softmax(logits[0].float(), -1).cpu().numpy() if logits is not None else np.zeros(0)
    return Moment(step=snapshot.step, epoch=snapshot.epoch, loss=snapshot.loss, accuracy=snapshot.accuracy,
                  position=position_claim(pos, grid), filters=filter_claim(weight, init_filters),
                  heads=head_claim(distances, grid, cfg.patch_size, layer=0),
                  similarity=position_similarity(pos).numpy(), distances=distances,
                  class_attention=class_attention, probs=probs)


def timeline(series: list[Snapshot], x: torch.Tensor, progress=None) -> list[Moment]:
    """Every snapshot of ``series`` measured on ``x`` (preprocessed for the series' model), in order.

    ``progress(i, n)``, if given, is called after each snapshot (loading one takes a moment)."""
    moments: list[Moment] = []
    init = None
    for i, snap in enumerate(series):
        model = snap.load("cpu")
        if init is None:
            init = model.patch_embed.weight.detach().float().cpu().clone()
        moments.append(measure(model, x.to("cpu"), init, snap))
        if progress is not None:
            progress(i + 1, len(series))
    return moments


def first_epoch(moments: list[Moment], holds) -> float | None:
    """The epoch of the first moment from which ``holds(moment)`` stays true to the end; None if never."""
    found = None
    for m in moments:
        if holds(m):
            found = m.epoch if found is None else found
        else:
            found = None
    return found


@dataclass(frozen=True)
class Story:
    start: Moment
    end: Moment
    grid_epoch: float | None  # the grid is there ("clear") from this epoch on
    some_grid_epoch: float | None  # at least "weak" from this epoch on
    learned_epoch: float | None  # held-out accuracy within 5 points of its final value from here on
    heads_spread_epoch: float | None  # the first block's heads differ ("weak" or "clear") from here on
    filters_epoch: float | None  # the filters have more structure than at the start ("weak" or "clear")


def story(moments: list[Moment]) -> Story:
    """The measured facts of a timeline, for the page's sentences."""
    if not moments:
        raise ValueError("story() needs at least one snapshot")
    end = moments[-1]
    return Story(
        start=moments[0], end=end,
        grid_epoch=first_epoch(moments, lambda m: m.position.verdict == "clear"),
        some_grid_epoch=first_epoch(moments, lambda m: m.position.verdict != "none"),
        learned_epoch=first_epoch(moments, lambda m: m.accuracy >= end.accuracy - 0.05),
        heads_spread_epoch=first_epoch(moments, lambda m: m.heads.verdict != "none"),
        filters_epoch=first_epoch(moments, lambda m: m.filters.verdict != "none"),
    )
