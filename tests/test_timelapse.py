"""vit.timelapse: a snapshot series measured on one image, checked against direct computation."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import vit
from vit import train
from vit.analysis import attention_distances
from vit.claims import position_claim
from vit.timelapse import first_epoch, story, timeline

ARGS = ["--dataset", "shapes", "--n-train", "256", "--n-test", "128", "--dim", "32", "--depth", "2", "--heads", "2",
        "--mlp-dim", "64", "--patch-size", "8", "--batch-size", "64", "--epochs", "2", "--quiet", "--threads", "1",
        "--lr", "3e-3", "--warmup-epochs", "0.25", "--snapshots", "0,0.5,1", "--snapshot-images", "64"]


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    out = tmp_path_factory.mktemp("tl") / "m"
    train.train(train.parse_args(ARGS + ["--out", str(out)]))
    return vit.training_snapshots(out)


@pytest.fixture(scope="module")
def x(series):
    model = series[-1].load()
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, model.config.in_channels, model.config.image_size, model.config.image_size, generator=g)


def test_every_snapshot_is_measured_in_order(series, x):
    calls = []
    moments = timeline(series, x, progress=lambda i, n: calls.append((i, n)))
    assert [m.step for m in moments] == [s.step for s in series] and len(moments) == 4
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [m.accuracy for m in moments] == [s.accuracy for s in series]
    first = moments[0]
    assert first.filters.trained_share == pytest.approx(first.filters.untrained_share)
    assert first.filters.verdict == "none", "the initialisation compared with itself"


def test_a_moment_matches_the_model_it_came_from(series, x):
    moments = timeline(series, x)
    for snap, m in zip(series, moments):
        model = snap.load()
        with torch.inference_mode():
            t = model.trace(x)
        grid = t.grid
        assert m.class_attention.shape == (model.config.depth, model.config.heads, *grid)
        for layer, a in enumerate(t.attentions):
            # the [class] row without its own column: together with the self-attention it sums to 1
            np.testing.assert_allclose(m.class_attention[layer].sum(axis=(1, 2)) + a[0, :, 0, 0].numpy(), 1, atol=1e-5)
            np.testing.assert_allclose(m.class_attention[layer].reshape(model.config.heads, -1),
                                       a[0, :, 0, 1:].numpy(), atol=1e-7)
        np.testing.assert_allclose(m.distances, attention_distances(t.attentions, grid, model.config.patch_size)[:, 0].numpy(),
                                   rtol=1e-6)
        expected = position_claim(model.position_embeddings_for(grid), grid)
        assert m.position.neighbour_score == expected.neighbour_score and m.position.verdict == expected.verdict
        np.testing.assert_allclose(m.probs, torch.softmax(t.logits[0], -1).numpy(), atol=1e-6)
        assert m.probs.sum() == pytest.approx(1, abs=1e-5)
    assert not np.allclose(moments[0].similarity, moments[-1].similarity), "training moved the position embeddings"


def fake(epoch: float, ok: bool):
    return types.SimpleNamespace(epoch=epoch, ok=ok)


def test_first_epoch_is_where_it_starts_to_hold_for_good():
    seq = [fake(0, False), fake(1, True), fake(2, False), fake(3, True), fake(4, True)]
    assert first_epoch(seq, lambda m: m.ok) == 3
    assert first_epoch(seq[:3], lambda m: m.ok) is None, "it does not hold at the end"
    assert first_epoch([fake(0, True), fake(1, True)], lambda m: m.ok) == 0
    assert first_epoch([], lambda m: True) is None


def test_the_story_is_made_of_measured_epochs(series, x):
    moments = timeline(series, x)
    s = story(moments)
    assert s.start is moments[0] and s.end is moments[-1]
    assert s.learned_epoch is not None and s.learned_epoch <= s.end.epoch
    for epoch in (s.grid_epoch, s.some_grid_epoch, s.heads_spread_epoch, s.filters_epoch):
        assert epoch is None or epoch in [m.epoch for m in moments]
    if s.grid_epoch is not None:
        assert s.some_grid_epoch is not None and s.some_grid_epoch <= s.grid_epoch
    with pytest.raises(ValueError):
        story([])
