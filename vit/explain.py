"""Ways to explain a ViT's decision, side by side, and tests of how far to trust them.

Every method gives a map over the patch grid, (B, gh, gw), for the image(s) ``x`` (B, C, H, W) as
already preprocessed, and a class ``target`` (an int, one per image, or None: the predicted class):

* ``attention``: the [class] token's attention in the last layer, averaged over heads. Not
  class-specific: the same map whichever class you ask about.
* ``rollout``: attention rollout (Abnar & Zuidema 2020), attention multiplied through all layers
  with the residual. Not class-specific either.
* ``gradient``: gradient-weighted attention relevance (Chefer, Gur & Wolf 2021): attention weighted
  by how much it raises the class's logit. Class-specific.
* ``occlusion``: hide each patch in turn and measure the drop in the class's probability. Slow in
  principle (one forward per patch), here one batched forward pass.

And two honest checks:

* ``deletion_insertion``: hide the patches a map ranks highest first; if the map is right the
  probability falls fast (small area under the deletion curve). Reveal them first on a hidden
  image: it rises fast (large area under the insertion curve).
* ``sanity_check`` (Adebayo et al. 2018): randomise the weights layer by layer from the top. A map
  that barely changes cannot be explaining what the model learned.

Nothing here changes the model it is given: interventions are data (``vit.Intervention``), the
gradient is taken with respect to the attention maps of a graph built from the input, and weights
are randomised in a copy. So these functions may run on a model shared between threads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import analysis as A
from .intervention import Intervention
from .model import VisionTransformer

Target = int | Sequence[int] | Tensor | None


def resolve_targets(logits: Tensor, target: Target) -> Tensor:
    """(B,) class indices: ``target`` for every image (an int) or per image, or the predicted class."""
    if logits is None:
        raise ValueError("explanations need a classification head; this model has none")
    b, classes = logits.shape
    if target is None:
        return logits.argmax(dim=-1)
    t = torch.as_tensor(target, dtype=torch.long, device=logits.device).flatten()
    if t.numel() == 1:
        t = t.expand(b)
    if t.numel() != b:
        raise ValueError(f"{t.numel()} targets for {b} images")
    if ((t < 0) | (t >= classes)).any():
        raise ValueError(f"target class out of range: this model has {classes} classes, 0 to {classes - 1}")
    return t


def _one_image(x: Tensor, what: str) -> None:
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"{what} explains one image at a time: x must be (1, C, H, W), not {tuple(x.shape)}")


# --- the maps ---------------------------------------------------------------------------------


def attention_map(model: VisionTransformer, x: Tensor, target: Target = None) -> Tensor:
    """(B, gh, gw): the last layer's [class] attention over the patches, mean over heads (probabilities).

    ``target`` is ignored: attention does not depend on the class asked about.
    """
    with torch.no_grad():
        t = model.trace(x)
    return A.class_attention_map(t.attentions[-1], t.grid)


def rollout_map(model: VisionTransformer, x: Tensor, target: Target = None) -> Tensor:
    """(B, gh, gw): attention rollout's [class] row over the patches, scaled to a maximum of 1.

    ``target`` is ignored: rollout does not depend on the class asked about.
    """
    with torch.no_grad():
        t = model.trace(x)
    return A.class_rollout_map(A.attention_rollout(t.attentions), t.grid)


def gradient_map(model: VisionTransformer, x: Tensor, target: Target = None) -> Tensor:
    """(B, gh, gw): Chefer et al.'s gradient-weighted attention relevance for ``target``, max 1.

    The gradient of the class logit y_c with respect to every layer's attention probabilities is
    taken on a graph built from the input: ``x`` is copied with ``requires_grad``, so the model's
    parameters (and their ``requires_grad``) are never touched, and no hook is stored anywhere.
    Runs under ``inference_mode`` too (it leaves it for this call).
    """
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        t = model.trace(x)
        c = resolve_targets(t.logits.detach(), target)
        score = t.logits.gather(1, c[:, None]).sum()  # items are independent: one backward for all
        grads = torch.autograd.grad(score, t.attentions, allow_unused=True)
    attentions = [a.detach() for a in t.attentions]
    return A.class_rollout_map(A.gradient_rollout(attentions, list(grads)), t.grid)


def occlusion_map(model: VisionTransformer, x: Tensor, target: Target = None, hide_with: str = "zero") -> Tensor:
    """(B, gh, gw): how much the class probability drops when each patch alone is hidden.

    p(c | image) − p(c | image with patch i hidden), for every patch i, in one batched forward pass
    per image: item 0 is the image itself, item i+1 hides patch i (``Intervention.hide_each``).
    Positive: the patch supported the class; negative: it spoke against it.
    """
    maps = []
    for i, xi in enumerate(x.split(1)):
        grid = model.grid_for(xi.shape[-2], xi.shape[-1])
        n = grid[0] * grid[1]
        iv = Intervention(hide_each=((),) + tuple((p,) for p in range(n)), hide_with=hide_with)
        with torch.no_grad():
            probs = model(xi, intervention=iv).float().softmax(dim=-1)  # (N+1, classes)
        c = int(resolve_targets(probs[:1], _item(target, i))[0])
        maps.append((probs[0, c] - probs[1:, c]).reshape(grid))
    return torch.stack(maps)


def _item(target: Target, i: int) -> Target:
    """The target of image ``i`` when ``target`` gives one per image."""
    if target is None or isinstance(target, int):
        return target
    t = torch.as_tensor(target).flatten()
    return int(t[0] if t.numel() == 1 else t[i])


METHODS: dict[str, Callable[..., Tensor]] = {
    "attention": attention_map,
    "rollout": rollout_map,
    "gradient": gradient_map,
    "occlusion": occlusion_map,
}


def explanation_map(model: VisionTransformer, x: Tensor, method: str, target: Target = None) -> Tensor:
    """(B, gh, gw) by the method named: one of ``METHODS``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method](model, x, target)


# --- deletion and insertion -------------------------------------------------------------------


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves of one map on one image (Petsiuk et al. 2018, RISE)."""

    order: Tensor  # (N,) patches from most to least important by the map
    fractions: Tensor  # (S,) share of patches hidden (deletion) or revealed (insertion), 0 to 1
    deletion: Tensor  # (S,) class probability as the top patches are hidden
    insertion: Tensor  # (S,) class probability as the top patches are revealed on a hidden image
    deletion_auc: float  # area under the deletion curve: lower = the map found what matters
    insertion_auc: float  # area under the insertion curve: higher = the map found what matters
    target: int


def deletion_insertion(model: VisionTransformer, x: Tensor, saliency: Tensor, target: Target = None,
                       hide_with: str = "zero", steps: int | None = None) -> Curves:
    """Hide (deletion) or reveal (insertion) the patches in the order ``saliency`` ranks them.

    ``saliency`` is any map over the grid ((gh, gw), (1, gh, gw) or (N,)); ties keep grid order. At
    step k of S, k = round(j·N/(S−1)) patches are hidden, or all but k; by default S = N+1 (every
    patch). Both curves come from one batched forward pass of 2S items. The areas are by the
    trapezoidal rule over the share of patches, so they lie in [0, 1].
    """
    _one_image(x, "deletion_insertion")
    grid = model.grid_for(x.shape[-2], x.shape[-1])
    n = grid[0] * grid[1]
    if saliency.numel() != n:
        raise ValueError(f"the map has {saliency.numel()} values; this input has {n} patches")
    steps = n + 1 if steps is None else steps
    if steps < 2:
        raise ValueError("deletion and insertion need at least 2 steps")
    order = saliency.detach().flatten().float().cpu().argsort(descending=True, stable=True)
    ks = torch.linspace(0, n, steps).round().long()
    ranked = order.tolist()
    hide = [tuple(ranked[:k]) for k in ks.tolist()] + [tuple(ranked[k:]) for k in ks.tolist()]
    with torch.no_grad():
        probs = model(x, intervention=Intervention(hide_each=tuple(hide), hide_with=hide_with)).float().softmax(dim=-1)
    c = int(resolve_targets(probs[:1], target)[0])
    deletion, insertion = probs[:steps, c].cpu(), probs[steps:, c].cpu()
    fractions = ks.float() / n
    return Curves(order=order, fractions=fractions, deletion=deletion, insertion=insertion,
                  deletion_auc=float(torch.trapezoid(deletion, fractions)),
                  insertion_auc=float(torch.trapezoid(insertion, fractions)), target=c)


# --- the sanity check -------------------------------------------------------------------------


def randomisation_stages(model: VisionTransformer) -> list[tuple[str, tuple[str, ...]]]:
    """(stage name, state_dict key prefixes it re-initialises), from the top of the network down:
    the head (with the final norm), then each block from the last, then the embeddings."""
    stages = [("head", ("norm.", "pre_logits.", "head."))]
    stages += [(f"block {i}", (f"blocks.{i}.",)) for i in reversed(range(len(model.blocks)))]
    stages.append(("embedding", ("patch_embed.", "cls_token", "pos_embed")))
    return stages


def cascading_randomisation(model: VisionTransformer, seed: int = 0) -> Iterator[tuple[str, VisionTransformer]]:
    """Yield ("original", copy), then (stage, copy) with each stage's weights re-initialised in turn,
    cumulatively, from the top (Adebayo et al. 2018's cascading randomisation).

    It works on one deep copy, changed in place between stages: use each before asking for the next.
    The random weights are those of ``vit.untrained_like(model, seed)``, so they depend on ``seed``
    only; ``model`` itself is never changed.
    """
    from .loading import untrained_like  # loading imports PIL; only needed here

    fresh = untrained_like(model, seed).state_dict()
    twin = copy.deepcopy(model)
    weights = twin.state_dict()  # tensors that share the twin's parameters
    yield "original", twin
    for name, prefixes in randomisation_stages(model):
        with torch.no_grad():
            for key, value in weights.items():
                if key.startswith(prefixes):
                    value.copy_(fresh[key])
        yield name, twin


@dataclass(frozen=True)
class SanityCheck:
    """Each method's map on one image as the weights are randomised, and how much it still resembles the original."""

    stages: tuple[str, ...]  # "original", "head", "block L-1", ..., "block 0", "embedding"
    maps: dict[str, Tensor]  # method → (S, gh, gw), one map per stage
    similarity: dict[str, tuple[float, ...]]  # method → Spearman rank correlation with the original map, per stage
    target: int  # the class explained at every stage: the trained model's prediction unless given


def sanity_check(model: VisionTransformer, x: Tensor, target: Target = None,
                 methods: Sequence[str] = ("attention", "rollout", "gradient"), seed: int = 0) -> SanityCheck:
    """Adebayo et al. (2018): a map that explains the model must change when the model's weights do.

    Runs every method on a copy of ``model`` whose layers are re-initialised cumulatively from the top
    (``cascading_randomisation``), always for the same class, and compares each map with the trained
    model's by Spearman's rank correlation (1: the same ranking of patches, 0: unrelated).
    """
    _one_image(x, "sanity_check")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose one of {sorted(METHODS)}")
    with torch.no_grad():
        target = int(resolve_targets(model(x), target)[0])  # fixed for every stage
    stages, maps = [], {m: [] for m in methods}
    for name, twin in cascading_randomisation(model, seed):
        stages.append(name)
        for m in methods:
            maps[m].append(METHODS[m](twin, x, target)[0].detach().float().cpu())
    stacked = {m: torch.stack(v) for m, v in maps.items()}
    similarity = {m: tuple(A.spearman(v[0], s) for s in v) for m, v in stacked.items()}
    return SanityCheck(stages=tuple(stages), maps=stacked, similarity=similarity, target=target)
