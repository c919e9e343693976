"""Evaluate a model: ``python -m vit.evaluate vit-tiny-symbols [--sample N]``.

For each model it prints, as one JSON line and a readable summary:

- top-1 accuracy on its held-out test set (Fashion-MNIST's official 10k, or the generated shapes or
  symbols), and for the symbols also on the **shifted** test set (held-out typefaces, pen, backgrounds);
- how 2-D the learned position embeddings are: the neighbour score against its chance level, and
  the Spearman correlation of similarity with grid distance;
- first-block mean attention distances: the most local head against the most global one, and the
  distance a head would have under uniform attention;
- the pointing game: how often the [class] attention rollout peaks on a patch that holds the object
  (the generator's ink mask; for Fashion-MNIST the garment's non-black pixels), against chance;
- filter-PCA structure against the untrained twin;
- how often the "I don't know" rule says *known*: on held-out in-domain images and on out-of-domain
  images (the app's own sample photos and the other datasets).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .analysis import attention_distances, attention_rollout, neighbour_score, position_similarity, similarity_distance_spearman
from .calibrate import logits_of_arrays
from .claims import filter_claim, head_claim, neighbour_chance
from .data import ArrayDataset, load_dataset
from .device import choose_device
from .loading import load_model, preprocess, untrained_like
from .model import VisionTransformer
from .predict import decide_known
from .symbols import NOTHING
from .train import _autocast, to_tensor

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
PHOTO_SUFFIXES = (".jpg", ".jpeg")
OOD_SAMPLE = 1000


def position_structure(model: VisionTransformer) -> dict[str, float]:
    grid = (model.config.grid_size, model.config.grid_size)
    with torch.inference_mode():
        sim = position_similarity(model.position_embeddings_for(grid).detach().cpu())
    return {"neighbour_score": neighbour_score(sim, grid), "neighbour_chance": neighbour_chance(grid),
            "spearman_similarity_distance": similarity_distance_spearman(sim, grid)}


def object_masks(ds: ArrayDataset) -> np.ndarray | None:
    """Where the object is: the generator's masks, or for Fashion-MNIST the garment's non-black pixels."""
    if ds.masks is not None:
        return ds.masks
    if ds.name == "fashion-mnist":
        return ds.images[..., 0] >= 26  # 10% of full scale: the items lie on pure black
    return None


@torch.inference_mode()
def attention_figures(model: VisionTransformer, x: torch.Tensor, masks: np.ndarray | None, batch_size: int = 256) -> dict:
    """First-block head distances (mean over images) and the pointing game on (x, masks)."""
    cfg = model.config
    grid, p = (cfg.grid_size, cfg.grid_size), cfg.patch_size
    dist_sum, hits, chance, count = torch.zeros(cfg.heads, dtype=torch.float64), 0, 0.0, 0
    device = next(model.parameters()).device
    for i in range(0, len(x), batch_size):
        t = model.trace(x[i:i + batch_size].to(device))
        attn = [a.float().cpu() for a in t.attentions]
        dist_sum += attention_distances(attn[:1], grid, p)[0].double().sum(0)
        count += len(attn[0])
        if masks is not None:
            roll = attention_rollout(attn)[:, 0, 1:]                    # (B, N): [class] flow to each patch
            m = torch.from_numpy(masks[i:i + batch_size])
            ink = m.reshape(len(m), grid[0], p, grid[1], p).any(4).any(2).reshape(len(m), -1)  # (B, N)
            hits += int(ink[torch.arange(len(m)), roll.argmax(-1)].sum())
            chance += float(ink.float().mean(-1).sum())
    distances = (dist_sum / max(1, count)).numpy()
    claim = head_claim(distances[None], grid, p)
    out = {"first_block_distances_px": [round(float(d), 2) for d in distances],
           "most_local_head": claim.local_head + 1, "most_local_distance_px": claim.local_distance,
           "most_global_head": claim.global_head + 1, "most_global_distance_px": claim.global_distance,
           "local_global_ratio": claim.ratio, "uniform_attention_distance_px": claim.uniform_distance}
    if masks is not None:
        out.update({"pointing_game": hits / max(1, len(x)), "pointing_chance": chance / max(1, len(x)),
                    "pointing_images": len(x)})
    return out


def photo_images() -> list[Image.Image]:
    """The app's own sample photos (never used for training or calibration)."""
    out = []
    for path in sorted(SAMPLES_DIR.glob("*")):
        if path.suffix.lower() in PHOTO_SUFFIXES:
            with Image.open(path) as im:
                out.append(im.convert("RGB"))
    return out


@torch.inference_mode()
def batched_logits(model: VisionTransformer, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """(N, classes) logits on the CPU, computed in batches, as training's accuracy check computes them."""
    out = []
    for i in range(0, len(x), batch_size):
        with _autocast(device):
            out.append(model(x[i:i + batch_size].to(device)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, model.config.num_classes)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return int((logits.argmax(-1) == y).sum()) / len(y) if len(y) else 0.0  # exact: a count over a count


def known_rate(model: VisionTransformer, logits: torch.Tensor) -> float | None:
    rule = model.meta.get("known_rule")
    if not rule or not len(logits):
        return None
    return float(decide_known(logits, rule, list(model.class_names))[0].float().mean())


def out_of_domain(model: VisionTransformer, dataset: str) -> dict[str, dict]:
    """Known-rate on each out-of-domain set the model was not trained on."""
    result = {}
    photos = photo_images()
    if photos:
        dev = next(model.parameters()).device
        with torch.inference_mode():
            logits = model(torch.cat([preprocess(im, model) for im in photos]).to(dev)).float().cpu()
        names = list(model.class_names)
        result["sample photos"] = {"images": len(photos), "known_rate": known_rate(model, logits),
                                   "top1": [names[i] for i in logits.argmax(-1).tolist()]}
    others = {"fashion-mnist": lambda: load_dataset("fashion-mnist", "test"),
              "shapes": lambda: load_dataset("shapes", "test", n_test=OOD_SAMPLE),
              "symbols": lambda: load_dataset("symbols", "test", n=2 * OOD_SAMPLE)}
    for name, load in others.items():
        if name == dataset:
            continue
        try:
            ds = load()
        except (FileNotFoundError, OSError) as e:
            result[name] = {"error": str(e)}
            continue
        images = ds.images
        if name == "symbols":  # only images with a symbol in them: the nothing scenes are not what we ask about
            images = images[ds.labels != ds.class_names.index(NOTHING)]
        images = images[:OOD_SAMPLE]
        result[name] = {"images": len(images), "known_rate": known_rate(model, logits_of_arrays(model, images))}
    return result


def evaluate_model(name_or_path: str, sample: int | None = None, data: str | None = None, device: str | None = None,
                   full: bool = True) -> dict:
    """Accuracy on the model's held-out set (the first ``sample`` items if given) and position scores;
    with ``full``, every other figure in the module docstring too."""
    dev = choose_device(device)
    model = load_model(name_or_path, dev)
    meta = model.meta
    dataset = meta.get("dataset")
    if dataset is None:
        raise SystemExit(f"{name_or_path}: its JSON does not say which dataset it was trained on")
    if dataset == "symbols":
        test = load_dataset("symbols", "test", n=meta.get("test_set_size", 6000))
    else:
        kw = {"n_test": meta.get("test_set_size", 4000)} if dataset == "shapes" else {}
        test = load_dataset(dataset, "test", data, **kw)
    x, y = to_tensor(test, meta["mean"], meta["std"])
    masks = object_masks(test)
    if dataset == "fashion-mnist" and meta.get("known_rule"):
        # the first half of this test set calibrated the known rule: report on the second half only
        half = len(x) // 2
        x_known, y_known = x[half:], y[half:]
    else:
        x_known, y_known = x, y
    known_is_test = x_known is x
    if sample:
        x, y = x[:sample], y[:sample]
        masks = masks[:sample] if masks is not None else None
        x_known, y_known = x_known[:sample], y_known[:sample]
    t0 = time.time()
    logits = batched_logits(model, x, dev)
    result = {"model": str(name_or_path), "dataset": dataset, "test_images": len(x), "test_accuracy": accuracy(logits, y),
              "recorded_test_accuracy": meta.get("test_accuracy"), "device": str(dev), **position_structure(model)}
    if not full:
        result["seconds"] = round(time.time() - t0, 2)
        return result
    names = list(model.class_names)
    if dataset == "symbols":
        shifted = load_dataset("symbols", "shifted", n=sample or 3000)
        xs, ys = to_tensor(shifted, meta["mean"], meta["std"])
        logits_shifted = batched_logits(model, xs, dev)
        result.update({"shifted_images": len(xs), "shifted_accuracy": accuracy(logits_shifted, ys)})
    symbol = (y != names.index(NOTHING)) if NOTHING in names else torch.ones(len(y), dtype=torch.bool)
    n_att = min(int(symbol.sum()), 2000)
    idx = torch.nonzero(symbol).flatten()[:n_att]
    result.update(attention_figures(model, x[idx], masks[idx.numpy()] if masks is not None else None))
    fc = filter_claim(model.patch_embed.weight.detach().cpu(), untrained_like(model).patch_embed.weight.detach().cpu())
    result.update({"filter_pca_k": fc.k, "filter_pca_share": fc.trained_share, "filter_pca_share_untrained": fc.untrained_share})
    if meta.get("known_rule"):
        known_symbol = (y_known != names.index(NOTHING)) if NOTHING in names else torch.ones(len(y_known), dtype=torch.bool)
        logits_known = logits if known_is_test else batched_logits(model, x_known, dev)
        result["known_rule"] = {k: v for k, v in meta["known_rule"].items() if k != "calibration"}
        result["known_held_out"] = known_rate(model, logits_known[known_symbol])
        result["known_held_out_images"] = int(known_symbol.sum())
        if dataset == "symbols":
            result["known_shifted"] = known_rate(model, logits_shifted[ys != names.index(NOTHING)])
        result["out_of_domain"] = out_of_domain(model, dataset)
    result["seconds"] = round(time.time() - t0, 2)
    return result


def summary(name: str, r: dict) -> str:
    lines = [f"{name}: {r['test_accuracy']:.2%} on {r['test_images']} {r['dataset']} test images"]
    if "shifted_accuracy" in r:
        lines.append(f"  shifted test set: {r['shifted_accuracy']:.2%} on {r['shifted_images']} images")
    lines.append(f"  position: neighbour score {r['neighbour_score']:.3f} (chance {r['neighbour_chance']:.3f}); "
                 f"Spearman {r['spearman_similarity_distance']:+.3f}")
    if "most_local_head" in r:
        lines.append(f"  first block: most local head {r['most_local_head']} at {r['most_local_distance_px']:.1f} px, most global "
                     f"head {r['most_global_head']} at {r['most_global_distance_px']:.1f} px (ratio {r['local_global_ratio']:.2f}); "
                     f"uniform attention {r['uniform_attention_distance_px']:.1f} px")
    if "pointing_game" in r:
        lines.append(f"  pointing game: {r['pointing_game']:.3f} (chance {r['pointing_chance']:.3f}) on {r['pointing_images']} images")
    if "filter_pca_share" in r:
        lines.append(f"  filters: top {r['filter_pca_k']} principal components explain {r['filter_pca_share']:.1%} of the "
                     f"variance (untrained twin {r['filter_pca_share_untrained']:.1%})")
    if "known_held_out" in r:
        lines.append(f"  known: {r['known_held_out']:.1%} of held-out {r['dataset']}"
                     + (f", {r['known_shifted']:.1%} of shifted" if "known_shifted" in r else ""))
        for k, v in r["out_of_domain"].items():
            rate = v.get("known_rate")
            lines.append(f"  known on {k}: " + (f"{rate:.1%} of {v['images']}" if rate is not None else v.get("error", "no rule"))
                         + (f" (top-1: {', '.join(v['top1'])})" if "top1" in v else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vit.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="bundled model names or checkpoint paths")
    p.add_argument("--sample", type=int, help="evaluate on the first N test images only")
    p.add_argument("--data", help="dataset location, if not the default")
    p.add_argument("--device")
    p.add_argument("--accuracy-only", action="store_true", help="only accuracy and position scores (fast)")
    args = p.parse_args(argv)
    for name in args.models:
        result = evaluate_model(name, args.sample, args.data, args.device, full=not args.accuracy_only)
        print(json.dumps(result), flush=True)
        print(summary(name, result), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
