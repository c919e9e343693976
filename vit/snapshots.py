"""Snapshots along training: the same model at chosen moments, from its random start to the end.

``python -m vit.train ... --snapshots 0,0.25,0.5,1,2,4,every=4 --out assets/models/NAME`` saves,
next to ``NAME.safetensors``, a folder ``NAME.snapshots/`` with one fp16 safetensors file per
moment and an ``index.json``. Each entry records the optimizer step, the epoch (a fraction within
the first ones), the held-out loss and accuracy measured on the spot (on the first
``--snapshot-images`` images of the validation split, or the test split where there is none), and
the mean training loss since the entry before. The last entry is the end of training: it has no
file of its own, because it *is* the saved model.

``vit.training_snapshots(name)`` reads the series back, in training order::

    series = vit.training_snapshots("vit-tiny-shapes")
    series[0].step == 0                    # the initialisation
    series[-1].load()                      # the bundled model itself
    [s.accuracy for s in series]           # held-out accuracy along training

Saving a snapshot draws no random numbers and changes nothing in the model, so a run with
snapshots ends with exactly the weights of the same run without them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from .i18n import N_
from .loading import MODELS_DIR, available_models, load_model
from .model import VisionTransformer
from .weights import CheckpointError, budgets, guarded, load_state_checked, read_json_object, read_safetensors

__all__ = ["Snapshot", "SnapshotRecorder", "snapshot_steps", "snapshots_folder", "training_snapshots"]

FORMAT = "vit-explorer-snapshots/1"
INDEX = "index.json"
DTYPE = torch.float16  # half the size; a snapshot is for looking at, the final model stays fp32


@dataclass(frozen=True)
class Snapshot:
    """One moment of training. ``loss`` and ``accuracy`` are measured on held-out images."""

    step: int
    epoch: float
    loss: float
    accuracy: float
    train_loss: float | None  # mean training loss since the snapshot before (None at step 0)
    model: str  # the final model: a bundled name or a checkpoint path
    file: Path | None  # None: the end of training, which is the final model itself

    @property
    def final(self) -> bool:
        return self.file is None

    def load(self, device: torch.device | str | None = "cpu") -> VisionTransformer:
        """The model as it was at this step (fp16 weights, computed in fp32), ready for inference."""
        model = load_model(self.model, device="cpu")
        if self.file is not None:
            load_state_checked(model, read_safetensors(self.file))
        model.meta = {**model.meta, "snapshot": {"step": self.step, "epoch": self.epoch}}
        return model.to(device) if device is not None else model


def snapshots_folder(out: str | Path) -> Path:
    """Where the snapshots of a model saved at ``out`` (a path without suffix) live."""
    out = Path(out)
    return out.with_name(out.name + ".snapshots")


def snapshot_steps(spec: str, steps_per_epoch: int, epochs: int) -> list[int]:
    """The optimizer steps at which to save, from a spec of epochs: ``"0,0.25,0.5,1,2,every=4"``.

    Numbers are epochs (fractions allowed), rounded to the nearest step; ``every=K`` adds K, 2K, …
    epochs. Steps at or past the end are dropped: the end is always recorded, as the final model."""
    total = steps_per_epoch * epochs
    wanted: set[int] = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        try:
            if item.startswith("every="):
                k = float(item[len("every="):])
                if not k > 0:
                    raise ValueError
                wanted |= {int(i * k * steps_per_epoch + 0.5) for i in range(1, int(epochs / k) + 1)}
            else:
                e = float(item)
                if not (e >= 0 and math.isfinite(e)):
                    raise ValueError
                wanted.add(int(e * steps_per_epoch + 0.5))
        except ValueError:
            raise ValueError(f"--snapshots: {item!r} is neither an epoch (e.g. 0.5) nor every=K") from None
    return sorted(s for s in wanted if s < total)


class SnapshotRecorder:
    """Saves snapshots during ``vit.train`` and keeps the index up to date after each one."""

    def __init__(self, out: str | Path, steps: list[int], steps_per_epoch: int, x: torch.Tensor, y: torch.Tensor,
                 device: torch.device, resume_step: int = 0, command: str = ""):
        self.folder = snapshots_folder(out)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.steps, self.steps_per_epoch = set(steps), steps_per_epoch
        self.x, self.y, self.device, self.command = x, y, device, command
        index = self.folder / INDEX
        old = json.loads(index.read_text()).get("snapshots", []) if index.is_file() and resume_step else []
        self.entries = [e for e in old if e["step"] < resume_step and e.get("file")]  # a resumed run redoes the rest
        self.loss_sum, self.seen = 0.0, 0

    def wants(self, step: int) -> bool:
        return step in self.steps

    def add_loss(self, loss: float, n: int) -> None:
        self.loss_sum += loss * n
        self.seen += n

    def _measure(self, model: VisionTransformer) -> tuple[float, float]:
        was_training = model.training
        model.eval()
        loss_sum, correct = 0.0, 0
        with torch.inference_mode():
            for i in range(0, len(self.x), 500):
                xb, yb = self.x[i:i + 500].to(self.device), self.y[i:i + 500].to(self.device)
                logits = model(xb).float()
                loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
                correct += (logits.argmax(-1) == yb).sum().item()
        model.train(was_training)
        n = max(len(self.x), 1)
        return loss_sum / n, correct / n

    def _entry(self, model: VisionTransformer, step: int, file: str | None) -> dict:
        loss, accuracy = self._measure(model)
        entry = {"step": step, "epoch": round(step / self.steps_per_epoch, 4), "loss": loss, "accuracy": accuracy,
                 "train_loss": self.loss_sum / self.seen if self.seen else None, "file": file}
        self.loss_sum, self.seen = 0.0, 0
        return entry

    def save(self, model: VisionTransformer, step: int) -> None:
        name = f"step-{step:07d}.safetensors"
        state = {k: v.detach().to("cpu", DTYPE).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(self.folder / name))
        self.entries.append(self._entry(model, step, name))
        self._write()

    def finish(self, model: VisionTransformer, step: int) -> None:
        self.entries.append(self._entry(model, step, None))
        self._write()

    def _write(self) -> None:
        keep = {e["file"] for e in self.entries if e["file"]}
        for stale in self.folder.glob("step-*.safetensors"):
            if stale.name not in keep:
                stale.unlink()
        data = {"format": FORMAT, "command": self.command, "dtype": str(DTYPE).removeprefix("torch."), "held_out_images": len(self.x),
                "steps_per_epoch": self.steps_per_epoch, "snapshots": self.entries}
        (self.folder / INDEX).write_text(json.dumps(data, indent=1))


def _number(value, name: str, whole: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
            or (whole and not float(value).is_integer()):
        raise CheckpointError("invalid_snapshots", N_("The snapshot index has an invalid {field}."), field=name)
    return int(value) if whole else float(value)


@guarded
def training_snapshots(name: str | Path) -> list[Snapshot]:
    """The snapshot series of a bundled model (or of a checkpoint path), in training order; [] if it has none.

    The first is the initialisation (step 0) when the run saved it; the last is the end of training,
    whose ``load()`` gives the model itself. A damaged index raises ``CheckpointError``."""
    name = str(name)
    base = MODELS_DIR / name if name in available_models() else Path(name).with_suffix("")
    index = snapshots_folder(base) / INDEX
    if not index.is_file():
        return []
    data = read_json_object(index, INDEX, budgets())
    if data.get("format") != FORMAT or not isinstance(data.get("snapshots"), list):
        raise CheckpointError("invalid_snapshots", N_("The snapshot index has an invalid {field}."), field="format")
    series = []
    for e in data["snapshots"]:
        if not isinstance(e, dict):
            raise CheckpointError("invalid_snapshots", N_("The snapshot index has an invalid {field}."), field="entry")
        file = e.get("file")
        if file is not None and (not isinstance(file, str) or Path(file).name != file or not file.endswith(".safetensors")):
            raise CheckpointError("invalid_snapshots", N_("The snapshot index has an invalid {field}."), field="file")
        train_loss = e.get("train_loss")
        series.append(Snapshot(step=_number(e.get("step"), "step", whole=True), epoch=_number(e.get("epoch"), "epoch"),
                               loss=_number(e.get("loss"), "loss"), accuracy=_number(e.get("accuracy"), "accuracy"),
                               train_loss=None if train_loss is None else _number(train_loss, "train_loss"),
                               model=name if name in available_models() else str(base),
                               file=None if file is None else index.parent / file))
    steps = [s.step for s in series]
    if steps != sorted(set(steps)) or (series and not series[-1].final) or any(s.final for s in series[:-1]):
        raise CheckpointError("invalid_snapshots", N_("The snapshot index has an invalid {field}."), field="order")
    return series
