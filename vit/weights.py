"""Weights in and out: safetensors plus a JSON sidecar, and conversion from Hugging Face's ViT.

Nothing here unpickles: pickle files (.pt, .pth, .bin, .ckpt, .pkl) can run code when loaded,
so they are refused with an explanation.

A checkpoint is checked against budgets before anything is allocated for it (the module constants
below; every loader takes them as keyword arguments, e.g. ``load_checkpoint(path, max_parameters=10**6)``):

- ``max_bytes``: the size of the weights file;
- ``max_parameters``: the parameters its config describes, computed arithmetically;
- ``max_trace_bytes``: the memory ``model.trace`` would need at the model's own resolution,
  attention maps included (:func:`trace_bytes`);
- ``max_tensors``: the tensors its config describes, and those a safetensors header lists;
- ``max_header_bytes``: a safetensors header (its length is read first, from the file's first 8 bytes);
- ``max_json_bytes``, ``max_json_depth``: each JSON file, and how deeply it may nest.

Every failure is a :class:`CheckpointError` whose message names the budget or the rule that was
broken, never a value or a key name read from the file (a file may be anything on disk). The entry
points (``load_checkpoint``, ``load_checkpoint_bytes``, ``load_hf_directory``, ``read_safetensors``,
``inspect_checkpoint``, and ``vit.load_model``) turn any other exception (an unreadable file, a
path too long, memory running out) into a ``CheckpointError`` too.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save_file

from .config import ViTConfig
from .errors import Joined, Message, UserError
from .i18n import N_
from .model import VisionTransformer

MAX_CHECKPOINT_BYTES = 2 * 1024**3  # ViT-H/14 in fp32 is 2.5 GB; bigger than this is refused by default
MAX_PARAMETERS = 400_000_000  # ViT-L/16 has 304M; ViT-H/14 (632M) is refused by default
MAX_TRACE_BYTES = 1_000_000_000  # what one trace at the model's own resolution may need
MAX_TENSORS = 10_000  # ViT-B has 200; a config or header with more is refused before it is built
MAX_HEADER_BYTES = 1_000_000  # a safetensors header (the JSON list of tensors); ViT-B's is 20 KB
MAX_JSON_BYTES = 1_000_000  # a sidecar, config.json or preprocessor_config.json; ours are 2 KB
MAX_JSON_DEPTH = 32  # nesting of objects and lists in a JSON file; ours nest 3 deep
MAX_IMAGE_SIZE = 4096  # pixels per side a checkpoint's config may ask for
MAX_PATCHES = 4096  # patches per image (a 64×64 grid); attention is quadratic in this
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"}
SIDECAR_FORMAT = "vit-explorer/1"
FITS = ("crop", "pad", "squash")  # a model's meta["resize"]
KNOWN_SCORES = ("max_prob", "energy")  # a known_rule's score (vit.predict)


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded; the message says why and what to do.

    ``CheckpointError(code, template, **params)``: a stable ``code`` ("pickle_refused"), the English
    ``template`` and its ``params``; ``str(e)`` is the English text (see :class:`vit.errors.UserError`).
    """


# Building a VisionTransformer draws its initial weights from torch's global random state. Builders
# take this lock, so a seeded build (``loading.untrained_like``) is not disturbed by another thread.
MODEL_INIT_LOCK = threading.RLock()


# --- budgets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budgets:
    max_bytes: int
    max_parameters: int
    max_trace_bytes: int
    max_tensors: int
    max_header_bytes: int
    max_json_bytes: int
    max_json_depth: int


class BudgetNameError(TypeError):
    """A loader was called with a keyword that names no budget (a caller's mistake, not the file's)."""


def budgets(max_bytes: int | None = None, **limits: int | None) -> Budgets:
    """The module's budgets (read now, so a changed constant counts), with ``limits`` replacing some."""
    values = dict(max_bytes=MAX_CHECKPOINT_BYTES, max_parameters=MAX_PARAMETERS, max_trace_bytes=MAX_TRACE_BYTES,
                  max_tensors=MAX_TENSORS, max_header_bytes=MAX_HEADER_BYTES, max_json_bytes=MAX_JSON_BYTES,
                  max_json_depth=MAX_JSON_DEPTH)
    unknown = sorted(set(limits) - set(values))
    if unknown:
        raise BudgetNameError(f"unknown budget(s) {unknown}; the budgets are {sorted(values)}")
    values.update({k: v for k, v in {"max_bytes": max_bytes, **limits}.items() if v is not None})
    return Budgets(**values)


def guarded(fn: Callable) -> Callable:
    """Let only ``CheckpointError`` out of a loader: an unreadable file, memory running out, a path the
    system refuses, or anything unforeseen in a hostile file becomes one, without the file's contents."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (CheckpointError, BudgetNameError):
            raise
        except MemoryError as e:
            raise CheckpointError("out_of_memory", N_("There was not enough memory to load this checkpoint.")) from e
        except RecursionError as e:
            raise CheckpointError("too_deep", N_("The checkpoint is nested too deeply to be read.")) from e
        except OSError as e:  # the system's reason ("Permission denied"), never the path or the contents
            raise CheckpointError("unreadable", N_("The checkpoint could not be read ({reason})."),
                                  reason=e.strerror or type(e).__name__) from e
        except Exception as e:  # noqa: BLE001 - anything else a hostile file provokes
            raise CheckpointError("unreadable", N_("The checkpoint could not be loaded (an unexpected {kind})."),
                                  kind=type(e).__name__) from e

    return wrapper


def _whole(x: Any, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def count_parameters(cfg: ViTConfig) -> int:
    """The parameters of ``VisionTransformer(cfg)``, by arithmetic (nothing is built)."""
    d, m, c, p, r, k = cfg.dim, cfg.mlp_dim, cfg.in_channels, cfg.patch_size, cfg.representation_size, cfg.num_classes
    n = (cfg.image_size // p) ** 2 + 1
    per_block = 4 * d + 3 * d * d + (3 * d if cfg.qkv_bias else 0) + d * d + d + 2 * d * m + m + d
    params = d * c * p * p + 2 * d + (n * d if cfg.pos_embedding == "learned" else 0) + cfg.depth * per_block + 2 * d
    return params + (d * r + r if r else 0) + ((r or d) * k + k if k else 0)


def count_tensors(cfg: ViTConfig) -> int:
    """The tensors in ``VisionTransformer(cfg).state_dict()``, by arithmetic."""
    top = 3 + (cfg.pos_embedding == "learned") + 2 + (2 if cfg.representation_size else 0) + (2 if cfg.num_classes else 0)
    return top + cfg.depth * (11 + bool(cfg.qkv_bias))


def trace_bytes(cfg: ViTConfig) -> int:
    """About the memory ``model.trace`` needs on one image at the model's own resolution, in bytes (fp32).

    The trace keeps every block's attention maps, L × H × T² for T = N + 1 tokens, and while a block runs
    its scores and probabilities (2 × H × T²) exist at once; then the activations: L + 1 hidden states
    and L residual midpoints (T × D each), one block's MLP (T × mlp_dim), the image and its patches.
    ViT-B/16 at 224 px needs about 45 MB; with 4096 patches one attention map is 67 MB, so 12 heads in 12
    layers would need 12 GB.
    """
    t = (cfg.image_size // cfg.patch_size) ** 2 + 1
    attention = cfg.depth * cfg.heads * t * t + 2 * cfg.heads * t * t
    activations = (2 * cfg.depth + 1) * t * cfg.dim + t * cfg.mlp_dim + 2 * cfg.in_channels * cfg.image_size**2
    return 4 * (attention + activations)


def expected_shapes(cfg: ViTConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of ``VisionTransformer(cfg)``, without building it."""
    d, m, c, p = cfg.dim, cfg.mlp_dim, cfg.in_channels, cfg.patch_size
    out: dict[str, tuple[int, ...]] = {"cls_token": (1, 1, d)}
    if cfg.pos_embedding == "learned":
        out["pos_embed"] = (1, cfg.num_patches + 1, d)
    out.update({"patch_embed.weight": (d, c, p, p), "patch_embed.bias": (d,)})
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        out.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d)})
        if cfg.qkv_bias:
            out[b + "attn.qkv.bias"] = (3 * d,)
        out.update({b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,), b + "norm2.weight": (d,),
                    b + "norm2.bias": (d,), b + "mlp.fc1.weight": (m, d), b + "mlp.fc1.bias": (m,),
                    b + "mlp.fc2.weight": (d, m), b + "mlp.fc2.bias": (d,)})
    out.update({"norm.weight": (d,), "norm.bias": (d,)})
    if cfg.representation_size:
        out.update({"pre_logits.weight": (cfg.representation_size, d), "pre_logits.bias": (cfg.representation_size,)})
    if cfg.num_classes:
        out.update({"head.weight": (cfg.num_classes, cfg.representation_size or d), "head.bias": (cfg.num_classes,)})
    return out


_CHOICES = {"pool": ("cls", "mean"), "pos_embedding": ("learned", "sincos2d", "none")}


def check_config(values: Mapping[str, Any], max_bytes: int | None = None, **limits: int) -> ViTConfig:
    """Refuse a config from a file before any model is built from it: fields, types and ranges, then the
    budgets (image size and patches, parameters, checkpoint size, tensors, trace memory). Returns the
    ``ViTConfig``. Messages name the field or the budget, never a value from ``values``."""
    b = budgets(max_bytes, **limits)
    if not isinstance(values, Mapping):
        raise CheckpointError("invalid_config", N_("The model config is not valid: {problems}."),
                              problems=Message(N_("it is not a JSON object")))
    known = set(ViTConfig().to_dict())
    unknown = [k for k in values if k not in known]
    v = {**ViTConfig().to_dict(), **{k: values[k] for k in values if k in known}}
    problems: list[Message] = []
    if unknown:
        problems.append(Message(N_("{n} unknown field(s)"), n=len(unknown)))
    for name, low in (("image_size", 1), ("patch_size", 1), ("in_channels", 1), ("dim", 1), ("depth", 1),
                      ("heads", 1), ("mlp_dim", 1), ("num_classes", 0)):
        if not _whole(v[name], low):
            problems.append(Message(N_("{name} must be a whole number ≥ {low}"), name=name, low=low))
    r = v["representation_size"]
    if r is not None and not _whole(r, 1):
        problems.append(Message(N_("{name} must be empty or a whole number ≥ 1"), name="representation_size"))
    for name in ("dropout", "attention_dropout"):
        if not (_number(v[name]) and 0.0 <= v[name] < 1.0):
            problems.append(Message(N_("{name} must be a number in [0, 1)"), name=name))
    if not (_number(v["norm_eps"]) and 0.0 < v["norm_eps"] < 1.0):
        problems.append(Message(N_("{name} must be a small positive number"), name="norm_eps"))
    for name, choices in _CHOICES.items():
        if not isinstance(v[name], str) or v[name] not in choices:
            problems.append(Message(N_("{name} must be one of {choices}"), name=name, choices=", ".join(choices)))
    if not isinstance(v["qkv_bias"], bool):
        problems.append(Message(N_("{name} must be true or false"), name="qkv_bias"))
    if not problems:
        if v["image_size"] % v["patch_size"]:
            problems.append(Message(N_("{a} must be a multiple of {b}"), a="image_size", b="patch_size"))
        if v["dim"] % v["heads"]:
            problems.append(Message(N_("{a} must be divisible by {b}"), a="dim", b="heads"))
        if v["pos_embedding"] == "sincos2d" and v["dim"] % 4:
            problems.append(Message(N_("{a} must be divisible by {b}"), a="dim", b=4))
    if problems:
        raise CheckpointError("invalid_config", N_("The model config is not valid: {problems}."),
                              problems=Joined(problems, "; "))
    cfg = ViTConfig(**v)
    if cfg.image_size > MAX_IMAGE_SIZE or cfg.num_patches > MAX_PATCHES:
        raise CheckpointError(
            "config_too_large",
            N_("The model config asks for larger images or more patches than are supported: at most "
               "{max_image_size}px and {max_patches} patches."),
            max_image_size=MAX_IMAGE_SIZE, max_patches=MAX_PATCHES)
    params = count_parameters(cfg)
    if params > b.max_parameters:
        raise CheckpointError("model_too_large",
                              N_("The model config describes more parameters than the budget of {limit:,} allows."),
                              limit=b.max_parameters)
    if 2 * params > b.max_bytes:  # even in 16-bit floats the weights could not fit the size limit
        raise CheckpointError("model_too_large",
                              N_("The model config describes more parameters than the {limit_mb:,.0f} MB "
                                 "checkpoint limit allows."),
                              limit_mb=b.max_bytes / 1e6)
    if count_tensors(cfg) > b.max_tensors:
        raise CheckpointError("too_many_tensors",
                              N_("The model config describes more tensors than the budget of {limit:,} allows."),
                              limit=b.max_tensors)
    if trace_bytes(cfg) > b.max_trace_bytes:
        raise CheckpointError(
            "trace_too_large",
            N_("A trace of this model would need more memory than the trace budget of {limit_mb:,.0f} MB allows "
               "(its attention maps grow with the square of the number of patches)."),
            limit_mb=b.max_trace_bytes / 1e6)
    return cfg


# --- JSON and safetensors headers, read within budgets ---------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_depth(text: str) -> int:
    """How deeply objects and lists nest in ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(text):
        t = token.group()
        if t in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif t in "]}":
            depth -= 1
    return deepest


def parse_json(data: bytes, file: str, max_json_bytes: int | None = None, max_json_depth: int | None = None,
               code: str = "invalid_json") -> Any:
    """JSON from ``data`` within the size and depth budgets; any problem is a ``CheckpointError``."""
    b = budgets(max_json_bytes=max_json_bytes, max_json_depth=max_json_depth)
    if len(data) > b.max_json_bytes:
        raise CheckpointError("json_too_large", N_("{file} is larger than the budget of {limit_kb:,.0f} KB for JSON files."),
                              file=file, limit_kb=b.max_json_bytes / 1e3)
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(code, N_("{file} is not valid JSON: it is not UTF-8 text."), file=file) from e
    if text.count("[") + text.count("{") > b.max_json_depth and _json_depth(text) > b.max_json_depth:
        raise CheckpointError("json_too_deep", N_("{file} nests deeper than the JSON budget of {limit} levels."),
                              file=file, limit=b.max_json_depth)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(code, N_("{file} is not valid JSON (line {line}, column {column})."),
                              file=file, line=e.lineno, column=e.colno) from e
    except (ValueError, RecursionError) as e:  # e.g. a number with thousands of digits
        raise CheckpointError(code, N_("{file} is not valid JSON."), file=file) from e


def _read_capped(path: Path, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of a file (so a file that grows is still caught)."""
    with open(path, "rb") as f:
        return f.read(limit + 1)


def read_json_file(path: Path, file: str, b: Budgets) -> Any:
    return parse_json(_read_capped(path, b.max_json_bytes), file, b.max_json_bytes, b.max_json_depth)


def read_json_object(path: Path, file: str, b: Budgets) -> dict:
    data = read_json_file(path, file, b)
    if not isinstance(data, dict):
        raise CheckpointError("json_not_object", N_("{file} must hold a JSON object."), file=file)
    return data


_ST_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    name: (getattr(torch, attr), size) for name, attr, size in (
        ("F64", "float64", 8), ("F32", "float32", 4), ("F16", "float16", 2), ("BF16", "bfloat16", 2),
        ("F8_E4M3", "float8_e4m3fn", 1), ("F8_E5M2", "float8_e5m2", 1), ("I64", "int64", 8), ("I32", "int32", 4),
        ("I16", "int16", 2), ("I8", "int8", 1), ("U64", "uint64", 8), ("U32", "uint32", 4), ("U16", "uint16", 2),
        ("U8", "uint8", 1), ("BOOL", "bool", 1))
    if hasattr(torch, attr)}


def _invalid_safetensors(file: str, reason: str) -> CheckpointError:
    return CheckpointError("invalid_safetensors", N_("{file} is not a valid safetensors file ({reason})."),
                           file=file, reason=Message(reason))


def read_header(read: Callable[[int, int], bytes], size: int, file: str, b: Budgets) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """The tensors a safetensors file lists, {name: (dtype, shape)}, checked within the budgets and against
    the file's size before any tensor is read. ``read(offset, n)`` gives ``n`` bytes of the file."""
    if size < 8:
        raise _invalid_safetensors(file, N_("it is shorter than a safetensors header"))
    n = int.from_bytes(read(0, 8), "little")
    if 8 + n > size:
        raise _invalid_safetensors(file, N_("its header is longer than the file"))
    if n > b.max_header_bytes:
        raise CheckpointError("header_too_large",
                              N_("{file}: its safetensors header is larger than the budget of {limit_kb:,.0f} KB."),
                              file=file, limit_kb=b.max_header_bytes / 1e3)
    raw = read(8, n)
    try:
        header = parse_json(raw, file, max_json_bytes=max(n, 1), max_json_depth=b.max_json_depth)
    except CheckpointError as e:
        raise _invalid_safetensors(file, N_("its header is not valid JSON")) from e
    if not isinstance(header, dict):
        raise _invalid_safetensors(file, N_("its header is not valid JSON"))
    header.pop("__metadata__", None)
    if len(header) > b.max_tensors:
        raise CheckpointError("too_many_tensors", N_("{file} lists more tensors than the budget of {limit:,} allows."),
                              file=file, limit=b.max_tensors)
    data_size = size - 8 - n
    out: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for name, info in header.items():
        ok = isinstance(info, dict) and isinstance(info.get("dtype"), str) and info["dtype"] in _ST_DTYPES
        shape, offsets = (info.get("shape"), info.get("data_offsets")) if ok else (None, None)
        ok = (ok and isinstance(shape, list) and len(shape) <= 8 and all(_whole(s, 0) for s in shape)
              and isinstance(offsets, list) and len(offsets) == 2 and all(_whole(o, 0) for o in offsets)
              and offsets[0] <= offsets[1] <= data_size)
        if ok:
            dtype, item = _ST_DTYPES[info["dtype"]]
            ok = offsets[1] - offsets[0] == math.prod(shape) * item
        if not ok:
            raise _invalid_safetensors(file, N_("a tensor's entry in its header is not valid"))
        out[name] = (dtype, tuple(shape))
    return out


def _file_reader(path: Path) -> Callable[[int, int], bytes]:
    def read(offset: int, n: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(n)
    return read


def _weights_file(path: Path, b: Budgets) -> int:
    """Refuse a missing, pickled or too large weights file; returns its size."""
    refuse_pickle(path)
    if not path.is_file():
        raise CheckpointError("weights_missing", N_("{file}: no such weights file"), file=path.name)
    size = path.stat().st_size
    if size > b.max_bytes:
        raise CheckpointError(
            "checkpoint_too_large",
            N_("{file} is {size_mb:.0f} MB; the limit is {limit_mb:.0f} MB. Use a smaller model."),
            file=path.name, size_mb=size / 1e6, limit_mb=b.max_bytes / 1e6)
    return size


def _tensors_from_file(path: Path, names) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in names}
    except (MemoryError, OSError):
        raise
    except Exception as e:  # safetensors raises several types for corrupt files
        raise _invalid_safetensors(path.name, N_("the safetensors library could not read it")) from e


def _tensors_from_bytes(data: bytes, file: str) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors_bytes(bytes(data))
    except MemoryError:
        raise
    except Exception as e:
        raise _invalid_safetensors(file, N_("the safetensors library could not read it")) from e


@guarded
def read_safetensors(path: str | Path, max_bytes: int | None = None, **limits: int) -> dict[str, torch.Tensor]:
    """Load a .safetensors file after checking its size and header; errors become ``CheckpointError``."""
    b = budgets(max_bytes, **limits)
    path = Path(path)
    size = _weights_file(path, b)
    header = read_header(_file_reader(path), size, path.name, b)
    return _tensors_from_file(path, header)


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            "pickle_refused",
            N_("{file} is a pickle file. Loading a pickle can run arbitrary code, so ViT Explorer "
               "never opens one. Convert it to .safetensors (safetensors.torch.save_file) and try again."),
            file=path.name)


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


def _sidecar_config(sidecar: Any, file: str, b: Budgets) -> tuple[ViTConfig, dict]:
    """The config and the metadata of a parsed sidecar, checked (nothing is built)."""
    if not isinstance(sidecar, dict):
        raise CheckpointError("json_not_object", N_("{file} must hold a JSON object."), file=file)
    meta = dict(sidecar)
    raw = meta.pop("config", None)
    meta.pop("format", None)
    if not isinstance(raw, dict):
        why = N_("'config' is not a JSON object") if "config" in sidecar else N_("there is no 'config'")
        raise CheckpointError("invalid_sidecar", N_("{file} does not describe a valid model config ({reason})."),
                              file=file, reason=Message(why))
    try:
        config = check_config(raw, **vars(b))
    except CheckpointError as e:  # the same problem, said of this file: the code stays the cause's
        raise CheckpointError(e.code, N_("{file}: {reason}"), file=file, reason=e.message) from e
    _check_sidecar(meta, config, file)
    return config, meta


def _check_sidecar(meta: dict, config: ViTConfig, name: str) -> None:
    """The metadata the app reads (class names, normalisation, metrics, rules) must have the right form."""
    names = meta.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                              or len(names) != config.num_classes):
        raise CheckpointError("invalid_class_names", N_("{file}: class_names must be a list of {n} strings."),
                              file=name, n=config.num_classes)
    for key in ("mean", "std"):
        x = meta.get(key)
        if x is None:
            continue
        ok = isinstance(x, list) and len(x) == config.in_channels and all(_number(v) for v in x)
        if not ok or (key == "std" and min(x) <= 0):
            if key == "std":
                raise CheckpointError("invalid_normalisation",
                                      N_("{file}: {key} must be a list of {n} finite number(s), all positive."),
                                      file=name, key=key, n=config.in_channels)
            raise CheckpointError("invalid_normalisation", N_("{file}: {key} must be a list of {n} finite number(s)."),
                                  file=name, key=key, n=config.in_channels)
    checks = {
        "name": (lambda x: isinstance(x, str), Message(N_("text"))),
        "dataset": (lambda x: isinstance(x, str), Message(N_("text"))),
        "resize": (lambda x: isinstance(x, str) and x in FITS, Message(N_("one of {choices}"), choices=", ".join(FITS))),
        "test_accuracy": (lambda x: _number(x) and 0 <= x <= 1, Message(N_("a number from 0 to 1"))),
        "test_set_size": (lambda x: _whole(x, 0), Message(N_("a whole number ≥ 0"))),
        "val_set_size": (lambda x: _whole(x, 0), Message(N_("a whole number ≥ 0"))),
        "untrained": (lambda x: isinstance(x, bool), Message(N_("true or false"))),
        "known_rule": (_known_rule_ok, Message(N_("a rule with a score ({choices}) and a finite threshold"),
                                               choices=", ".join(KNOWN_SCORES))),
    }
    for key, (ok, expected) in checks.items():
        x = meta.get(key)
        if x is not None and not ok(x):
            raise CheckpointError("invalid_metadata", N_("{file}: {key} must be {expected}."),
                                  file=name, key=key, expected=expected)


def _known_rule_ok(rule: Any) -> bool:
    """The form vit.predict reads: {"score": "max_prob" | "energy", "threshold": number, "nothing_class": name}."""
    if not isinstance(rule, dict):
        return False
    score, nothing = rule.get("score"), rule.get("nothing_class")
    return (isinstance(score, str) and score in KNOWN_SCORES and _number(rule.get("threshold"))
            and (nothing is None or isinstance(nothing, str)))


def _check_names_and_shapes(expected: Mapping[str, tuple[int, ...]],
                            found: Mapping[str, tuple[torch.dtype, tuple[int, ...]]]) -> None:
    """Names, shapes and dtypes of the tensors ``found`` against the model's ``expected`` shapes. Only the
    model's own tensor names are ever named; names only the file has are counted."""
    missing = sorted(set(expected) - set(found))
    unexpected = set(found) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(Message(N_("missing {n} tensor(s), e.g. {names}"), n=len(missing), names=str(missing[:3])))
        if unexpected:
            parts.append(Message(N_("{n} unexpected tensor(s)"), n=len(unexpected)))
        raise CheckpointError("weights_mismatch", N_("The weights do not fit this model: {problems}."),
                              problems=Joined(parts, "; "))
    for name, shape in expected.items():
        dtype, got = found[name]
        if tuple(got) != tuple(shape):
            raise CheckpointError("wrong_shape", N_("Tensor {name} has shape {shape}, but the model needs {expected}."),
                                  name=name, shape=str(tuple(got)), expected=str(tuple(shape)))
        if not dtype.is_floating_point:
            raise CheckpointError("wrong_dtype", N_("Tensor {name} has dtype {dtype}; weights must be floating point."),
                                  name=name, dtype=str(dtype))


def load_state_checked(model: VisionTransformer, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model`` after checking names, shapes, dtypes and values, with readable errors."""
    expected = model.state_dict()
    _check_names_and_shapes({k: tuple(v.shape) for k, v in expected.items()},
                            {k: (v.dtype, tuple(v.shape)) for k, v in state.items()})
    for name in expected:
        if not torch.isfinite(state[name]).all():
            raise CheckpointError("non_finite", N_("Tensor {name} contains NaN or infinite values."), name=name)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def prepare_for_inference(model: VisionTransformer, device: torch.device | str) -> VisionTransformer:
    """Eval mode, no gradients, on ``device``: done once, before the model is shared."""
    model.eval().requires_grad_(False)
    return model.to(device)


def _build(config: ViTConfig, meta: dict, state: Mapping[str, torch.Tensor], device) -> VisionTransformer:
    with MODEL_INIT_LOCK:
        model = VisionTransformer(config)
    load_state_checked(model, state)
    model.class_names = meta.get("class_names")
    model.meta = meta
    return prepare_for_inference(model, device)


def _project_paths(path: Path) -> tuple[Path, Path]:
    refuse_pickle(path)
    base = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return base.with_suffix(".json"), base.with_suffix(".safetensors")


def _plan_project(path: Path, b: Budgets) -> tuple[ViTConfig, dict, Path, dict]:
    """Everything about a project checkpoint that can be checked before the model is built."""
    sidecar_path, weights_path = _project_paths(path)
    if not sidecar_path.is_file():
        raise CheckpointError("sidecar_missing", N_("{name}: the JSON sidecar {sidecar} is missing."),
                              name=sidecar_path.stem, sidecar=sidecar_path.name)
    config, meta = _sidecar_config(read_json_file(sidecar_path, sidecar_path.name, b), sidecar_path.name, b)
    size = _weights_file(weights_path, b)
    header = read_header(_file_reader(weights_path), size, weights_path.name, b)
    _check_names_and_shapes(expected_shapes(config), header)
    return config, meta, weights_path, header


@guarded
def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", max_bytes: int | None = None,
                    **limits: int) -> VisionTransformer:
    """Load a project checkpoint written by ``save_model`` (either file of the pair may be named).

    The sidecar's config, metadata and the weights file's header are checked against the budgets
    first; the model is built only when its weights are known to fit it.
    """
    config, meta, weights_path, header = _plan_project(Path(path), budgets(max_bytes, **limits))
    return _build(config, meta, _tensors_from_file(weights_path, header), device)


@guarded
def load_checkpoint_bytes(weights: bytes, sidecar: bytes, device: torch.device | str = "cpu",
                          name: str = "checkpoint", max_bytes: int | None = None, **limits: int) -> VisionTransformer:
    """A project checkpoint from its two files' bytes (an upload): nothing touches the disk.

    ``name`` is how messages name the pair (``name.safetensors``, ``name.json``).
    """
    b = budgets(max_bytes, **limits)
    sidecar_name, weights_name = f"{name}.json", f"{name}.safetensors"
    config, meta = _sidecar_config(parse_json(sidecar, sidecar_name, b.max_json_bytes, b.max_json_depth),
                                   sidecar_name, b)
    if len(weights) > b.max_bytes:
        raise CheckpointError(
            "checkpoint_too_large",
            N_("{file} is {size_mb:.0f} MB; the limit is {limit_mb:.0f} MB. Use a smaller model."),
            file=weights_name, size_mb=len(weights) / 1e6, limit_mb=b.max_bytes / 1e6)
    view = memoryview(weights)
    header = read_header(lambda offset, n: bytes(view[offset:offset + n]), len(weights), weights_name, b)
    _check_names_and_shapes(expected_shapes(config), header)
    return _build(config, meta, _tensors_from_bytes(weights, weights_name), device)


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
    unknown = 0
    for key, value in state.items():
        k = key[4:] if key.startswith("vit.") else key
        if k in _HF_TOP_KEYS:
            out[_HF_TOP_KEYS[k]] = value
            continue
        m = _BLOCK_RE.match(k)
        if not m or m.group(2) not in _HF_BLOCK_KEYS or len(m.group(1)) > 6:
            unknown += 1
            continue
        layer, ours, kind = int(m.group(1)), _HF_BLOCK_KEYS[m.group(2)], m.group(3)
        if ours in ("attn.q", "attn.k", "attn.v"):
            qkv.setdefault((layer, kind), {})[ours[-1]] = value
        else:
            out[f"blocks.{layer}.{ours}.{kind}"] = value
    if unknown:  # counted, not named: the names are the file's
        raise CheckpointError("unknown_hf_weight", N_("{n} weight(s) are not part of a Hugging Face ViT."), n=unknown)
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError("incomplete_qkv", N_("Layer {layer} is missing part of its query/key/value {kind}."),
                                  layer=layer, kind=kind)
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _invalid_hf(problem: Message) -> CheckpointError:
    return CheckpointError("invalid_hf_config", N_("The Hugging Face config is not valid: {problems}."),
                           problems=problem)


def _hf_labels(id2label: Any) -> dict[int, str]:
    """A config's id2label as {class number: name}; refused (without its contents) unless it is one."""
    ok = isinstance(id2label, Mapping)
    labels: dict[int, str] = {}
    for k, v in (id2label.items() if ok else ()):
        key = k if isinstance(k, int) and not isinstance(k, bool) else (
            int(k) if isinstance(k, str) and k.isascii() and k.isdigit() and len(k) <= 9 else None)
        if key is None or not isinstance(v, str):
            ok = False
            break
        labels[key] = v
    if not ok:
        raise _invalid_hf(Message(N_("{name} must map class numbers to names"), name="id2label"))
    return labels


def config_from_hf(hf: Any, state: Mapping[str, torch.Tensor] | None = None, **limits: int) -> ViTConfig:
    """A ``ViTConfig`` from a transformers ``ViTConfig`` or its config.json dict (checked: see ``check_config``)."""
    get = (lambda k, d=None: hf.get(k, d)) if isinstance(hf, Mapping) else (lambda k, d=None: getattr(hf, k, d))
    if get("hidden_act", "gelu") != "gelu":
        raise CheckpointError("unsupported_activation",
                              N_("Only the exact GELU activation is supported; this checkpoint uses another one."))
    keys = {k[4:] if k.startswith("vit.") else k for k in (state or {})}
    has_classifier = "classifier.weight" in keys if state is not None else bool(get("id2label"))
    if state is not None and has_classifier:
        weight = state[next(k for k in state if k.endswith("classifier.weight"))]
        num_classes = int(weight.shape[0]) if weight.dim() == 2 else -1
    else:
        num_classes = len(_hf_labels(get("id2label"))) if has_classifier else 0
    has_pooler = "pooler.dense.weight" in keys
    problems: list[Message] = []

    def number(key: str, default: Any, whole: bool = True, sized: bool = False) -> Any:
        x = get(key, default)
        if sized and isinstance(x, (list, tuple)) and x:
            x = x[0]
        if not _number(x) or (whole and x != int(x)):
            problems.append(Message(N_("{name} must be a number") if not whole else N_("{name} must be a whole number"),
                                    name=key))
            return default
        return int(x) if whole else float(x)

    values = dict(
        image_size=number("image_size", 224, sized=True), patch_size=number("patch_size", 16, sized=True),
        in_channels=number("num_channels", 3), dim=number("hidden_size", 768), depth=number("num_hidden_layers", 12),
        heads=number("num_attention_heads", 12), mlp_dim=number("intermediate_size", 3072), num_classes=num_classes,
        norm_eps=number("layer_norm_eps", 1e-12, whole=False), qkv_bias=get("qkv_bias", True),
        dropout=number("hidden_dropout_prob", 0.0, whole=False),
        attention_dropout=number("attention_probs_dropout_prob", 0.0, whole=False),
        representation_size=(number("pooler_output_size", None) if get("pooler_output_size", None) is not None
                             else number("hidden_size", 768)) if has_pooler and not has_classifier else None,
    )
    if not isinstance(values["qkv_bias"], bool):
        problems.append(Message(N_("{name} must be true or false"), name="qkv_bias"))
    if problems:
        raise _invalid_hf(Joined(problems, "; "))
    return check_config(values, **limits)


def from_hf(model_or_state_dict: Any, config: Any = None, **limits: int) -> VisionTransformer:
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
    cfg, state = _hf_config_and_state(state, config, budgets(**limits))
    with MODEL_INIT_LOCK:
        model = VisionTransformer(cfg)
    load_state_checked(model, convert_hf_state_dict(state))
    if id2label and cfg.num_classes:
        labels = _hf_labels(id2label)
        model.class_names = [labels.get(i, f"class {i}") for i in range(cfg.num_classes)]
    return model.eval()


def _hf_config_and_state(state: Mapping[str, torch.Tensor], config: Any, b: Budgets) -> tuple[ViTConfig, dict]:
    """The config (checked within the budgets) and the state without the pooler a classifier ignores."""
    keys = {k[4:] if k.startswith("vit.") else k for k in state}
    if "classifier.weight" in keys:  # HF's classification model ignores the pooler
        state = {k: v for k, v in state.items() if "pooler." not in k}
    cfg = config if isinstance(config, ViTConfig) else config_from_hf(config, state, **vars(b))
    return check_config(cfg.to_dict(), **vars(b)), dict(state)


def _plan_hf(path: Path, b: Budgets) -> tuple[Any, ViTConfig, dict, Path, dict]:
    """Everything about a Hugging Face directory that can be checked before the model is built:
    config.json, preprocessor_config.json, and model.safetensors's header (as meta tensors, which have
    shapes but no memory) converted and compared with the model the config describes."""
    config_path = path / "config.json"
    weights = path / "model.safetensors"
    if not config_path.is_file():
        raise CheckpointError("not_hf_directory",
                              N_("{dir}: no config.json; this is not a Hugging Face model directory."), dir=path.name)
    if not weights.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                "pickle_refused",
                N_("{dir}: no model.safetensors. It has {file}, a pickle file, which is never opened here; "
                   "re-save with safe_serialization=True."),
                dir=path.name, file=pickles[0])
        raise CheckpointError("weights_missing", N_("{dir}: no model.safetensors."), dir=path.name)
    hf_config = read_json_object(config_path, f"{path.name}/config.json", b)
    if hf_config.get("model_type", "vit") not in ("vit", "deit", "dino"):
        raise CheckpointError("unsupported_model_type",
                              N_("{dir} does not hold a ViT-style model; only vit, deit and dino models are supported."),
                              dir=path.name)
    size = _weights_file(weights, b)
    header = read_header(_file_reader(weights), size, weights.name, b)
    meta_state = {k: torch.empty(shape, dtype=dtype, device="meta") for k, (dtype, shape) in header.items()}
    cfg, meta_state = _hf_config_and_state(meta_state, hf_config, b)
    converted = convert_hf_state_dict(meta_state)
    _check_names_and_shapes(expected_shapes(cfg), {k: (v.dtype, tuple(v.shape)) for k, v in converted.items()})
    if hf_config.get("id2label") and cfg.num_classes:
        _hf_labels(hf_config["id2label"])
    meta: dict[str, Any] = {"source": "huggingface", "mean": [0.5] * cfg.in_channels, "std": [0.5] * cfg.in_channels}
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        name = f"{path.name}/preprocessor_config.json"
        p = read_json_object(pre, name, b)
        meta["mean"], meta["std"] = p.get("image_mean", meta["mean"]), p.get("image_std", meta["std"])
        _check_sidecar(meta, cfg, name)
    meta["resize"] = "squash"  # HF's ViTImageProcessor resizes straight to image_size × image_size
    return hf_config, cfg, meta, weights, header


@guarded
def load_hf_directory(path: str | Path, device: torch.device | str = "cpu", max_bytes: int | None = None,
                      **limits: int) -> VisionTransformer:
    """Load a directory written by ``save_pretrained`` (config.json + model.safetensors), offline."""
    b = budgets(max_bytes, **limits)
    hf_config, _cfg, meta, weights, header = _plan_hf(Path(path), b)
    model = from_hf(_tensors_from_file(weights, header), hf_config, **vars(b))
    model.meta = meta
    return prepare_for_inference(model, device)


@guarded
def inspect_checkpoint(path: str | Path, max_bytes: int | None = None, **limits: int) -> ViTConfig:
    """Check a project checkpoint (either file of the pair) or a Hugging Face directory as far as can be
    done without building the model or reading its weights: files, JSON, config, metadata, budgets, and
    the weights' header against the model. Returns the config; raises ``CheckpointError``."""
    b = budgets(max_bytes, **limits)
    path = Path(path)
    if path.is_dir():
        return _plan_hf(path, b)[1]
    return _plan_project(path, b)[0]
