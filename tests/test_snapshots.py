"""Snapshots along training (vit.snapshots): when they are taken, what they record, and that they
load back as the model was at that step, with the last one being the saved model itself."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import vit
from vit import snapshots, train
from vit.snapshots import snapshot_steps, training_snapshots

TINY = ["--dataset", "shapes", "--n-train", "512", "--n-test", "128", "--dim", "32", "--depth", "1", "--heads", "2",
        "--mlp-dim", "64", "--patch-size", "8", "--batch-size", "32", "--epochs", "3", "--quiet", "--threads", "1",
        "--lr", "3e-3", "--warmup-epochs", "0.25"]
SPEC = "0,0.25,0.5,1,every=2"  # 16 steps per epoch: steps 0, 4, 8, 16, 32 and the end (48)


def test_snapshot_steps_from_epochs():
    assert snapshot_steps("0,0.25,0.5,1,2,4,every=4", 100, 12) == [0, 25, 50, 100, 200, 400, 800]
    assert snapshot_steps(SPEC, 4, 3) == [0, 1, 2, 4, 8]
    assert snapshot_steps("3,5", 10, 3) == [], "the end is recorded as the final model, later ones are dropped"
    assert snapshot_steps("0.1", 4, 1) == [0], "rounded to the nearest step"
    for bad in ("x", "-1", "every=0", "every=x", "nan"):
        with pytest.raises(ValueError, match="--snapshots"):
            snapshot_steps(bad, 10, 3)
    with pytest.raises(SystemExit):
        train.parse_args(TINY + ["--snapshots", "0,soon", "--out", "x"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("snap")
    args = train.parse_args(TINY + ["--snapshots", SPEC, "--snapshot-images", "100", "--out", str(tmp / "s")])
    meta = train.train(args)
    return tmp, meta


def test_the_series_is_in_training_order_with_its_measurements(run):
    tmp, meta = run
    series = training_snapshots(tmp / "s")
    assert [s.step for s in series] == [0, 4, 8, 16, 32, 48]
    assert [s.epoch for s in series] == [0, 0.25, 0.5, 1, 2, 3]
    assert series[0].train_loss is None and all(s.train_loss > 0 for s in series[1:])
    assert all(0 <= s.accuracy <= 1 and s.loss > 0 for s in series)
    assert series[-1].final and series[-1].file is None and not any(s.final for s in series[:-1])
    assert series[-1].train_loss < series[1].train_loss, "the training loss falls between snapshots"
    assert len({s.loss for s in series}) == len(series), "each snapshot is measured on its own weights"
    # the final entry is measured on the model that was saved: same images, same accuracy
    index = json.loads((tmp / "s.snapshots" / "index.json").read_text())
    assert index["held_out_images"] == 100 and index["dtype"] == "float16"
    assert "--snapshots" in index["command"] and "--snapshots" not in meta["command"]


def test_snapshots_load_as_the_model_was(run):
    tmp, _ = run
    series = training_snapshots(tmp / "s")
    final = vit.load_model(tmp / "s", device="cpu")
    last = series[-1].load()
    for k, v in final.state_dict().items():
        assert torch.equal(last.state_dict()[k], v), "the last snapshot is the saved model itself"
    stored = load_file(str(series[2].file))
    assert all(t.dtype == torch.float16 for t in stored.values())
    early = series[2].load()
    assert early.meta["snapshot"] == {"step": 8, "epoch": 0.5}
    for k, v in early.state_dict().items():
        assert torch.equal(v, stored[k].float())
    assert not torch.equal(early.state_dict()["pos_embed"], final.state_dict()["pos_embed"])
    # step 0 is the seeded initialisation, before any optimizer step
    torch.manual_seed(0)
    init = vit.VisionTransformer(final.config)
    for k, v in init.state_dict().items():
        torch.testing.assert_close(series[0].load().state_dict()[k], v.half().float(), rtol=0, atol=0)
    x = torch.randn(2, *final.config.input_shape) if hasattr(final.config, "input_shape") else \
        torch.randn(2, final.config.in_channels, final.config.image_size, final.config.image_size)
    with torch.inference_mode():
        assert early(x).shape == final(x).shape


def test_snapshots_do_not_change_training(run, tmp_path):
    tmp, _ = run
    train.train(train.parse_args(TINY + ["--out", str(tmp_path / "plain")]))
    a, b = load_file(str(tmp / "s.safetensors")), load_file(str(tmp_path / "plain.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "plain.snapshots").exists()


def test_a_resumed_run_records_the_same_series(run, tmp_path):
    tmp, _ = run
    part = TINY + ["--snapshots", SPEC, "--snapshot-images", "100", "--out", str(tmp_path / "p")]
    assert train.train(train.parse_args(part + ["--stop-after", "2"])).get("stopped")
    assert [s["step"] for s in json.loads((tmp_path / "p.snapshots" / "index.json").read_text())["snapshots"]] == [0, 4, 8, 16]  # step 32 opens epoch 3
    train.train(train.parse_args(part + ["--resume"]))
    mine, theirs = training_snapshots(tmp_path / "p"), training_snapshots(tmp / "s")
    assert [(s.step, s.loss, s.accuracy) for s in mine] == [(s.step, s.loss, s.accuracy) for s in theirs]
    assert sorted(p.name for p in (tmp_path / "p.snapshots").iterdir()) == \
        sorted(p.name for p in (tmp / "s.snapshots").iterdir())


def test_no_series_and_a_damaged_index(tmp_path, run):
    assert training_snapshots("vit-tiny-fashion") == [] or all(isinstance(s, vit.Snapshot)
                                                                 for s in training_snapshots("vit-tiny-fashion"))
    assert training_snapshots(tmp_path / "nothing-here") == []
    tmp, _ = run
    import shutil
    shutil.copytree(tmp / "s.snapshots", tmp_path / "d.snapshots")
    for suffix in (".safetensors", ".json"):
        shutil.copy(tmp / f"s{suffix}", tmp_path / f"d{suffix}")
    index = tmp_path / "d.snapshots" / "index.json"
    good = json.loads(index.read_text())
    for field, value in (("step", -1), ("file", "../../etc/passwd"), ("loss", "a lot"), ("epoch", float("inf"))):
        bad = json.loads(json.dumps(good))
        bad["snapshots"][1][field] = value
        index.write_text(json.dumps(bad))
        with pytest.raises(vit.CheckpointError, match="snapshot index"):
            training_snapshots(tmp_path / "d")
    bad = json.loads(json.dumps(good))
    bad["snapshots"] = bad["snapshots"][::-1]
    index.write_text(json.dumps(bad))
    with pytest.raises(vit.CheckpointError, match="snapshot index"):
        training_snapshots(tmp_path / "d")
    assert snapshots.snapshots_folder(tmp_path / "d") == tmp_path / "d.snapshots"


SERIES = [name for name in vit.available_models() if training_snapshots(name)]


@pytest.mark.parametrize("name", SERIES)
def test_a_bundled_series_loads_in_order_with_its_metrics(name):
    series = training_snapshots(name)
    assert series[0].step == 0 and series[-1].final and len(series) >= 5
    assert [s.step for s in series] == sorted({s.step for s in series})
    assert all(0 <= s.accuracy <= 1 and s.loss > 0 for s in series)
    assert series[-1].accuracy > series[0].accuracy + 0.5, "the series shows the model learning"
    bundled = vit.load_model(name, device="cpu")
    last = series[-1].load()
    assert all(torch.equal(v, bundled.state_dict()[k]) for k, v in last.state_dict().items())
    start = series[0].load()
    assert not torch.equal(start.state_dict()["pos_embed"], bundled.state_dict()["pos_embed"])
    assert start.config == bundled.config and start.class_names == bundled.class_names


def test_the_snapshot_bundle_stays_small():
    from vit.loading import MODELS_DIR

    total = sum(p.stat().st_size for p in MODELS_DIR.glob("*.snapshots/*"))
    assert total < 15 * 1024 * 1024, f"{total / 2**20:.1f} MB of snapshots"
