import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import vit
from vit import train
from vit.data import FASHION_MNIST_DIR, load_dataset

TINY = ["--dataset", "shapes", "--n-train", "256", "--n-test", "64", "--dim", "32", "--depth", "1", "--heads", "2",
        "--mlp-dim", "64", "--batch-size", "64", "--quiet", "--threads", "1"]


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    ds = load_dataset("shapes", "train", n_train=64)
    x, y = train.to_tensor(ds, [0.5] * 3, [0.25] * 3)
    model = vit.VisionTransformer(vit.ViTConfig.preset("tiny-shapes", depth=1))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_lr_schedule_warms_up_then_decays():
    lrs = [train.lr_at(s, 100, 10, 1e-3) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 0.05e-3


def test_train_command_writes_checkpoint_and_metadata(tmp_path):
    meta = train.train(train.parse_args(TINY + ["--epochs", "2", "--out", str(tmp_path / "m")]))
    sidecar = json.loads((tmp_path / "m.json").read_text())
    for key in ("config", "class_names", "mean", "std", "dataset", "history", "test_accuracy", "wall_time_seconds", "device", "command", "position"):
        assert key in sidecar, key
    assert len(sidecar["history"]) == 2 and sidecar["command"].startswith("python -m vit.train --dataset shapes")
    assert "--threads" not in sidecar["command"]
    model = vit.load_model(tmp_path / "m", device="cpu")
    assert model.class_names == sidecar["class_names"] and model.config.dim == 32
    assert meta["test_accuracy"] == sidecar["test_accuracy"]
    assert not list(tmp_path.glob("*.resume.*"))


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    train.train(train.parse_args(TINY + ["--epochs", "2", "--out", str(tmp_path / "full")]))
    stopped = train.train(train.parse_args(TINY + ["--epochs", "2", "--stop-after", "1", "--out", str(tmp_path / "part")]))
    assert stopped.get("stopped") and (tmp_path / "part.resume.json").is_file()
    train.train(train.parse_args(TINY + ["--epochs", "2", "--resume", "--out", str(tmp_path / "part")]))
    a, b = load_file(str(tmp_path / "full.safetensors")), load_file(str(tmp_path / "part.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert len(json.loads((tmp_path / "part.json").read_text())["history"]) == 2


BUNDLED = vit.available_models()


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_checkpoint_reproduces_its_accuracy_on_a_sample(name):
    from vit.evaluate import evaluate_model
    from pathlib import Path

    meta = vit.load_model(name, device="cpu").meta
    if meta["dataset"] == "fashion-mnist" and not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    result = evaluate_model(name, sample=2000, device="cpu", full=False)
    # 2000 of the held-out images: within 3 points of the full-set figure (binomial s.d. ≈ 0.7 points)
    assert abs(result["test_accuracy"] - meta["test_accuracy"]) < 0.03
    assert result["neighbour_score"] == pytest.approx(meta["position"]["neighbour_score"], abs=1e-6)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_checkpoint_reproduces_its_recorded_figures(name):
    """The model card's figures, measured again on a sample: pointing game, shifted accuracy, known rates."""
    from vit.evaluate import evaluate_model

    model = vit.load_model(name, device="cpu")
    recorded = model.meta.get("evaluation")
    if recorded is None or model.meta.get("provisional"):
        pytest.skip(f"{name} has no recorded evaluation (python scripts/model_card.py records it)")
    if model.meta["dataset"] == "fashion-mnist" and not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    r = evaluate_model(name, sample=800, device="cpu")
    # 800 images: a binomial share has s.d. ≤ 1.8 points, so 6 points is over three s.d.
    for key in ("pointing_game", "shifted_accuracy", "known_held_out", "known_shifted"):
        if key in recorded:
            assert abs(r[key] - recorded[key]) < 0.06, (key, r[key], recorded[key])
    assert r["filter_pca_share"] == pytest.approx(recorded["filter_pca_share"], abs=1e-6)
    photos = recorded.get("out_of_domain", {}).get("sample photos")
    if photos:
        assert r["out_of_domain"]["sample photos"]["known_rate"] == photos["known_rate"]


def test_symbols_train_command_runs_and_learns(tmp_path):
    args = ["--dataset", "symbols", "--n-train", "150", "--n-val", "30", "--n-test", "30", "--dim", "32", "--depth", "1",
            "--heads", "2", "--mlp-dim", "64", "--patch-size", "16", "--batch-size", "50", "--quiet", "--threads", "1",
            "--epochs", "2", "--out", str(tmp_path / "s")]
    meta = train.train(train.parse_args(args))
    assert meta["dataset"] == "symbols" and meta["resize"] == "pad" and meta["epoch_eval_split"] == "val"
    assert meta["class_names"][-1] == "nothing" and meta["val_set_size"] == 30 and meta["test_set_size"] == 30
    assert meta["history"][-1]["train_loss"] < meta["history"][0]["train_loss"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_checkpoint_is_small_and_complete(name):
    from vit.loading import MODELS_DIR

    assert (MODELS_DIR / f"{name}.safetensors").stat().st_size <= 5 * 1024 * 1024
    model = vit.load_model(name, device="cpu")
    assert model.class_names and len(model.class_names) == model.config.num_classes
    assert len(model.meta["mean"]) == model.config.in_channels


def test_model_card_records_a_from_scratch_reproduction(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("model_card", Path(__file__).parent.parent / "scripts" / "model_card.py")
    card = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(card)
    models = tmp_path / "models"
    monkeypatch.setattr(card, "MODELS_DIR", models)
    args = TINY + ["--epochs", "1", "--seed", "3"]
    train.train(train.parse_args(args + ["--out", str(models / "tiny")]))
    # the card's command records "--out <path>"; a bundled model's path is assets/models/NAME
    meta = json.loads((models / "tiny.json").read_text())
    meta["command"] = meta["command"].replace(str(models / "tiny"), "assets/models/tiny")
    (models / "tiny.json").write_text(json.dumps(meta))
    train.train(train.parse_args(args + ["--out", str(tmp_path / "again")]))
    entry = card.add_reproduction("tiny", str(tmp_path / "again"))
    again = json.loads((tmp_path / "again.json").read_text())
    assert entry["test_accuracy"] == pytest.approx(again["test_accuracy"])
    assert entry["difference_points"] == pytest.approx(100 * (again["test_accuracy"] - meta["test_accuracy"]), abs=0.01)
    saved = json.loads((models / "tiny.json").read_text())
    assert saved["reproductions"] == [entry]
    (row,) = card.reproduction_rows(saved)
    assert row.startswith("| retrained from scratch") and f"{entry['difference_points']:+.2f} points" in row
    # a run with another recipe is not a reproduction
    train.train(train.parse_args(TINY + ["--epochs", "2", "--seed", "3", "--out", str(tmp_path / "other")]))
    with pytest.raises(SystemExit, match="not the card's command"):
        card.add_reproduction("tiny", str(tmp_path / "other"))
