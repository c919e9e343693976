"""The model's configuration: one dataclass, plus the paper's Table 1 variants as presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ViTConfig:
    image_size: int = 224  # side of the square training resolution; inputs may be any multiple of P
    patch_size: int = 16  # P: each token is a P×P patch
    in_channels: int = 3  # C: 3 for RGB, 1 for grayscale
    dim: int = 768  # D: token width
    depth: int = 12  # L: number of encoder blocks
    heads: int = 12  # H: attention heads per block
    mlp_dim: int = 3072  # hidden width of each block's MLP
    num_classes: int = 1000  # 0 means no head (a feature extractor such as DINO)
    norm_eps: float = 1e-6  # LayerNorm epsilon (Hugging Face's ViT uses 1e-12)
    pool: str = "cls"  # 'cls': head reads the [class] token; 'mean': the mean of the patch tokens
    pos_embedding: str = "learned"  # 'learned' (the paper), 'sincos2d' (fixed) or 'none'
    qkv_bias: bool = True
    dropout: float = 0.0  # after the position embeddings, in the MLP and after attention
    attention_dropout: float = 0.0  # on the attention probabilities
    representation_size: int | None = None  # the tanh "pre-logits" layer of the pre-training head

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "in_channels", "dim", "depth", "heads", "mlp_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"num_classes must be 0 (no head) or more, not {self.num_classes!r}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.attention_dropout < 1.0):
            raise ValueError("dropout rates must be in [0, 1)")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, not {self.norm_eps!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', not {self.pool!r}")
        if self.pos_embedding not in ("learned", "sincos2d", "none"):
            raise ValueError(f"pos_embedding must be 'learned', 'sincos2d' or 'none', not {self.pos_embedding!r}")

    @property
    def grid_size(self) -> int:
        """Patches along each side at the training resolution."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "ViTConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ViTConfig":
        """A named configuration, e.g. ``ViTConfig.preset('ViT-B/16', num_classes=10)``."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides)


def _paper(patch: int, dim: int, depth: int, heads: int, mlp: int) -> ViTConfig:
    return ViTConfig(image_size=224, patch_size=patch, dim=dim, depth=depth, heads=heads, mlp_dim=mlp)


PRESETS: dict[str, ViTConfig] = {
    # Table 1 of Dosovitskiy et al. (2020): Base 86M, Large 307M, Huge 632M parameters.
    "ViT-B/16": _paper(16, 768, 12, 12, 3072),
    "ViT-B/32": _paper(32, 768, 12, 12, 3072),
    "ViT-L/16": _paper(16, 1024, 24, 16, 4096),
    "ViT-L/32": _paper(32, 1024, 24, 16, 4096),
    "ViT-H/14": _paper(14, 1280, 32, 16, 5120),
    # DeiT's small sizes (Touvron et al. 2021); ViT-S/16 is the same shape as DeiT-S.
    "DeiT-Ti": _paper(16, 192, 12, 3, 768),
    "DeiT-S": _paper(16, 384, 12, 6, 1536),
    "ViT-S/16": _paper(16, 384, 12, 6, 1536),
    # This project's own small models, trained on 2 CPU cores.
    "tiny-fashion": ViTConfig(image_size=28, patch_size=7, in_channels=1, dim=128, depth=6, heads=4, mlp_dim=256, num_classes=10),
    "tiny-symbols": ViTConfig(image_size=64, patch_size=8, in_channels=3, dim=96, depth=6, heads=6, mlp_dim=192, num_classes=15),
    "tiny-shapes": ViTConfig(image_size=32, patch_size=4, in_channels=3, dim=64, depth=4, heads=4, mlp_dim=128, num_classes=10),
}
