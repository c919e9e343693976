"""Weights in and out: safetensors plus a JSON sidecar, and conversion from Hugging Face's ViT.

Nothing here unpickles: pickle files (.pt, .pth, .bin, .ckpt, .pkl) can run code when loaded,
so they are refused with an explanation.
"""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import ViTConfig
from .errors import Joined, Message, UserError, reason
from .i18n import N_
from .model import VisionTransformer

MAX_CHECKPOINT_BYTES = 2 * 1024**3  # ViT-H/14 in fp32 is 2.5 GB; bigger than this is refused by default
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"}
SIDECAR_FORMAT = "vit-explorer/1"


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded; the message says why and what to do.

    ``CheckpointError(code, template, **params)``: a stable ``code`` ("pickle_refused"), the English
    ``template`` and its ``params``; ``str(e)`` is the English text (see :class:`vit.errors.UserError`).
    """


# Building a VisionTransformer draws its initial weights from torch's global random state. Builders
# take this lock, so a seeded build (``loading.untrained_like``) is not disturbed by another thread.
MODEL_INIT_LOCK = threading.RLock()

MAX_IMAGE_SIZE = 4096  # pixels per side a checkpoint's config may ask for
MAX_PATCHES = 4096  # patches per image (a 64×64 grid); attention is quadratic in this


def check_config(values: Mapping[str, Any], max_bytes: int = MAX_CHECKPOINT_BYTES) -> None:
    """Refuse a config from a file before any model is built from it: types, ranges, and a model size
    that fits ``max_bytes``. ``ViTConfig`` itself only checks divisibility, so a sidecar with dim 0 or
    depth -1 would otherwise fail deep inside torch (or allocate without bound)."""
    v = {**ViTConfig().to_dict(), **{k: values[k] for k in values}}
    problems = []
    for name, low in (("image_size", 1), ("patch_size", 1), ("in_channels", 1), ("dim", 1), ("depth", 1),
                      ("heads", 1), ("mlp_dim", 1), ("num_classes", 0)):
        x = v.get(name)
        if not isinstance(x, int) or isinstance(x, bool) or x < low:
            problems.append(Message(N_("{name} must be a whole number ≥ {low}, not {value}"),
                                    name=name, low=low, value=repr(x)))
    r = v.get("representation_size")
    if r is not None and (not isinstance(r, int) or isinstance(r, bool) or r < 1):
        problems.append(Message(N_("{name} must be empty or a whole number ≥ 1, not {value}"),
                                name="representation_size", value=repr(r)))
    for name in ("dropout", "attention_dropout"):
        x = v.get(name)
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not 0.0 <= x < 1.0:
            problems.append(Message(N_("{name} must be a number in [0, 1), not {value}"), name=name, value=repr(x)))
    eps = v.get("norm_eps")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0.0 < eps < 1.0:
        problems.append(Message(N_("{name} must be a small positive number, not {value}"),
                                name="norm_eps", value=repr(eps)))
    if problems:
        raise CheckpointError("invalid_config", N_("The model config is not valid: {problems}."),
                              problems=Joined(problems, "; "))
    if v["image_size"] > MAX_IMAGE_SIZE or (v["image_size"] // v["patch_size"]) ** 2 > MAX_PATCHES:
        raise CheckpointError(
            "config_too_large",
            N_("The model config asks for {image_size}px images in {patch_size}px patches; "
               "at most {max_image_size}px and {max_patches} patches are supported."),
            image_size=v["image_size"], patch_size=v["patch_size"], max_image_size=MAX_IMAGE_SIZE,
            max_patches=MAX_PATCHES)
    d, m, c, p = v["dim"], v["mlp_dim"], v["in_channels"], v["patch_size"]
    n = (v["image_size"] // p) ** 2 + 1
    per_block = 4 * d + 3 * d * d + (3 * d if v["qkv_bias"] else 0) + d * d + d + 2 * d * m + m + d
    params = d * c * p * p + 2 * d + (n * d if v["pos_embedding"] == "learned" else 0) + v["depth"] * per_block + 2 * d
    head_in = r or d
    params += (d * r + r if r else 0) + (head_in * v["num_classes"] + v["num_classes"] if v["num_classes"] else 0)
    if 2 * params > max_bytes:  # even in 16-bit floats the weights could not fit the size limit
        raise CheckpointError("model_too_large",
                              N_("The model config describes {count:,} parameters, more than the "
                                 "{limit_mb:.0f} MB checkpoint limit allows."),
                              count=params, limit_mb=max_bytes / 1e6)


# --- project checkpoints: NAME.safetensors + NAME.json -------------------------------------------


def save_model(model: VisionTransformer, path: str | Path, **metadata: Any) -> Path:
    """Write ``path.safetensors`` and ``path.json`` (config, class names, mean/std, metrics...)."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path.with_suffix(".safetensors")))
    meta = dict(model.meta)
    meta.update(metadata)
    if model.class_names is not None:
        meta.setdefault("class_names", list(model.class_names))
    sidecar = {"format": SIDECAR_FORMAT, "config": model.config.to_dict(), **meta}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path.with_suffix(".safetensors")


def read_safetensors(path: str | Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> dict[str, torch.Tensor]:
    """Load a .safetensors file after checking its size; errors become ``CheckpointError``."""
    path = Path(path)
    refuse_pickle(path)
    if not path.is_file():
        raise CheckpointError("weights_missing", N_("{file}: no such weights file"), file=path.name)
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(
            "checkpoint_too_large",
            N_("{file} is {size_mb:.0f} MB; the limit is {limit_mb:.0f} MB. Use a smaller model."),
            file=path.name, size_mb=size / 1e6, limit_mb=max_bytes / 1e6)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for corrupt headers
        raise CheckpointError("invalid_safetensors", N_("{file} is not a valid safetensors file ({reason})."),
                              file=path.name, reason=str(e)) from e


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            "pickle_refused",
            N_("{file} is a pickle file. Loading a pickle can run arbitrary code, so ViT Explorer "
               "never opens one. Convert it to .safetensors (safetensors.torch.save_file) and try again."),
            file=path.name)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", max_bytes: int = MAX_CHECKPOINT_BYTES) -> VisionTransformer:
    """Load a project checkpoint written by ``save_model`` (either file of the pair may be named)."""
    path = Path(path)
    refuse_pickle(path)
    base = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    sidecar_path = base.with_suffix(".json")
    if not sidecar_path.is_file():
        raise CheckpointError("sidecar_missing", N_("{name}: the JSON sidecar {sidecar} is missing."),
                              name=base.name, sidecar=sidecar_path.name)
    try:
        sidecar = json.loads(sidecar_path.read_text())
        raw = sidecar.pop("config")
        if not isinstance(raw, dict):
            raise TypeError(Message(N_("'config' is not a JSON object")))
        check_config(raw, max_bytes)
        config = ViTConfig.from_dict(raw)
    except CheckpointError as e:  # the same problem, said of this file: the code stays the cause's
        raise CheckpointError(e.code, N_("{file}: {reason}"), file=sidecar_path.name, reason=e.message) from e
    except (ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError) as e:
        raise CheckpointError("invalid_sidecar", N_("{file} does not describe a valid model config ({reason})."),
                              file=sidecar_path.name, reason=reason(e)) from e
    sidecar.pop("format", None)
    _check_sidecar(sidecar, config, sidecar_path.name)
    with MODEL_INIT_LOCK:
        model = VisionTransformer(config)
    load_state_checked(model, read_safetensors(base.with_suffix(".safetensors"), max_bytes))
    model.class_names = sidecar.get("class_names")
    model.meta = sidecar
    return prepare_for_inference(model, device)


def _check_sidecar(meta: dict, config: ViTConfig, name: str) -> None:
    """The metadata the app reads (class names, normalisation) must have the right form."""
    names = meta.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                              or len(names) != config.num_classes):
        raise CheckpointError("invalid_class_names", N_("{file}: class_names must be a list of {n} strings."),
                              file=name, n=config.num_classes)
    for key in ("mean", "std"):
        x = meta.get(key)
        if x is None:
            continue
        ok = isinstance(x, list) and len(x) == config.in_channels and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in x)
        if not ok or (key == "std" and min(x) <= 0):
            if key == "std":
                raise CheckpointError("invalid_normalisation",
                                      N_("{file}: {key} must be a list of {n} finite number(s), all positive."),
                                      file=name, key=key, n=config.in_channels)
            raise CheckpointError("invalid_normalisation", N_("{file}: {key} must be a list of {n} finite number(s)."),
                                  file=name, key=key, n=config.in_channels)


def load_state_checked(model: VisionTransformer, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model`` after checking names, shapes and dtypes, with readable errors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(Message(N_("missing {n} tensor(s), e.g. {names}"), n=len(missing), names=str(missing[:3])))
        if unexpected:
            parts.append(Message(N_("{n} unexpected tensor(s), e.g. {names}"), n=len(unexpected),
                                 names=str(unexpected[:3])))
        raise CheckpointError("weights_mismatch", N_("The weights do not fit this model: {problems}."),
                              problems=Joined(parts, "; "))
    for name, ref in expected.items():
        t = state[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError("wrong_shape", N_("Tensor {name} has shape {shape}, but the model needs {expected}."),
                                  name=name, shape=str(tuple(t.shape)), expected=str(tuple(ref.shape)))
        if not t.dtype.is_floating_point:
            raise CheckpointError("wrong_dtype", N_("Tensor {name} has dtype {dtype}; weights must be floating point."),
                                  name=name, dtype=str(t.dtype))
        if not torch.isfinite(t).all():
            raise CheckpointError("non_finite", N_("Tensor {name} contains NaN or infinite values."), name=name)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def prepare_for_inference(model: VisionTransformer, device: torch.device | str) -> VisionTransformer:
    """Eval mode, no gradients, on ``device``: done once, before the model is shared."""
    model.eval().requires_grad_(False)
    return model.to(device)


# --- Hugging Face ---------------------------------------------------------------------------------

# Both key layouts map to this project's names. The hub's checkpoint files use the first column's
# style (encoder.layer.N.attention.attention.query); recent transformers modules use q_proj etc.
_HF_BLOCK_KEYS = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.attention.query": "attn.q",
    "attention.attention.key": "attn.k",
    "attention.attention.value": "attn.v",
    "attention.output.dense": "attn.proj",
    "attention.q_proj": "attn.q",
    "attention.k_proj": "attn.k",
    "attention.v_proj": "attn.v",
    "attention.o_proj": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_HF_TOP_KEYS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "pooler.dense.weight": "pre_logits.weight",
    "pooler.dense.bias": "pre_logits.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}
_BLOCK_RE = re.compile(r"^(?:encoder\.layer|layers|encoder\.layers)\.(\d+)\.(.+)\.(weight|bias)$")


def convert_hf_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face ViT state dict (either layout, with or without ``vit.``) to ours."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        k = key[4:] if key.startswith("vit.") else key
        if k in _HF_TOP_KEYS:
            out[_HF_TOP_KEYS[k]] = value
            continue
        m = _BLOCK_RE.match(k)
        if not m or m.group(2) not in _HF_BLOCK_KEYS:
            raise CheckpointError("unknown_hf_weight", N_("Unrecognised Hugging Face ViT weight {key!r}."), key=key)
        layer, ours, kind = int(m.group(1)), _HF_BLOCK_KEYS[m.group(2)], m.group(3)
        if ours in ("attn.q", "attn.k", "attn.v"):
            qkv.setdefault((layer, kind), {})[ours[-1]] = value
        else:
            out[f"blocks.{layer}.{ours}.{kind}"] = value
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError("incomplete_qkv", N_("Layer {layer} is missing part of its query/key/value {kind}."),
                                  layer=layer, kind=kind)
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def config_from_hf(hf: Any, state: Mapping[str, torch.Tensor] | None = None) -> ViTConfig:
    """A ``ViTConfig`` from a transformers ``ViTConfig`` or its config.json dict."""
    get = (lambda k, d=None: hf.get(k, d)) if isinstance(hf, Mapping) else (lambda k, d=None: getattr(hf, k, d))
    act = get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError("unsupported_activation",
                              N_("Only the exact GELU activation is supported; this checkpoint uses {activation}."),
                              activation=repr(act))
    keys = {k[4:] if k.startswith("vit.") else k for k in (state or {})}
    has_classifier = "classifier.weight" in keys if state is not None else bool(get("id2label"))
    num_classes = int(state[next(k for k in state if k.endswith("classifier.weight"))].shape[0]) if (state is not None and has_classifier) else 0
    if state is None and has_classifier:
        num_classes = len(get("id2label"))
    has_pooler = "pooler.dense.weight" in keys
    image_size = get("image_size", 224)
    patch_size = get("patch_size", 16)
    try:
        values = _hf_config_values(get, image_size, patch_size, num_classes, has_pooler, has_classifier)
    except (ValueError, TypeError) as e:
        raise CheckpointError("invalid_hf_config", N_("The Hugging Face config is not valid ({reason})."),
                              reason=reason(e)) from e
    check_config(values)
    try:
        return ViTConfig(**values)
    except ValueError as e:
        raise CheckpointError("invalid_hf_config", N_("The Hugging Face config is not valid ({reason})."),
                              reason=reason(e)) from e


def _hf_config_values(get, image_size, patch_size, num_classes, has_pooler, has_classifier) -> dict[str, Any]:
    return dict(
        image_size=int(image_size[0] if isinstance(image_size, (list, tuple)) else image_size),
        patch_size=int(patch_size[0] if isinstance(patch_size, (list, tuple)) else patch_size),
        in_channels=int(get("num_channels", 3)),
        dim=int(get("hidden_size", 768)),
        depth=int(get("num_hidden_layers", 12)),
        heads=int(get("num_attention_heads", 12)),
        mlp_dim=int(get("intermediate_size", 3072)),
        num_classes=num_classes,
        norm_eps=float(get("layer_norm_eps", 1e-12)),
        qkv_bias=bool(get("qkv_bias", True)),
        dropout=float(get("hidden_dropout_prob", 0.0)),
        attention_dropout=float(get("attention_probs_dropout_prob", 0.0)),
        representation_size=(int(get("pooler_output_size", None) or get("hidden_size", 768)) if has_pooler and not has_classifier else None),
    )


def from_hf(model_or_state_dict: Any, config: Any = None) -> VisionTransformer:
    """Build a ``VisionTransformer`` from Hugging Face's ``ViTForImageClassification`` or ``ViTModel``.

    Pass the transformers model itself, or a state dict plus ``config`` (a transformers ViTConfig,
    its config.json as a dict, or a ``vit.ViTConfig``). A headless model's pooler becomes the tanh
    representation layer; when a classifier is present the pooler (unused by HF) is dropped.
    """
    if hasattr(model_or_state_dict, "state_dict") and callable(model_or_state_dict.state_dict):
        hf_model = model_or_state_dict
        state = dict(hf_model.state_dict())
        config = config or hf_model.config
        id2label = getattr(hf_model.config, "id2label", None)
    else:
        state = dict(model_or_state_dict)
        id2label = (config.get("id2label") if isinstance(config, Mapping) else getattr(config, "id2label", None))
        if config is None:
            raise CheckpointError("hf_config_needed",
                                  N_("from_hf needs a config when given a bare state dict (heads cannot be inferred)."))
    keys = {k[4:] if k.startswith("vit.") else k for k in state}
    if "classifier.weight" in keys:  # HF's classification model ignores the pooler
        state = {k: v for k, v in state.items() if "pooler." not in k}
    cfg = config if isinstance(config, ViTConfig) else config_from_hf(config, state)
    check_config(cfg.to_dict())
    with MODEL_INIT_LOCK:
        model = VisionTransformer(cfg)
    load_state_checked(model, convert_hf_state_dict(state))
    if id2label and cfg.num_classes:
        labels = {int(k): v for k, v in id2label.items()}
        model.class_names = [labels.get(i, f"class {i}") for i in range(cfg.num_classes)]
    return model.eval()


def load_hf_directory(path: str | Path, device: torch.device | str = "cpu", max_bytes: int = MAX_CHECKPOINT_BYTES) -> VisionTransformer:
    """Load a directory written by ``save_pretrained`` (config.json + model.safetensors), offline."""
    path = Path(path)
    config_path = path / "config.json"
    weights = path / "model.safetensors"
    if not config_path.is_file():
        raise CheckpointError("not_hf_directory",
                              N_("{dir}: no config.json; this is not a Hugging Face model directory."), dir=path.name)
    if not weights.is_file():
        pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise CheckpointError(
                "pickle_refused",
                N_("{dir}: no model.safetensors. It has {file}, a pickle file, which is never opened here; "
                   "re-save with safe_serialization=True."),
                dir=path.name, file=pickles[0])
        raise CheckpointError("weights_missing", N_("{dir}: no model.safetensors."), dir=path.name)
    try:
        hf_config = json.loads(config_path.read_text())
    except ValueError as e:
        raise CheckpointError("invalid_json", N_("{dir}/config.json is not valid JSON ({reason})."),
                              dir=path.name, reason=str(e)) from e
    model_type = hf_config.get("model_type", "vit")
    if model_type not in ("vit", "deit", "dino"):
        raise CheckpointError("unsupported_model_type",
                              N_("{dir} holds a {model_type} model; only ViT-style models are supported."),
                              dir=path.name, model_type=repr(model_type))
    model = from_hf(read_safetensors(weights, max_bytes), hf_config)
    meta: dict[str, Any] = {"source": "huggingface", "mean": [0.5] * model.config.in_channels, "std": [0.5] * model.config.in_channels}
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        try:
            p = json.loads(pre.read_text())
            meta["mean"], meta["std"] = list(p.get("image_mean", meta["mean"])), list(p.get("image_std", meta["std"]))
        except (ValueError, TypeError, AttributeError) as e:
            raise CheckpointError("invalid_preprocessor_config",
                                  N_("{dir}/preprocessor_config.json is not valid ({reason})."),
                                  dir=path.name, reason=str(e)) from e
        _check_sidecar(meta, model.config, f"{path.name}/preprocessor_config.json")
    meta["resize"] = "squash"  # HF's ViTImageProcessor resizes straight to image_size × image_size
    model.meta = meta
    return prepare_for_inference(model, device)
