"""Find and load models (bundled, project checkpoints, Hugging Face directories) and prepare images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import Message
from .i18n import N_
from .device import choose_device
from .model import VisionTransformer
from .weights import (MODEL_INIT_LOCK, PICKLE_SUFFIXES, CheckpointError, guarded, inspect_checkpoint, load_checkpoint,
                      load_hf_directory, prepare_for_inference, refuse_pickle)

MODELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
MAX_FOLDER_ENTRIES = 500  # entries of a models folder looked at; a folder with more is read only this far


def available_models() -> list[str]:
    """Names of the bundled models in assets/models (each a .safetensors + .json pair).

    Training's resume state (NAME.resume.safetensors + NAME.resume.json, written there while a
    model trains) is not a model and is left out.
    """
    return sorted(p.stem for p in MODELS_DIR.glob("*.safetensors")
                  if p.with_suffix(".json").is_file() and not p.stem.endswith(".resume"))


@guarded
def load_model(name_or_path: str | Path, device: torch.device | str | None = None, **limits: int) -> VisionTransformer:
    """A bundled model by name, a project checkpoint path, or a Hugging Face ``save_pretrained`` dir.

    ``limits`` replace the budgets of :mod:`vit.weights` (``max_parameters=...``, ``max_bytes=...``).
    Every failure is a ``CheckpointError``.
    """
    device = device if device is not None else choose_device()
    name = str(name_or_path)
    if name in available_models():
        model = load_checkpoint(MODELS_DIR / name, device, **limits)
        model.meta.setdefault("name", name)
        return model
    try:
        path = Path(name_or_path).expanduser()
    except RuntimeError:  # "~nosuchuser/...": no such home directory
        path = Path(name_or_path)
    refuse_pickle(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            model = load_hf_directory(path, device, **limits)
        else:
            found = sorted(path.glob("*.safetensors"))
            if len(found) != 1:
                raise CheckpointError(
                    "no_model_in_directory",
                    N_("{dir}: expected config.json (Hugging Face) or exactly one .safetensors file."), dir=path.name)
            model = load_checkpoint(found[0], device, **limits)
    elif path.with_suffix(".safetensors").is_file() or path.suffix in (".safetensors", ".json"):
        model = load_checkpoint(path, device, **limits)
    else:
        raise CheckpointError("model_not_found", N_("No bundled model or checkpoint called {name!r}. Bundled: {bundled}."),
                              name=name, bundled=", ".join(available_models()) or Message(N_("none")))
    model.meta.setdefault("name", path.stem if path.is_file() else path.name)
    return model


def scan_checkpoints(folder: str | Path, **limits: int) -> tuple[dict[str, Path], list[tuple[str, CheckpointError]]]:
    """The checkpoints in ``folder`` (not its subfolders' subfolders), each checked by
    :func:`vit.weights.inspect_checkpoint` (no model is built, no weights are read).

    Returns ``({name: path}, [(entry, problem), ...])``: project checkpoints ``NAME.safetensors`` +
    ``NAME.json`` are called NAME; a Hugging Face directory (a subfolder with config.json and
    model.safetensors) is called by the subfolder's name. Pickle files, a half of a pair, or a subfolder
    that is no model are problems; hidden entries, training's resume state and other files are ignored.
    """
    folder = Path(folder)
    found: dict[str, Path] = {}
    problems: list[tuple[str, CheckpointError]] = []
    try:
        entries = sorted(folder.iterdir())
    except Exception as e:  # noqa: BLE001 - a missing or unreadable folder is a problem, not a crash
        return found, [(folder.name or str(folder), _as_error(e, folder))]
    if len(entries) > MAX_FOLDER_ENTRIES:
        problems.append((folder.name, CheckpointError(
            "folder_too_large", N_("The folder holds more than {limit} entries; only the first {limit} are read."),
            limit=MAX_FOLDER_ENTRIES)))
        entries = entries[:MAX_FOLDER_ENTRIES]
    stems: dict[str, Path] = {}
    for entry in entries:
        if entry.name.startswith(".") or entry.stem.endswith(".resume"):
            continue
        try:
            if entry.is_dir():
                candidate: Path | None = entry
            elif entry.suffix.lower() in PICKLE_SUFFIXES:
                refuse_pickle(entry)
                candidate = None
            elif entry.suffix in (".safetensors", ".json"):
                candidate = None
                stems.setdefault(entry.stem, entry)
            else:
                candidate = None
        except CheckpointError as e:
            problems.append((entry.name, e))
            continue
        except Exception as e:  # noqa: BLE001
            problems.append((entry.name, _as_error(e, entry)))
            continue
        if candidate is not None:
            name = entry.name
            if not ((entry / "config.json").is_file() or (entry / "model.safetensors").is_file()):
                problems.append((name, CheckpointError(
                    "not_a_model_folder", N_("{dir} is a folder without config.json and model.safetensors, so it is "
                                             "not a Hugging Face model folder."), dir=name)))
                continue
            _check_into(found, problems, name, entry, **limits)
    for stem, entry in stems.items():
        if stem in found:
            problems.append((entry.name, CheckpointError(
                "duplicate_name", N_("{name}: a model folder has the same name; only one of them is offered."),
                name=stem)))
            continue
        _check_into(found, problems, stem, entry.with_suffix(".safetensors"), **limits)
    return dict(sorted(found.items())), problems


def _check_into(found: dict, problems: list, name: str, path: Path, **limits: int) -> None:
    try:
        inspect_checkpoint(path, **limits)
    except CheckpointError as e:
        problems.append((name, e))
    else:
        found[name] = path


def _as_error(e: BaseException, path: Path) -> CheckpointError:
    if isinstance(e, CheckpointError):
        return e
    reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
    return CheckpointError("unreadable", N_("{name} could not be read ({reason})."), name=path.name, reason=reason)


def untrained_like(model: VisionTransformer, seed: int = 0) -> VisionTransformer:
    """The same architecture and metadata with fresh random weights, for contrast with training.

    The weights depend on ``seed`` only: the global random state is used under a lock (a server
    builds models from many threads) and restored afterwards, so callers' random streams are untouched.
    """
    with MODEL_INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = VisionTransformer(model.config)
    fresh.class_names = model.class_names
    fresh.meta = {**model.meta, "name": f"{model.meta.get('name', 'model')} (untrained)", "untrained": True}
    return prepare_for_inference(fresh, next(model.parameters()).device)


def border_colour(image: Image.Image) -> int | tuple[int, ...]:
    """The median colour of the image's outermost rows and columns (what padding should continue)."""
    a = np.asarray(image)
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).reshape(-1, *a.shape[2:])
    med = np.median(edge, axis=0).round().astype(int)
    return int(med) if med.ndim == 0 else tuple(int(v) for v in med)


def fit_image(image: Image.Image, size: int, fit: str = "crop") -> Image.Image:
    """Make a square ``size``×``size`` image: 'crop' the centre, 'pad', or 'squash'.

    'pad' keeps the whole image (nothing at its edges is cut off, e.g. a drawing held up to a 4:3
    camera) and fills the rest with the median colour of its border, so paper stays paper.
    """
    if fit == "crop":
        return ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)
    if fit == "pad":
        return ImageOps.pad(image, (size, size), method=Image.Resampling.BICUBIC, color=border_colour(image))
    if fit == "squash":
        return image.resize((size, size), Image.Resampling.BICUBIC)
    raise ValueError(f"fit must be 'crop', 'pad' or 'squash', not {fit!r}")


def fit_notes(size: tuple[int, int], target: int, fit: str) -> list[tuple[str, dict]]:
    """What fitting a ``size`` (w, h) image into a ``target``×``target`` input does that a user should know:
    (template, params) pairs, English templates marked for translation.

    - an image smaller than the input is enlarged, and its pixels become blocks (or blur);
    - a very elongated image loses most of itself to a centre crop, or becomes a thin strip when padded;
    - squashing a very elongated image distorts it.
    """
    w, h = size
    notes: list[tuple[str, dict]] = []
    long, short = max(w, h, 1), max(1, min(w, h))
    scale = target / (long if fit == "pad" else short)  # how much the image's pixels grow
    if scale >= 2:
        notes.append((N_("This image is only {w}×{h} px, smaller than the model's {s}×{s} input, so it was "
                         "enlarged about {factor}× and each of its pixels became a blur several pixels wide."),
                      {"w": w, "h": h, "s": target, "factor": round(scale)}))
    ratio = long / short
    if fit == "crop" and ratio >= 2:
        notes.append((N_("Cropping the centre keeps only {keep}% of this {w}×{h} image; choose “Pad to a square” "
                         "to see all of it."), {"keep": round(100 * short / long), "w": w, "h": h}))
    elif fit == "pad" and ratio >= 2:
        rows = max(0, round(target * short / long))
        notes.append((N_("Padded to a square, this {w}×{h} image fills only {rows} of the model's {s} pixel "
                         "rows or columns; the rest is padding."), {"w": w, "h": h, "rows": rows, "s": target}))
    elif fit == "squash" and ratio >= 2:
        notes.append((N_("Squashing this {w}×{h} image to a square stretches it {ratio}× in one direction."),
                      {"w": w, "h": h, "ratio": f"{ratio:.1f}"}))
    return notes


def preprocess(image: Image.Image, model: VisionTransformer, fit: str | None = None, size: int | None = None) -> torch.Tensor:
    """A (1, C, H, W) float tensor prepared as in training: fit to size, channels, normalisation."""
    cfg = model.config
    size = size or cfg.image_size
    fit = fit or model.meta.get("resize", "crop")
    image = image.convert("L" if cfg.in_channels == 1 else "RGB")
    image = fit_image(image, size, fit)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    if x.shape[0] != cfg.in_channels:
        raise CheckpointError("channel_mismatch", N_("model expects {expected} channels, image has {got}"),
                              expected=cfg.in_channels, got=int(x.shape[0]))
    mean = torch.tensor(model.meta.get("mean", [0.5] * cfg.in_channels), dtype=torch.float32)[:, None, None]
    std = torch.tensor(model.meta.get("std", [0.5] * cfg.in_channels), dtype=torch.float32)[:, None, None]
    return ((x - mean) / std)[None]


def denormalize(x: torch.Tensor, model: VisionTransformer) -> np.ndarray:
    """Undo the normalisation of a (1, C, H, W) tensor: an (H, W, C) float array in [0, 1]."""
    c = model.config.in_channels
    mean = torch.tensor(model.meta.get("mean", [0.5] * c))[:, None, None]
    std = torch.tensor(model.meta.get("std", [0.5] * c))[:, None, None]
    return (x[0].detach().float().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
