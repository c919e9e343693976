"""Evaluate a model on its held-out set: ``python -m vit.evaluate vit-tiny-fashion [--sample N]``.

Prints top-1 accuracy on the dataset recorded in the model's JSON (Fashion-MNIST's official 10k
test set, or the generated held-out shapes), and how 2-D its learned position embeddings are:
the neighbour score and the Spearman correlation of similarity with grid distance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from .analysis import neighbour_score, position_similarity, similarity_distance_spearman
from .data import load_dataset
from .device import choose_device
from .loading import load_model
from .model import VisionTransformer
from .train import evaluate as accuracy
from .train import to_tensor


def position_structure(model: VisionTransformer) -> dict[str, float]:
    grid = (model.config.grid_size, model.config.grid_size)
    with torch.inference_mode():
        sim = position_similarity(model.position_embeddings_for(grid).detach().cpu())
    return {"neighbour_score": neighbour_score(sim, grid), "spearman_similarity_distance": similarity_distance_spearman(sim, grid)}


def evaluate_model(name_or_path: str, sample: int | None = None, data: str | None = None, device: str | None = None) -> dict:
    """Accuracy on the model's held-out set (the first ``sample`` items if given) and position scores."""
    dev = choose_device(device)
    model = load_model(name_or_path, dev)
    meta = model.meta
    dataset = meta.get("dataset")
    if dataset is None:
        raise SystemExit(f"{name_or_path}: its JSON does not say which dataset it was trained on")
    kw = {"n_test": meta.get("test_set_size", 4000)} if dataset == "shapes" else {}
    test = load_dataset(dataset, "test", data, **kw)
    x, y = to_tensor(test, meta["mean"], meta["std"])
    if sample:
        x, y = x[:sample], y[:sample]
    t0 = time.time()
    acc = accuracy(model, x, y, dev)
    return {"model": str(name_or_path), "dataset": dataset, "test_images": len(x), "test_accuracy": acc,
            "recorded_test_accuracy": meta.get("test_accuracy"), "seconds": round(time.time() - t0, 2),
            "device": str(dev), **position_structure(model)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vit.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="bundled model names or checkpoint paths")
    p.add_argument("--sample", type=int, help="evaluate on the first N test images only")
    p.add_argument("--data", help="dataset location, if not the default")
    p.add_argument("--device")
    args = p.parse_args(argv)
    for name in args.models:
        result = evaluate_model(name, args.sample, args.data, args.device)
        print(json.dumps(result), flush=True)
        print(f"{name}: {result['test_accuracy']:.2%} on {result['test_images']} {result['dataset']} test images; "
              f"neighbour score {result['neighbour_score']:.2f}; Spearman {result['spearman_similarity_distance']:+.2f}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
