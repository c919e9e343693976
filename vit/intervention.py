"""Interventions: "what if…?" changes to a ViT's forward pass, given as data, not as hooks.

``model.trace(x, intervention=Intervention(...))`` and ``model(x, intervention=...)`` apply the
changes while the forward pass runs. Nothing is stored on a module, so one shared model serves
many threads, each with its own intervention; an ``Intervention`` is a frozen, hashable
dataclass, so an app can cache results on it.

What an intervention can change, in the order of the forward pass (patches are numbered from 0 in
the row-major order of the grid, as the token sequence is):

* **Hide patches** (``hide``, the same patches in every batch item; ``hide_each``, one tuple of
  patches per batch item), ``hide_with``:

  - ``"zero"``: the patch's pixels are set to 0 *in normalised space*, i.e. to the dataset's mean
    colour: a flat grey card laid on the image. Its token becomes E·0 + b = the patch-embedding
    bias (plus its position, as before).
  - ``"mean"``: the patch is replaced by the image's average patch (the mean of all its patches,
    pixel by pixel). The embedding is linear, so its token becomes the mean of the image's patch
    tokens.
  - ``"drop"``: the patch's token is removed and the sequence gets shorter; nothing can attend to
    it. With ``hide_each`` the batch cannot hold sequences of different lengths, so each item's
    dropped tokens are masked out as attention keys instead (and left out of a mean pool): the same
    computation for every token that is kept.

  'zero' and 'mean' are carried out on the tokens (the same numbers, by linearity, and the image is
  embedded once however many batch items hide something); the trace's ``patches`` show the covered
  pixels.

* **Shuffle the patches** (``shuffle``: a permutation of the patches, or an int seed for a random
  one): token slot i carries the content of patch ``perm[i]``. With ``move_positions=False`` the
  position embeddings stay in their slots, so the content moves to new positions and the output
  changes. With ``move_positions=True`` each patch keeps its own position embedding: the tokens are
  only reordered, and since self-attention is permutation-equivariant and the head reads the
  [class] token (or a mean over patch tokens), the output is unchanged.

* **Position embeddings** (``positions``): ``"keep"``, ``"zero"`` (all of them, [class]'s too),
  or ``"shuffle"`` (the patch positions permuted by ``position_seed``; [class]'s stays).

* **Switch off heads** (``heads_off``: (layer, head) pairs, 0-based), ``heads_with``: ``"zero"``
  sets the head's output (its attention-weighted values, before the output projection W_O) to 0;
  ``"mean"`` replaces it by its mean over the tokens (mean ablation). With every head of a block
  off (zero), that block's attention branch outputs just W_O's bias b_O.

* **Skip a branch** (``skip_attention``, ``skip_mlp``: layers): the branch is not added, so the
  residual stream passes through unchanged: z'ₗ = zₗ₋₁ or zₗ = z'ₗ. A trace still computes the
  skipped attention maps and MLP activations, to show what was left out.

``Intervention()`` changes nothing: the trace is bit-identical to one without it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

HIDE_WITH = ("zero", "mean", "drop")
POSITIONS = ("keep", "zero", "shuffle")
HEADS_WITH = ("zero", "mean")


def _indices(name: str, values: Any) -> tuple[int, ...]:
    """A tuple of non-negative whole numbers, or a clear ValueError."""
    try:
        items = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of whole numbers, not {values!r}") from None
    out = []
    for v in items:
        try:
            if isinstance(v, bool):
                raise TypeError
            v = operator.index(v)  # int, numpy integer, integer tensor of one element
        except TypeError:
            raise ValueError(f"{name}: {v!r} is not a whole number") from None
        if v < 0:
            raise ValueError(f"{name}: {v} is negative; indices count from 0")
        out.append(v)
    return tuple(out)


def _seeded_permutation(n: int, seed: int, device: torch.device) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)


@dataclass(frozen=True, repr=False)
class Intervention:
    """Changes to apply during one forward pass. See the module docstring for what each means."""

    hide: tuple[int, ...] = ()  # patches hidden in every batch item
    hide_each: tuple[tuple[int, ...], ...] | None = None  # per batch item: the patches it hides
    hide_with: str = "zero"  # 'zero' (dataset-mean pixels), 'mean' (the image's mean patch), 'drop'
    shuffle: tuple[int, ...] | int | None = None  # a permutation of the patches, or a seed
    move_positions: bool = False  # shuffled patches take their position embeddings with them
    positions: str = "keep"  # 'keep', 'zero' or 'shuffle' the position embeddings
    position_seed: int = 0  # the permutation of positions when positions='shuffle'
    heads_off: tuple[tuple[int, int], ...] = ()  # (layer, head) pairs switched off
    heads_with: str = "zero"  # 'zero' or 'mean' (over tokens)
    skip_attention: tuple[int, ...] = ()  # layers whose attention branch is skipped
    skip_mlp: tuple[int, ...] = ()  # layers whose MLP branch is skipped

    def __post_init__(self) -> None:
        # Lists become tuples (so the object stays hashable); sets of indices are sorted and unique.
        put = lambda name, value: object.__setattr__(self, name, value)
        put("hide", tuple(sorted(set(_indices("hide", self.hide)))))
        if self.hide_each is not None:
            put("hide_each", tuple(tuple(sorted(set(_indices("hide_each", h)))) for h in self.hide_each))
            if not self.hide_each:
                raise ValueError("hide_each needs one entry per batch item; it is empty")
        if self.hide_with not in HIDE_WITH:
            raise ValueError(f"hide_with must be one of {HIDE_WITH}, not {self.hide_with!r}")
        if self.shuffle is not None:
            if isinstance(self.shuffle, bool):
                raise ValueError("shuffle must be a permutation, a seed or None, not a bool")
            try:
                put("shuffle", operator.index(self.shuffle))  # a whole number is a seed
            except TypeError:
                put("shuffle", _indices("shuffle", self.shuffle))  # else a permutation
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, not {self.positions!r}")
        if self.heads_with not in HEADS_WITH:
            raise ValueError(f"heads_with must be one of {HEADS_WITH}, not {self.heads_with!r}")
        pairs = []
        for pair in self.heads_off:
            pair = _indices("heads_off", pair)
            if len(pair) != 2:
                raise ValueError(f"heads_off takes (layer, head) pairs, not {pair!r}")
            pairs.append(pair)
        put("heads_off", tuple(sorted(set(pairs))))
        put("skip_attention", tuple(sorted(set(_indices("skip_attention", self.skip_attention)))))
        put("skip_mlp", tuple(sorted(set(_indices("skip_mlp", self.skip_mlp)))))
        put("move_positions", bool(self.move_positions))
        put("position_seed", int(self.position_seed))

    def __repr__(self) -> str:  # only what differs from the defaults: Intervention(hide=(3,), hide_with='mean')
        changed = (f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default)
        return f"Intervention({', '.join(changed)})"

    @property
    def is_empty(self) -> bool:
        """True when nothing would change: the forward pass runs exactly as without an intervention."""
        return (not self.hide and self.hide_each is None and self.shuffle is None and self.positions == "keep"
                and not self.heads_off and not self.skip_attention and not self.skip_mlp)

    # --- checks against a model and an input --------------------------------------------------

    def check(self, depth: int, heads: int, num_patches: int, batch: int | None = None) -> None:
        """Raise a ValueError naming the first index that this model or input does not have."""
        n = num_patches
        for p in self.hide + tuple(p for item in self.hide_each or () for p in item):
            if p >= n:
                raise ValueError(f"cannot hide patch {p}: this input has {n} patches, numbered 0 to {n - 1}")
        if isinstance(self.shuffle, tuple) and sorted(self.shuffle) != list(range(n)):
            raise ValueError(f"shuffle must be a permutation of the {n} patches 0 to {n - 1}; "
                             f"got {len(self.shuffle)} numbers that are not")
        for layer, head in self.heads_off:
            if layer >= depth:
                raise ValueError(f"heads_off: layer {layer} does not exist; the model has {depth} layers, 0 to {depth - 1}")
            if head >= heads:
                raise ValueError(f"heads_off: head {head} does not exist; each layer has {heads} heads, 0 to {heads - 1}")
        for name in ("skip_attention", "skip_mlp"):
            for layer in getattr(self, name):
                if layer >= depth:
                    raise ValueError(f"{name}: layer {layer} does not exist; the model has {depth} layers, 0 to {depth - 1}")
        if self.hide_each is not None and batch is not None and batch not in (1, len(self.hide_each)):
            raise ValueError(f"hide_each has {len(self.hide_each)} items but the batch has {batch} images "
                             "(give one image, or one per item)")

    # --- made concrete for one input ----------------------------------------------------------

    def plan(self, x: Tensor, grid: tuple[int, int], depth: int, heads: int) -> Plan:
        """The tensors that carry out this intervention on the input ``x`` (B, C, H, W)."""
        n = grid[0] * grid[1]
        self.check(depth, heads, n, x.shape[0])
        dev = x.device
        batch = len(self.hide_each) if self.hide_each is not None else x.shape[0]

        hidden = torch.zeros(1, n, dtype=torch.bool, device=dev)  # (1, N): hidden in every item
        hidden[0, list(self.hide)] = True
        each = torch.zeros(batch, n, dtype=torch.bool, device=dev)  # (B, N): hidden in one item
        if self.hide_each is not None:
            rows = [i for i, item in enumerate(self.hide_each) for _ in item]
            each[rows, [p for item in self.hide_each for p in item]] = True

        # Token slot i carries patch source[i] and wears the position embedding of patch wear[i].
        source = torch.arange(n, device=dev)
        if self.shuffle is not None:
            source = (_seeded_permutation(n, self.shuffle, dev) if isinstance(self.shuffle, int)
                      else torch.tensor(self.shuffle, device=dev))
        wear = source.clone() if self.move_positions else torch.arange(n, device=dev)
        if self.positions == "shuffle":
            wear = _seeded_permutation(n, self.position_seed, dev)[wear]
        if self.hide_with == "drop" and self.hide:
            keep = ~hidden[0, source]
            source, wear = source[keep], wear[keep]

        token_mask = None
        if self.hide_with == "drop" and self.hide_each is not None:
            kept = ~each[:, source]  # (B, n): by slot
            token_mask = torch.cat((kept.new_ones(batch, 1), kept), dim=1)  # the [class] token is always kept

        heads_off = torch.zeros(depth, heads, dtype=torch.bool, device=dev)
        for layer, head in self.heads_off:
            heads_off[layer, head] = True
        layers = []
        for i in range(depth):
            edit = LayerEdit(heads_off=heads_off[i] if heads_off[i].any() else None, heads_with=self.heads_with,
                             skip_attention=i in self.skip_attention, skip_mlp=i in self.skip_mlp, key_mask=token_mask)
            layers.append(None if edit.is_empty else edit)
        covered = self.hide_with != "drop" and (bool(self.hide) or self.hide_each is not None)
        return Plan(batch=batch, hidden=(hidden | each) if covered else None, hide_with=self.hide_with,
                    source=source, in_order=self.shuffle is None and source.shape[0] == n,
                    wear=None if self.positions == "zero" else wear, token_mask=token_mask, layers=layers)


@dataclass
class LayerEdit:
    """What an intervention changes inside one encoder block."""

    heads_off: Tensor | None = None  # (H,) bool: heads switched off
    heads_with: str = "zero"
    skip_attention: bool = False
    skip_mlp: bool = False
    key_mask: Tensor | None = None  # (B, n+1) bool: tokens that may be attended to (False = dropped)

    @property
    def is_empty(self) -> bool:
        return self.heads_off is None and not self.skip_attention and not self.skip_mlp and self.key_mask is None

    def silence_heads(self, out: Tensor) -> Tensor:
        """Per-head outputs (B, H, n, d) with the heads that are off zeroed or replaced by their token mean."""
        if self.heads_off is None:
            return out
        off = self.heads_off[None, :, None, None]
        if self.heads_with == "zero":
            return out.masked_fill(off, 0.0)
        if self.key_mask is None:
            mean = out.mean(dim=2, keepdim=True)
        else:  # the mean over the tokens this item kept
            w = self.key_mask[:, None, :, None].to(out.dtype)
            mean = (out * w).sum(dim=2, keepdim=True) / w.sum(dim=2, keepdim=True)
        return torch.where(off, mean, out)


@dataclass
class Plan:
    """An intervention made concrete for one input: tensors, not options. Built per call, never stored."""

    batch: int  # B: the input's batch, or the number of ``hide_each`` items (one image expanded to them)
    hidden: Tensor | None  # (1 or B, N) bool: patches covered ('zero' or 'mean'), in grid order
    hide_with: str
    source: Tensor  # (n,) the patch whose content each token slot carries (after shuffling and dropping)
    in_order: bool  # source is 0, 1, ..., N-1: nothing to rearrange
    wear: Tensor | None  # (n,) the patch whose position embedding each slot wears; None when zeroed
    token_mask: Tensor | None  # (B, n+1) bool, per-item dropped tokens (False), or None
    layers: list[LayerEdit | None]

    def cover(self, seq: Tensor, zero: Tensor) -> Tensor:
        """Patch-wise values (1 or B, N, F) in grid order, as the batch (B, N, F), hidden patches covered.

        ``zero`` is what a patch of zeros gives (0 for pixels, the bias b for tokens: E·0 + b);
        'mean' uses the mean over the image's patches. The patch embedding is linear, so covering
        the tokens is covering the pixels: the image is embedded once, however many items.
        """
        fill = seq.mean(dim=1, keepdim=True) if self.hide_with == "mean" else zero
        seq = seq.expand(self.batch, -1, -1) if seq.shape[0] != self.batch else seq
        return seq if self.hidden is None else torch.where(self.hidden[..., None], fill, seq)

    def arrange(self, seq: Tensor) -> Tensor:
        """Patch-wise (B, N, ·) in grid order → (B, n, ·) in token order (shuffled, dropped)."""
        return seq if self.in_order else seq[:, self.source]

    def positions(self, pos: Tensor) -> Tensor:
        """(1, N+1, D) position embeddings → (1, n+1, D) as added to the tokens."""
        if self.wear is None:
            return pos.new_zeros(pos.shape[0], self.source.shape[0] + 1, pos.shape[2])
        return torch.cat((pos[:, :1], pos[:, 1:][:, self.wear]), dim=1)

    @property
    def position_index(self) -> Tensor:
        """(n,) the grid position each token slot wears; -1 where positions are zeroed."""
        return torch.full_like(self.source, -1) if self.wear is None else self.wear


def plan_for(intervention: Intervention | None, x: Tensor, grid: tuple[int, int], depth: int,
             heads: int) -> Plan | None:
    """The plan for ``intervention``, or None when there is nothing to change."""
    if intervention is None:
        return None
    if not isinstance(intervention, Intervention):
        raise TypeError(f"intervention must be a vit.Intervention, not {type(intervention).__name__}")
    if intervention.is_empty:
        return None
    return intervention.plan(x, grid, depth, heads)

