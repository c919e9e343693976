"""A Vision Transformer written from scratch, in the order of "An Image is Worth 16x16 Words".

    z0  = [x_class; x_p^1 E; ...; x_p^N E] + E_pos          (patch embedding, [class] token, positions)
    z'l = MSA(LN(z_{l-1})) + z_{l-1}                          (attention block, residual)
    zl  = MLP(LN(z'l)) + z'l                                  (MLP block with GELU, residual)
    y   = head(LN(z_L^0))                                     (head on the final [class] token)

``model(x)`` returns logits by the fastest path (fused attention). ``model.trace(x)`` runs the
same computation with explicit attention probabilities and returns every stage as a ``Trace``.
Both take an optional ``intervention`` (``vit.Intervention``: hide or shuffle patches, change the
position embeddings, switch off heads, skip branches), applied during the forward pass itself.
Nothing is stored on a module during a forward, so one model can serve many threads at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .config import ViTConfig
from .intervention import Intervention, LayerEdit, Plan, plan_for


@dataclass
class Trace:
    """Every intermediate stage of one forward pass. B batch, N patches, D width, L depth, H heads."""

    grid: tuple[int, int]  # patches along (height, width) for this input
    patches: Tensor  # (B, N, P·P·C) flattened raw patches, the "16x16 words"
    patch_embeddings: Tensor  # (B, N, D) the patches after the linear projection E
    class_token: Tensor  # (1, 1, D) the learned [class] embedding
    position_embeddings: Tensor  # (1, N+1, D) as added to this input (interpolated if needed)
    hidden_states: list[Tensor]  # L+1 × (B, N+1, D): z0, then each block's output, before the final norm
    attentions: list[Tensor]  # L × (B, H, N+1, N+1) softmax probabilities, rows sum to 1
    residual_mid: list[Tensor]  # L × (B, N+1, D): z'l = MSA(LN(z_{l-1})) + z_{l-1}
    final_tokens: Tensor  # (B, N+1, D) LN(z_L), the normed final tokens
    pooled: Tensor  # (B, D) what the head reads: the [class] token, or the mean of patch tokens
    logits: Tensor | None  # (B, classes), or None for a headless model
    pre_logits: Tensor | None = None  # (B, R) tanh representation layer, when the config has one
    mlp_activations: list[Tensor] | None = field(default=None)  # L × (B, N+1, mlp_dim) after GELU, on request
    # Under an intervention the sequence may be shuffled or shorter: n ≤ N patch tokens, and the
    # patch-wise fields above (patches, patch_embeddings, ...) are in token order. Then:
    patch_index: Tensor | None = None  # (n,) the grid patch whose content each patch token carries
    position_index: Tensor | None = None  # (n,) the grid position whose embedding it wears (-1: zeroed)
    token_mask: Tensor | None = None  # (B, n+1) bool, False where a batch item dropped the token

    @property
    def num_patches(self) -> int:
        return self.patches.shape[1]

    def to_numpy(self) -> dict[str, "object"]:
        """Plain numpy arrays keyed by stage name, e.g. for ``np.savez``."""
        out: dict[str, object] = {"grid": torch.tensor(self.grid).numpy()}
        for name in ("patches", "patch_embeddings", "class_token", "position_embeddings", "final_tokens", "pooled", "logits",
                     "pre_logits", "patch_index", "position_index", "token_mask"):
            value = getattr(self, name)
            if value is not None:
                value = value.detach().cpu()
                out[name] = (value if name in ("patch_index", "position_index", "token_mask") else value.float()).numpy()
        for name in ("hidden_states", "attentions", "residual_mid", "mlp_activations"):
            values = getattr(self, name)
            if values is not None:
                out[name] = torch.stack(values).detach().float().cpu().numpy()
        return out


class Attention(nn.Module):
    """Multi-head scaled dot-product self-attention with one fused q/k/v projection."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.scale = cfg.head_dim**-0.5
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.attn_drop = nn.Dropout(cfg.attention_dropout)
        self.proj_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, need_weights: bool = False, edit: LayerEdit | None = None) -> tuple[Tensor, Tensor | None]:
        """(B, n, D) → (output (B, n, D), attention probabilities (B, H, n, n) if ``need_weights``).

        ``edit`` (from an intervention) may mask keys (dropped tokens get probability 0) and switch
        heads off: their outputs, before W_O, are zeroed or replaced by their mean over tokens.
        """
        b, n, _ = x.shape
        key_mask = edit.key_mask[:, None, None, :] if edit is not None and edit.key_mask is not None else None
        # (B, N, 3·D) → q, k, v, each (B, H, N, d): einops "b n (three h d) -> three b h n d", as views.
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if need_weights:
            # softmax(q·kᵀ / √d) with B·H folded into one batch of GEMMs; alpha applies the scale
            # inside the GEMM, which gives the same bits as (q @ kᵀ) * scale, one pass cheaper.
            d = q.shape[-1]
            scores = torch.baddbmm(q.new_empty(()), q.reshape(-1, n, d), k.reshape(-1, n, d).transpose(1, 2),
                                   beta=0.0, alpha=self.scale)
            if key_mask is not None:  # a dropped key: -inf score, exactly 0 after the softmax
                scores = scores.view(b, self.heads, n, n).masked_fill(~key_mask, -math.inf).view(-1, n, n)
            attn = scores.softmax(dim=-1).view(b, self.heads, n, n)  # (B, H, N+1, N+1)
            out = (self.attn_drop(attn) if self.training else attn) @ v
        else:
            attn = None
            p = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p)
        if edit is not None:
            out = edit.silence_heads(out)  # (B, H, n, d)
        out = out.transpose(1, 2).reshape(b, n, -1)  # "b h n d -> b n (h d)"
        out = self.proj(out)
        return (self.proj_drop(out) if self.training else out), attn


class MLP(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.dim, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, keep_hidden: bool = False) -> tuple[Tensor, Tensor | None]:
        h = self.fc1(x)
        # Exact (erf) GELU, as in the paper and Hugging Face; in place when no gradient needs fc1's output.
        h = F.gelu(h) if torch.is_grad_enabled() else torch.ops.aten.gelu_(h)
        if not self.training:  # dropout is the identity at inference; skip the calls
            return self.fc2(h), (h if keep_hidden else None)
        return self.drop(self.fc2(self.drop(h))), (h if keep_hidden else None)


class Block(nn.Module):
    """One pre-LayerNorm encoder block: LN → MSA → +, then LN → MLP → +."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, need_weights: bool = False, keep_mlp: bool = False,
                edit: LayerEdit | None = None) -> tuple[Tensor, dict[str, Tensor | None]]:
        if edit is None:
            a, attn = self.attn(self.norm1(x), need_weights)
            mid = residual(x, a)  # z'l
            m, hidden = self.mlp(self.norm2(mid), keep_mlp)
            return residual(mid, m), {"attn": attn, "mid": mid, "mlp": hidden}
        # Under an intervention a branch may be skipped: the residual stream passes it unchanged.
        # A trace still computes a skipped branch's attention maps or activations, to show them.
        attn = hidden = None
        if need_weights or not edit.skip_attention:
            a, attn = self.attn(self.norm1(x), need_weights, edit)
        mid = x if edit.skip_attention else residual(x, a)
        if keep_mlp or not edit.skip_mlp:
            m, hidden = self.mlp(self.norm2(mid), keep_mlp)
        out = mid if edit.skip_mlp else residual(mid, m)
        return out, {"attn": attn, "mid": mid, "mlp": hidden}


def residual(x: Tensor, branch: Tensor) -> Tensor:
    """x + branch. Without autograd, the sum is written into ``branch`` (a fresh output nothing else
    holds): one large allocation fewer per residual, which on CPU means fewer fresh memory pages."""
    if torch.is_grad_enabled() or branch.dtype != x.dtype:
        return x + branch
    return branch.add_(x)


def sincos_2d(grid_h: int, grid_w: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """Fixed 2-D sine-cosine position embeddings, (grid_h·grid_w, dim); dim must divide by 4."""
    if dim % 4:
        raise ValueError("sincos2d position embeddings need dim divisible by 4")
    y, x = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4) / (dim // 4 - 1 if dim > 4 else 1))
    y = y.flatten()[:, None] * omega[None, :]
    x = x.flatten()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1).float()


def interpolate_position_embeddings(pos: Tensor, grid: tuple[int, int]) -> Tensor:
    """Resize learned (1, 1+n², D) position embeddings to a (gh, gw) grid by 2-D bicubic interpolation.

    Matches Hugging Face's ``interpolate_pos_encoding=True``: the [class] position is kept as is.
    """
    n = pos.shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"cannot interpolate {n} positions: not a square grid")
    if (side, side) == tuple(grid):
        return pos
    cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
    patch_pos = rearrange(patch_pos, "1 (h w) d -> 1 d h w", h=side)
    patch_pos = F.interpolate(patch_pos, size=grid, mode="bicubic", align_corners=False)
    return torch.cat((cls_pos, rearrange(patch_pos, "1 d h w -> 1 (h w) d")), dim=1)


class VisionTransformer(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        cfg = self.config = config
        self.patch_embed = nn.Conv2d(cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        if cfg.pos_embedding == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, cfg.dim))
        else:
            self.register_parameter("pos_embed", None)
        self.pos_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        if cfg.representation_size:
            self.pre_logits = nn.Linear(cfg.dim, cfg.representation_size)
        else:
            self.register_module("pre_logits", None)
        head_in = cfg.representation_size or cfg.dim
        self.head = nn.Linear(head_in, cfg.num_classes) if cfg.num_classes > 0 else None
        # Metadata a checkpoint carries; plain attributes, never changed during a forward.
        self.class_names: list[str] | None = None
        self.meta: dict = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal init (std 0.02) as in the reference implementations; zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.weight
        nn.init.trunc_normal_(w.view(w.shape[0], -1), std=math.sqrt(1.0 / w[0].numel()))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    # --- the stages, in the paper's order --------------------------------------------------

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        p = self.config.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}×{width} is not a multiple of the patch size {p}")
        return height // p, width // p

    def position_embeddings_for(self, grid: tuple[int, int]) -> Tensor:
        """(1, N+1, D) position embeddings for a (gh, gw) patch grid."""
        cfg = self.config
        if cfg.pos_embedding == "learned":
            return interpolate_position_embeddings(self.pos_embed, grid)
        n = grid[0] * grid[1]
        if cfg.pos_embedding == "sincos2d":
            pos = sincos_2d(grid[0], grid[1], cfg.dim).to(self.cls_token)
            return torch.cat((torch.zeros_like(pos[:1]), pos))[None]
        return self.cls_token.new_zeros(1, n + 1, cfg.dim)

    def embed(self, x: Tensor, plan: Plan | None = None) -> tuple[Tensor, Tensor, Tensor, tuple[int, int]]:
        """Image (B, C, H, W) → z0 (B, N+1, D); also the patch embeddings and position embeddings.

        With an intervention's ``plan``, patch tokens are covered (a hidden patch's token is what
        its covered pixels would give), reordered or dropped, and the position embeddings changed,
        before they are added; one image is expanded to the plan's batch.
        """
        grid = self.grid_for(x.shape[-2], x.shape[-1])
        patch_emb = rearrange(self.patch_embed(x), "b d h w -> b (h w) d")  # (B, N, D)
        pos = self.position_embeddings_for(grid)
        if plan is not None:
            bias = self.patch_embed.bias if self.patch_embed.bias is not None else patch_emb.new_zeros(())
            patch_emb, pos = plan.arrange(plan.cover(patch_emb, bias)), plan.positions(pos)
        cls = self.cls_token.expand(patch_emb.shape[0], -1, -1)
        z0 = torch.cat((cls, patch_emb), dim=1) + pos  # (B, N+1, D)
        if self.training:
            z0 = self.pos_drop(z0)
        return z0, patch_emb, pos, grid

    def pool(self, tokens: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """The [class] token, or the mean of the patch tokens (those ``token_mask`` keeps, if given)."""
        if self.config.pool == "cls":
            return tokens[:, 0]
        if token_mask is None:
            return tokens[:, 1:].mean(dim=1)
        w = token_mask[:, 1:, None].to(tokens.dtype)
        return (tokens[:, 1:] * w).sum(dim=1) / w.sum(dim=1)

    def forward_head(self, tokens: Tensor, token_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Normed final tokens (B, N+1, D) → (pooled, pre_logits, logits)."""
        pooled = self.pool(tokens, token_mask)
        pre = torch.tanh(self.pre_logits(pooled)) if self.pre_logits is not None else None
        feats = pre if pre is not None else pooled
        return pooled, pre, (self.head(feats) if self.head is not None else None)

    def plan(self, x: Tensor, intervention: Intervention | None) -> Plan | None:
        """The tensors that carry out ``intervention`` on ``x`` (None when it changes nothing)."""
        cfg = self.config
        return plan_for(intervention, x, self.grid_for(x.shape[-2], x.shape[-1]), cfg.depth, cfg.heads)

    def forward(self, x: Tensor, intervention: Intervention | None = None) -> Tensor:
        """Logits (B, classes), or the pooled features for a headless model. Fused attention.

        With an ``intervention`` whose ``hide_each`` has K items, one image is run K times.
        """
        plan = self.plan(x, intervention)
        if plan is None:
            z, _, _, _ = self.embed(x)
            for block in self.blocks:
                z, _ = block(z)
            mask = None
        else:
            z, _, _, _ = self.embed(x, plan)
            for block, edit in zip(self.blocks, plan.layers):
                z, _ = block(z, edit=edit)
            mask = plan.token_mask
        pooled, pre, logits = self.forward_head(self.norm(z), mask)
        if logits is not None:
            return logits
        return pre if pre is not None else pooled

    def trace(self, x: Tensor, mlp_activations: bool = False, intervention: Intervention | None = None) -> Trace:
        """Run the model on (B, C, H, W) and return every stage. Attention is computed explicitly.

        With an ``intervention`` the stages are those of the changed forward pass (see
        ``vit.intervention``); an empty ``Intervention()`` gives exactly the plain trace.
        """
        plan = self.plan(x, intervention)
        z, patch_emb, pos, grid = self.embed(x, plan)
        p = self.config.patch_size
        patches = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        if plan is not None:  # the patches as the model saw them: covered, in token order
            patches = plan.arrange(plan.cover(patches, patches.new_zeros(())))
        edits = plan.layers if plan is not None else [None] * len(self.blocks)
        hidden, attentions, mids, mlps = [z], [], [], []
        for block, edit in zip(self.blocks, edits):
            z, out = block(z, need_weights=True, keep_mlp=mlp_activations, edit=edit)
            hidden.append(z)
            attentions.append(out["attn"])
            mids.append(out["mid"])
            if mlp_activations:
                mlps.append(out["mlp"])
        final = self.norm(z)
        pooled, pre, logits = self.forward_head(final, plan.token_mask if plan is not None else None)
        return Trace(
            grid=grid,
            patches=patches,
            patch_embeddings=patch_emb,
            class_token=self.cls_token,
            position_embeddings=pos,
            hidden_states=hidden,
            attentions=attentions,
            residual_mid=mids,
            final_tokens=final,
            pooled=pooled,
            logits=logits,
            pre_logits=pre,
            mlp_activations=mlps if mlp_activations else None,
            patch_index=plan.source if plan is not None else None,
            position_index=plan.position_index if plan is not None else None,
            token_mask=plan.token_mask if plan is not None else None,
        )

    def logit_lens(self, hidden_states: list[Tensor]) -> Tensor:
        """Apply the final LN and the head to each layer's tokens: (L+1, B, classes)."""
        if self.head is None:
            raise ValueError("this model has no classification head")
        return torch.stack([self.forward_head(self.norm(h))[2] for h in hidden_states])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
