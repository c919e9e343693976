"""Calibrate a model's "I don't know" rule: ``python -m vit.calibrate vit-tiny-symbols``.

Runs the model on held-out in-domain images and on out-of-domain calibration images, chooses the
score and threshold with :func:`vit.predict.calibrate_known_rule`, and writes the rule into the
model's JSON as ``known_rule``. The images used here are never the ones ``python -m vit.evaluate``
reports on:

- symbols: in-domain = the validation split's symbols; out-of-domain = its ``nothing`` scenes;
- fashion-mnist: in-domain = the first half of the official test set (the evaluation uses the
  second half); out-of-domain = generated photo-like clutter (:func:`vit.symbols.make_clutter`);
- shapes: in-domain = a validation stream of shapes; out-of-domain = generated clutter.

The app's sample photos, and the other datasets, are kept for the evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import ArrayDataset, load_dataset
from .loading import MODELS_DIR, available_models, load_model, preprocess
from .model import VisionTransformer
from .predict import calibrate_known_rule
from .symbols import NOTHING, make_clutter

KEEP = 0.97  # share of held-out in-domain images the rule keeps known


@torch.no_grad()
def logits_of_arrays(model: VisionTransformer, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """Logits for uint8 (N, H, W, C) images, each prepared exactly as the app prepares an image."""
    out = []
    for i in range(0, len(images), batch_size):
        xs = [preprocess(Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a), model) for a in images[i:i + batch_size]]
        out.append(model(torch.cat(xs).to(next(model.parameters()).device)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, model.config.num_classes)


def calibration_sets(model: VisionTransformer) -> tuple[ArrayDataset, np.ndarray, str]:
    """(in-domain held-out set, out-of-domain images, a description) for the model's dataset."""
    dataset = model.meta.get("dataset")
    if dataset == "symbols":
        val = load_dataset("symbols", "val", n=model.meta.get("val_set_size", 3000))
        nothing = val.class_names.index(NOTHING)
        keep = val.labels != nothing
        inside = ArrayDataset(val.images[keep], val.labels[keep], val.class_names, "symbols-val")
        return inside, val.images[~keep], "symbols validation split: symbols in, its 'nothing' scenes out"
    if dataset == "fashion-mnist":
        test = load_dataset("fashion-mnist", "test")
        half = len(test) // 2
        inside = ArrayDataset(test.images[:half], test.labels[:half], test.class_names, "fashion-test-first-half")
        return inside, make_clutter(1000, seed=1, image_size=64), "first half of the Fashion-MNIST test set in; 1000 generated clutter scenes out"
    if dataset == "shapes":
        inside = load_dataset("shapes", "val", n_test=2000)
        return inside, make_clutter(1000, seed=1, image_size=64), "2000 shapes from a validation stream in; 1000 generated clutter scenes out"
    raise SystemExit(f"no calibration data for dataset {dataset!r}")


def calibrate(name: str) -> dict:
    model = load_model(name, "cpu")
    inside, outside, description = calibration_sets(model)
    names = list(model.class_names)
    nothing = NOTHING if NOTHING in names else None
    rule = calibrate_known_rule(logits_of_arrays(model, inside.images), logits_of_arrays(model, outside), names,
                                keep=KEEP, nothing_class=nothing, labels_in=torch.from_numpy(inside.labels),
                                description=description)
    sidecar = (MODELS_DIR / f"{name}.json") if name in available_models() else Path(name).with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["known_rule"] = rule
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    return rule


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vit.calibrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="bundled model names or checkpoint paths (their JSON is updated)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name in args.models:
        rule = calibrate(name)
        print(json.dumps({"model": name, **rule}), flush=True)
        by = rule["calibration"]["by_score"]
        print(f"{name}: {rule['score']} ≥ {rule['threshold']:.4g}; known in-domain "
              f"{by[rule['score']]['known_in']:.1%}, out-of-domain {by[rule['score']]['known_out']:.1%}", file=sys.stderr)


if __name__ == "__main__":
    main()
