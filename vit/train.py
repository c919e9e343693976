"""Train a small ViT: ``python -m vit.train --dataset shapes --preset tiny-shapes --out assets/models/NAME``.

Warm-up then cosine learning rate, label smoothing, AdamW, data augmentation suited to the data,
AMP (bf16) on cuda, a progress bar, evaluation on the held-out set every epoch, and resume;
``--snapshots`` also saves the model at chosen moments of training (see :mod:`vit.snapshots`).
The result is NAME.safetensors plus NAME.json with the config, class names, mean/std, the curve,
the final test accuracy, wall time, device and the exact command.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .analysis import neighbour_score, position_similarity, similarity_distance_spearman
from .config import PRESETS, ViTConfig
from .data import ArrayDataset, augment_batch, dataset_stats, load_dataset
from .device import choose_device
from .model import VisionTransformer
from .snapshots import SnapshotRecorder, snapshot_steps
from .weights import save_model

FLIP_OK = {"fashion-mnist": True, "cifar10": True, "shapes": False, "folder": False, "symbols": False}
# Sets with a validation split are evaluated on it every epoch; their test split stays untouched until the end.
HAS_VAL = {"symbols"}


def to_tensor(ds: ArrayDataset, mean: list[float], std: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, H, W, C) → normalised float (N, C, H, W), and labels."""
    x = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    return x.contiguous(), torch.from_numpy(ds.labels).long()


def lr_at(step: int, total: int, warmup: int, base: float, floor: float = 0.01) -> float:
    """Linear warm-up to ``base``, then cosine decay to ``floor·base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def evaluate(model: VisionTransformer, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on (x, y)."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        with _autocast(device):
            correct += (model(xb).argmax(-1).cpu() == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return correct / max(1, len(x))


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def position_scores(model: VisionTransformer) -> dict[str, float]:
    """How 2-D the learned position embeddings are: neighbour score and similarity–distance Spearman."""
    grid = (model.config.grid_size, model.config.grid_size)
    sim = position_similarity(model.position_embeddings_for(grid).detach().cpu())
    return {"neighbour_score": neighbour_score(sim, grid), "spearman_similarity_distance": similarity_distance_spearman(sim, grid)}


def build_config(args: argparse.Namespace, ds: ArrayDataset) -> ViTConfig:
    base = PRESETS[args.preset] if args.preset else ViTConfig()
    changes = {"num_classes": len(ds.class_names), "in_channels": ds.images.shape[-1], "image_size": ds.images.shape[1]}
    for field in ("patch_size", "dim", "depth", "heads", "mlp_dim"):
        value = getattr(args, field)
        if value is not None:
            changes[field] = value
    return base.replace(**changes)


def _save_resume(path: Path, model, opt, epoch: int, history: list) -> None:
    """Resume state as safetensors + JSON: the weights, AdamW's moments, the epoch and the curve."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        st = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq", "step"):
            if name in st:
                tensors[f"opt.{i}.{name}"] = torch.as_tensor(st[name]).detach().cpu().contiguous()
    save_file(tensors, str(path.with_suffix(".resume.safetensors")))
    path.with_suffix(".resume.json").write_text(json.dumps({"epoch": epoch, "history": history}))


def _load_resume(path: Path, model, opt) -> tuple[int, list]:
    meta_path = path.with_suffix(".resume.json")
    if not meta_path.is_file():
        return 0, []
    tensors = load_file(str(path.with_suffix(".resume.safetensors")))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, p in enumerate(model.parameters()):
        st = {name: tensors[f"opt.{i}.{name}"].to(p.device) for name in ("exp_avg", "exp_avg_sq", "step") if f"opt.{i}.{name}" in tensors}
        if st:
            st["step"] = st["step"].cpu()
            opt.state[p] = st
    meta = json.loads(meta_path.read_text())
    return meta["epoch"], meta["history"]


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    device = choose_device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    if args.dataset == "symbols":
        train_ds = load_dataset("symbols", "train", n=args.n_train)
        val_ds = load_dataset("symbols", "val", n=args.n_val)
        test_ds = load_dataset("symbols", "test", n=args.n_test)
    else:
        extra = {"n_train": args.n_train, "n_test": args.n_test} if args.dataset == "shapes" else {}
        train_ds = load_dataset(args.dataset, "train", args.data, **extra)
        test_ds = val_ds = load_dataset(args.dataset, "test", args.data, **extra)
    if args.limit:
        train_ds = ArrayDataset(train_ds.images[:args.limit], train_ds.labels[:args.limit], train_ds.class_names, train_ds.name)
    mean, std = dataset_stats(train_ds)
    x_train, y_train = to_tensor(train_ds, mean, std)
    x_test, y_test = to_tensor(test_ds, mean, std)
    x_val, y_val = to_tensor(val_ds, mean, std) if val_ds is not test_ds else (x_test, y_test)
    if args.limit_test:
        x_test, y_test = x_test[:args.limit_test], y_test[:args.limit_test]
        x_val, y_val = x_val[:args.limit_test], y_val[:args.limit_test]

    config = build_config(args, train_ds)
    model = VisionTransformer(config).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start_epoch, history = _load_resume(out, model, opt) if args.resume else (0, [])
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup = int(steps_per_epoch * args.warmup_epochs)
    flip = FLIP_OK.get(args.dataset, False)
    t_start = time.time() - sum(h["seconds"] for h in history)
    snaps = None
    if args.snapshots:
        snaps = SnapshotRecorder(out, snapshot_steps(args.snapshots, steps_per_epoch, args.epochs), steps_per_epoch,
                                 x_val[:args.snapshot_images], y_val[:args.snapshot_images], device,
                                 resume_step=start_epoch * steps_per_epoch,
                                 command=_command([*args.argv, "--snapshots", args.snapshots,
                                                   "--snapshot-images", str(args.snapshot_images)]))

    for epoch in range(start_epoch, args.epochs):
        model.train()
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)  # per-epoch stream: resume is exact
        order = torch.randperm(len(x_train), generator=g)
        t0, seen, loss_sum, correct = time.time(), 0, 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", file=sys.stderr, disable=args.quiet)
        for i in bar:
            step = epoch * steps_per_epoch + i
            if snaps is not None and snaps.wants(step):
                snaps.save(model, step)  # after `step` optimizer steps; draws no random numbers
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup, args.lr)
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            xb = augment_batch(x_train[idx], flip=flip, pad=args.pad, generator=g).to(device, non_blocking=True)
            yb = y_train[idx].to(device, non_blocking=True)
            with _autocast(device):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            seen += len(idx)
            batch_loss = loss.item()
            loss_sum += batch_loss * len(idx)
            if snaps is not None:
                snaps.add_loss(batch_loss, len(idx))
            correct += (logits.argmax(-1) == yb).sum().item()
            if i % 10 == 0 or i == steps_per_epoch - 1:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", img_s=f"{seen / (time.time() - t0):.0f}")
        test_acc = evaluate(model, x_val, y_val, device)  # the validation split where the set has one
        record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen, "test_acc": test_acc,
                  "seconds": time.time() - t0, "images_per_second": seen / (time.time() - t0), **position_scores(model)}
        history.append(record)
        print(json.dumps(record), flush=True)
        _save_resume(out, model, opt, epoch + 1, history)
        if args.stop_after and epoch + 1 - start_epoch >= args.stop_after and epoch + 1 < args.epochs:
            print(f"stopped after {args.stop_after} epoch(s); continue with --resume", file=sys.stderr)
            return {"stopped": True, "history": history}

    model.eval()
    wall = time.time() - t_start
    final_acc = evaluate(model, x_test, y_test, device)
    model.class_names = list(train_ds.class_names)
    meta = {
        "dataset": args.dataset, "class_names": list(train_ds.class_names), "mean": mean, "std": std,
        "history": history, "test_accuracy": final_acc, "test_set_size": len(x_test), "train_set_size": len(x_train),
        "wall_time_seconds": round(wall, 1), "device": str(device), "threads": torch.get_num_threads(),
        "command": _command(args.argv),
        "position": position_scores(model), "seed": args.seed, "resize": "pad" if args.dataset == "symbols" else "crop",
        "epoch_eval_split": "val" if args.dataset in HAS_VAL else "test",
    }
    if args.dataset in HAS_VAL:
        meta["val_set_size"] = len(x_val)
    if snaps is not None:
        snaps.finish(model, total_steps)
    model.cpu()
    save_model(model, out, **meta)
    for suffix in (".resume.safetensors", ".resume.json"):
        out.with_suffix(suffix).unlink(missing_ok=True)
    print(json.dumps({"test_accuracy": final_acc, "wall_time_seconds": round(wall, 1), **meta["position"]}), flush=True)
    return meta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m vit.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["fashion-mnist", "shapes", "cifar10", "folder", "symbols"], default="shapes")
    p.add_argument("--data", help="dataset location (Fashion-MNIST IDX dir, CIFAR-10 batches dir, or image folder)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="model preset; sizes below override it")
    p.add_argument("--patch-size", type=int)
    p.add_argument("--dim", type=int)
    p.add_argument("--depth", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--mlp-dim", type=int)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--pad", type=int, default=2, help="random shift by up to this many pixels")
    p.add_argument("--n-train", type=int, default=20000, help="shapes and symbols: generated training images")
    p.add_argument("--n-test", type=int, default=4000, help="shapes and symbols: generated held-out images")
    p.add_argument("--n-val", type=int, default=3000, help="symbols: generated validation images (checked every epoch)")
    p.add_argument("--limit", type=int, help="train on the first N images only (quick trials)")
    p.add_argument("--limit-test", type=int, help="evaluate on the first N test images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda or mps (default: automatic)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--out", required=True, help="output path without suffix, e.g. assets/models/vit-tiny-shapes")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from its last finished epoch")
    p.add_argument("--stop-after", type=int, help="stop after this many epochs of this run (resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--snapshots", help="save the model along training at these epochs into OUT.snapshots/, "
                                       "e.g. 0,0.25,0.5,1,2,4,every=4 (see vit.snapshots)")
    p.add_argument("--snapshot-images", type=int, default=1000,
                   help="held-out images each snapshot's loss and accuracy are measured on (default 1000)")
    args = p.parse_args(argv)
    args.argv = _without(argv, {"--resume", "--quiet"}, {"--stop-after", "--threads", "--snapshots", "--snapshot-images"})
    if args.snapshots:
        try:
            snapshot_steps(args.snapshots, 1, 1)  # a malformed spec fails here, not after hours of training
        except ValueError as e:
            p.error(str(e))
    return args


def _command(argv: list[str]) -> str:
    return "python -m vit.train " + " ".join(shlex.quote(a) for a in argv)


def _without(argv: list[str], flags: set[str], options: set[str]) -> list[str]:
    """The command line minus options that do not change the result (for the recorded command)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in flags or a.split("=")[0] in options:
            skip = a in options
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
