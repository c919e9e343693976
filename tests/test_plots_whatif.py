"""The "What if…?" page's figures (``vit.plots.whatif``) and the pure analyses behind them
(``vit.whatif``): the ink rule, the shuffle, one run with an intervention, the most important head
(against brute force on a tiny random model), what changed, and the sanity check's summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import vit
from vit import i18n, plots, whatif
from vit.intervention import Intervention
from vit.plots._base import FONT_SIZE, TITLE_SIZE, _budget, _top, _units

from test_interventions import small

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gen() -> np.random.Generator:
    return np.random.default_rng(0)


def check_common(fig) -> None:
    """As tests/test_plots.py: a Figure, the white template, a height, a readable font, serialisable, and
    already what plotly's validation would make (figures are built without it)."""
    assert isinstance(fig, go.Figure)
    assert fig.layout.height and 200 <= fig.layout.height <= 1000, fig.layout.height
    assert fig.layout.font.size >= 14
    sent = json.loads(fig.to_json())
    assert sent == json.loads(go.Figure(fig.to_dict()).to_json())


def heatmaps(fig) -> list:
    return [t for t in fig.data if t.type == "heatmap"]


def all_figures(gen) -> dict[str, go.Figure]:
    img = gen.random((32, 32, 3))
    probs = gen.dirichlet(np.ones(10), size=2)
    names = [f"class {i}" for i in range(10)]
    return {
        "grid": plots.hide_grid_figure(img, 4, hidden=[0, 9, 63]),
        "grid none": plots.hide_grid_figure(gen.random((28, 28, 1)), 7),
        "heads": plots.heads_figure(4, 4, off=[(0, 1), (3, 3)]),
        "heads measured": plots.heads_figure(6, 4, off=[(2, 1)], drops=gen.random((6, 4)) * 0.4 - 0.1, target_name="arrow up"),
        "heads one": plots.heads_figure(1, 1, off=[(0, 0)], drops=np.zeros((1, 1))),
        "bars": plots.before_after_bars_figure(probs[0], probs[1], names),
        "maps": plots.side_by_side_maps_figure([gen.random((8, 8)), gen.random((8, 8))], ["before", "after"], img,
                                               title="[class] attention, last layer", percent=True, zmin=0,
                                               colorbar_title="attention weight"),
        "maps four": plots.side_by_side_maps_figure([gen.random((8, 8)) * 2 - 1 for _ in range(4)], list("abcd"), img,
                                                    title="Which patches mattered?", zmin=-1, zmax=1,
                                                    colorscale=plots.DIVERGING, width=700),
        "maps alone": plots.side_by_side_maps_figure([gen.random((4, 4))] * 3, ["x", "y", "z"], None, per_row=3),
        "deletion": plots.curves_figure(np.linspace(0, 1, 17), {"rollout": gen.random(17), "random order": gen.random(17)},
                                        {"rollout": 0.12, "random order": 0.4}, "deletion", "arrow up"),
        "insertion": plots.curves_figure(np.linspace(0, 1, 17), {"rollout": gen.random(17)}, {"rollout": 0.7}, "insertion"),
        "sanity": plots.sanity_check_figure(["original", "head", "block 1", "block 0", "embedding"],
                                            {"rollout": [1, 1, 0.8, 0.3, 0.1], "occlusion": [1, 0.2, 0.1, 0, np.nan]}),
    }


# --- every figure --------------------------------------------------------------------------------------------


def test_every_figure_is_canonical_and_readable(gen):
    for name, fig in all_figures(gen).items():
        check_common(fig)
        for trace in heatmaps(fig):
            if trace.showscale is not False:
                assert trace.colorbar.tickfont.size >= 14, name


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_titles_fit_the_narrowest_column(lang):
    with i18n.use_language(lang):
        figures = all_figures(np.random.default_rng(0))
    for name, fig in figures.items():
        title = fig.layout.title
        if title.text:
            assert all(_units(line) <= _budget(TITLE_SIZE) for line in title.text.split("<br>")), (name, title.text)
            assert fig.layout.margin.t >= _top(title.text, title.subtitle.text), name
        if title.subtitle.text:
            assert all(_units(line) <= _budget(FONT_SIZE - 1) for line in title.subtitle.text.split("<br>")), name


def test_figures_in_korean(gen):
    with i18n.use_language("ko"):
        figs = all_figures(gen)
    hangul = lambda s: any("\uac00" <= ch <= "\ud7a3" for ch in str(s))  # noqa: E731
    for name in ("grid", "heads", "bars", "deletion", "insertion", "sanity"):
        assert hangul(figs[name].layout.title.text), (name, figs[name].layout.title.text)
    assert hangul(figs["sanity"].data[0].x[0]) and figs["sanity"].data[0].x[2] == "블록 2"
    assert hangul(figs["heads measured"].layout.title.subtitle.text)


# --- the controls --------------------------------------------------------------------------------------------


def test_hide_grid_covers_hidden_patches_and_clicks_give_the_index(gen):
    fig = plots.hide_grid_figure(gen.random((32, 48, 3)), 8, hidden=[7, 0])
    gh, gw = 4, 6
    covers = [s for s in fig.layout.shapes if s.type == "rect"]
    assert sorted((s.x0, s.y0) for s in covers) == [(-0.5, -0.5), (7.5, 7.5)]  # patch 1 and patch 8 (index 7)
    assert len([s for s in fig.layout.shapes if s.type == "line"]) == gw + 1 + gh + 1
    image, numbers, crosses, targets = fig.data
    assert image.type == "image" and numbers.mode == "text" and list(numbers.text)[:3] == ["1", "2", "3"]
    assert list(crosses.x) == [3.5, 11.5] and crosses.hoverinfo == "skip"
    assert list(targets.customdata) == list(range(gh * gw)), "a click gives the 0-based patch index"
    assert targets.text[7].startswith("patch 8<br>hidden") and targets.text[1].startswith("patch 2<br>click to hide")
    assert "2 of 24 patches hidden" in fig.layout.title.subtitle.text
    assert fig.layout.clickmode == "event+select"
    assert len(plots.hide_grid_figure(gen.random((16, 16, 3)), 8).data) == 3, "no crosses when nothing is hidden"
    with pytest.raises(ValueError):
        plots.hide_grid_figure(gen.random((16, 16, 3)), 8, hidden=[4])


def test_heads_figure_crosses_off_heads_and_clicks_give_layer_and_head(gen):
    drops = gen.random((3, 4)) * 0.5 - 0.2
    fig = plots.heads_figure(3, 4, off=[(2, 1), (0, 3)], drops=drops, target_name="3")
    heat, crosses, targets = fig.data
    np.testing.assert_allclose(heat.z, np.round(drops * 100, 2), atol=1e-3)
    assert heat.zmin == -heat.zmax and heat.zmax >= np.abs(drops).max() * 100 - 0.01, "a symmetric diverging scale"
    assert sorted(zip(crosses.y, crosses.x)) == [(1, 4), (3, 2)], "layer 3 head 2, layer 1 head 4 (from 1)"
    assert [list(c) for c in targets.customdata][:5] == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]
    assert "layer 3, head 2<br>off" in targets.text[9]
    assert "p(3)" in fig.layout.title.subtitle.text and list(heat.colorbar.ticktext)[1:] == ["0", f"+{heat.zmax:g}"]
    plain = plots.heads_figure(2, 2)
    assert plain.data[0].showscale is False and len(plain.data) == 2, "unmeasured: one neutral colour, no crosses"
    with pytest.raises(ValueError):
        plots.heads_figure(2, 2, off=[(2, 0)])


# --- before and after -------------------------------------------------------------------------------------------


def test_bars_show_both_runs_in_percent_on_0_to_100():
    before = np.array([0.7, 0.2, 0.05, 0.05])
    after = np.array([0.1, 0.1, 0.05, 0.75])
    fig = plots.before_after_bars_figure(before, after, ["a", "b", "c", "d"], k=2)
    first, second = fig.data
    assert list(first.y) == ["a", "b", "d"], "before's top 2, then after's top class"
    np.testing.assert_allclose(first.x, [70, 20, 5]) and np.testing.assert_allclose(second.x, [10, 10, 75])
    assert (first.name, second.name) == ("before", "after") and fig.layout.barmode == "group"
    assert tuple(fig.layout.xaxis.range) == (0, 100)


def test_maps_side_by_side_share_one_colour_scale(gen):
    a, b = gen.random((8, 8)), gen.random((8, 8)) * 3
    b[0, 0] = np.nan  # a patch no token carries
    fig = plots.side_by_side_maps_figure([a, b], ["before", "after"], gen.random((32, 32, 3)), percent=True, zmin=0)
    heats = heatmaps(fig)
    assert len(heats) == 2 and len([t for t in fig.data if t.type == "image"]) == 2
    assert heats[0].zmin == heats[1].zmin == 0
    assert heats[0].zmax == heats[1].zmax == pytest.approx(np.nanmax(b) * 100, abs=0.01)
    assert heats[0].colorscale == heats[1].colorscale
    assert [h.showscale for h in heats] == [True, False], "one colour bar for both"
    assert np.isnan(heats[1].z[0][0])
    assert heats[0].colorbar.ticksuffix == "%"
    left, right = fig.layout.xaxis.domain, fig.layout.xaxis2.domain
    assert left[1] < right[0], "the panels do not overlap"
    assert fig.layout.yaxis2.scaleanchor == "x2", "square cells in each panel"
    assert [a.text for a in fig.layout.annotations] == ["before", "after"]
    four = plots.side_by_side_maps_figure([gen.random((4, 4)) for _ in range(4)], list("abcd"), zmin=-1, zmax=1, per_row=2)
    assert {t.zmin for t in heatmaps(four)} == {-1} and {t.zmax for t in heatmaps(four)} == {1}
    assert four.layout.yaxis.domain[0] > four.layout.yaxis3.domain[1], "two rows of two"
    with pytest.raises(ValueError):
        plots.side_by_side_maps_figure([gen.random((4, 4)), gen.random((2, 2))], ["a", "b"])
    with pytest.raises(ValueError):
        plots.side_by_side_maps_figure([gen.random((4, 4))], ["a", "b"])


def test_curves_and_the_sanity_check():
    fractions = np.linspace(0, 1, 5)
    fig = plots.curves_figure(fractions, {"m": [0.9, 0.5, 0.2, 0.1, 0.0]}, {"m": 0.31}, "deletion", "cat")
    (line,) = fig.data
    np.testing.assert_allclose(line.x, [0, 25, 50, 75, 100]) and np.testing.assert_allclose(line.y, [90, 50, 20, 10, 0])
    assert line.name == "m: area 0.31" and fig.layout.yaxis.title.text == "p(cat)"
    assert tuple(fig.layout.yaxis.range) == (0, 100) and "hidden" in fig.layout.xaxis.title.text
    assert "shown" in plots.curves_figure(fractions, {"m": fractions}, {}, "insertion").layout.xaxis.title.text
    with pytest.raises(ValueError):
        plots.curves_figure(fractions, {"m": [1, 2]}, {}, "deletion")
    with pytest.raises(ValueError):
        plots.curves_figure(fractions, {}, {}, "sideways")
    sanity = plots.sanity_check_figure(["original", "head", "block 0", "embedding"], {"m": [1, 0.9, 0.2, 0.1]})
    assert list(sanity.data[0].x) == ["trained", "head", "block 1", "embedding"]
    assert tuple(sanity.layout.yaxis.range) == (-1.05, 1.05)
    with pytest.raises(ValueError):
        plots.sanity_check_figure(["original", "head"], {"m": [1]})


# --- vit.whatif: the ink rule -------------------------------------------------------------------------------------


def drawing(ink: float = 0.0, paper: float = 1.0) -> np.ndarray:
    """16×16, 4×4 patches: paper, with ink in patch 1 (all), patch 6 (2 of 16 pixels), patch 16 (1 pixel)."""
    a = np.full((16, 16, 3), paper)
    a[0:4, 0:4] = ink  # patch 1, index 0
    a[4, 4:6] = ink  # patch 6, index 5: 2 of 16 pixels = 12.5%
    a[15, 15] = ink  # patch 16, index 15: 1 of 16 = 6.25%, below the 10% rule
    return a


def test_ink_is_what_differs_from_the_background_colour():
    assert whatif.ink_patches(drawing(), 4) == (0, 5)
    assert whatif.ink_patches(drawing(ink=1.0, paper=0.0), 4) == (0, 5), "light on dark is ink too"
    scores = whatif.ink_scores(drawing(), 4)
    assert scores.shape == (4, 4) and scores[0, 0] == 1 and scores[1, 1] == 2 / 16 and scores[3, 3] == 1 / 16
    assert whatif.ink_patches(drawing(ink=0.9), 4) == (), "a faint mark (0.1 from the paper) is no ink"
    assert whatif.ink_patches(np.full((16, 16, 3), 0.3), 4) == (), "a flat image has no ink"
    gray = drawing()[..., 0]
    assert whatif.ink_patches(gray, 4) == (0, 5) and whatif.ink_patches(gray[..., None], 4) == (0, 5)
    green = np.zeros((8, 8, 3))
    green[..., 1] = 0.5
    green[0:4, 4:8] = 0.8  # a light grey square on green grass
    assert whatif.ink_patches(green, 4) == (1,)
    assert whatif.ink_patches(np.pad(drawing(), ((0, 3), (0, 3), (0, 0)), constant_values=1.0), 4) == (0, 5), \
        "rows and columns beyond the last whole patch are ignored"
    with pytest.raises(ValueError):
        whatif.ink_patches(np.zeros((2, 2, 3)), 4)


def test_ink_of_a_bundled_sample_is_the_drawing():
    if "vit-tiny-shapes" not in vit.available_models():
        pytest.skip("no bundled vit-tiny-shapes model")
    model = vit.load_model("vit-tiny-shapes", device="cpu")
    image, _info = vit.load_image_info((ROOT / "assets" / "samples" / "symbols-3.png").read_bytes())
    seen = vit.denormalize(vit.preprocess(image, model), model)
    ink = whatif.ink_patches(seen, model.config.patch_size)
    assert 5 <= len(ink) <= 20, ink  # the strokes of a "3" on an 8×8 grid, not the paper
    assert all(1 <= divmod(p, 8)[0] <= 6 for p in ink), "no ink in the top and bottom rows of paper"


# --- vit.whatif: shuffling and one run -------------------------------------------------------------------------


def test_cyclic_shuffle_moves_every_patch():
    for n in (2, 3, 16, 64):
        for seed in range(5):
            order = whatif.cyclic_shuffle(n, seed)
            assert sorted(order) == list(range(n)) and all(order[i] != i for i in range(n))
    assert whatif.cyclic_shuffle(16, 3) == whatif.cyclic_shuffle(16, 3) != whatif.cyclic_shuffle(16, 4)
    assert whatif.cyclic_shuffle(1, 0) == (0,) and whatif.cyclic_shuffle(0, 0) == ()


def test_run_puts_shuffled_maps_back_where_the_patches_came_from():
    model = small()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    perm = whatif.cyclic_shuffle(16, 1)
    plain = whatif.run(model, x, Intervention(positions="zero"))
    shuffled = whatif.run(model, x, Intervention(positions="zero", shuffle=perm))
    np.testing.assert_allclose(shuffled["probs"], plain["probs"], atol=1e-6)
    np.testing.assert_allclose(shuffled["attention"], plain["attention"], atol=1e-6)  # equivariance, in grid order
    np.testing.assert_allclose(shuffled["rollout"], plain["rollout"], atol=1e-6)
    assert plain["seen"].shape == (16, 16, 3) and 0 <= plain["seen"].min() and plain["seen"].max() <= 1
    # what the model gets: token slot i carries patch perm[i], drawn at cell i
    cell = lambda a, i: a[4 * (i // 4): 4 * (i // 4) + 4, 4 * (i % 4): 4 * (i % 4) + 4]  # noqa: E731
    for i in range(16):
        np.testing.assert_allclose(cell(shuffled["seen"], i), cell(plain["seen"], perm[i]), atol=1e-6)
    # the maps are the [class] rows of the trace, heads fused by the mean
    with torch.no_grad():
        t = model.trace(x)
    np.testing.assert_allclose(whatif.run(model, x)["attention"], t.attentions[-1][0, :, 0, 1:].mean(0).reshape(4, 4),
                               atol=1e-6)
    # a hidden patch is covered in what the model gets: the training mean colour
    hidden = whatif.run(model, x, Intervention(hide=(5,)))
    np.testing.assert_allclose(cell(hidden["seen"], 5), 0.5, atol=1e-6)


def test_run_leaves_switched_off_heads_out_of_the_maps():
    model = small()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    depth, heads = model.config.depth, model.config.heads
    with torch.no_grad():
        t = model.trace(x)
    some = whatif.run(model, x, Intervention(heads_off=((depth - 1, 0),)))
    expected = t.attentions[-1][0, 1:, 0, 1:].mean(0).reshape(4, 4)  # heads 2…H of the last layer, unchanged input
    np.testing.assert_allclose(some["attention"], expected, atol=1e-6)
    none = whatif.run(model, x, Intervention(heads_off=tuple((depth - 1, h) for h in range(heads))))
    assert np.all(none["attention"] == 0), "a layer with every head off attends to nothing"


def test_a_headless_model_runs_without_probabilities():
    model = small(num_classes=0)
    out = whatif.run(model, torch.randn(1, 3, 16, 16))
    assert "probs" not in out and out["attention"].shape == (4, 4)
    with pytest.raises(ValueError):
        whatif.head_effects(model, torch.randn(1, 3, 16, 16))


# --- vit.whatif: the most important head, against brute force ----------------------------------------------------


@pytest.mark.parametrize("base", [Intervention(), Intervention(positions="zero")])
def test_head_effects_match_brute_force(base):
    model = small()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    effects = whatif.head_effects(model, x, base=base)
    depth, heads = model.config.depth, model.config.heads
    with torch.no_grad():
        start = model.trace(x, intervention=base).logits.double().softmax(-1)[0]
    c = int(start.argmax())
    brute = np.zeros((depth, heads))
    for layer in range(depth):
        for head in range(heads):
            iv = Intervention(positions=base.positions, heads_off=((layer, head),))
            with torch.no_grad():
                brute[layer, head] = float(model.trace(x, intervention=iv).logits.double().softmax(-1)[0, c])
    assert effects.target == c and effects.base_prob == pytest.approx(float(start[c]), abs=1e-6)
    np.testing.assert_allclose(effects.probs, brute, atol=1e-6)
    drops = float(start[c]) - brute
    assert whatif.most_important_head(effects) == np.unravel_index(np.argmax(drops), drops.shape)
    assert drops[whatif.most_important_head(effects)] == pytest.approx(drops.max(), abs=1e-9)
    other = whatif.head_effects(model, x, target=(c + 1) % 7, base=base)
    assert other.target == (c + 1) % 7


def test_random_head_is_seeded_and_avoids_the_one_named():
    picks = {whatif.random_head(3, 4, seed, avoid=(1, 2)) for seed in range(60)}
    assert (1, 2) not in picks and len(picks) > 5 and all(0 <= a < 3 and 0 <= b < 4 for a, b in picks)
    assert whatif.random_head(3, 4, 7) == whatif.random_head(3, 4, 7)
    assert whatif.random_head(1, 1, 0, avoid=(0, 0)) == (0, 0), "a one-head model has no other"


# --- vit.whatif: what changed --------------------------------------------------------------------------------------


def test_outcome_verdicts():
    base = np.array([0.6, 0.3, 0.1])
    assert whatif.outcome(base, base + np.array([1e-7, -1e-7, 0])).verdict == "same"
    assert whatif.outcome(base, np.array([0.58, 0.32, 0.1])).verdict == "small"
    assert whatif.outcome(base, np.array([0.5, 0.4, 0.1])).verdict == "down"
    assert whatif.outcome(base, np.array([0.8, 0.1, 0.1])).verdict == "up"
    o = whatif.outcome(base, np.array([0.2, 0.7, 0.1]))
    assert o.verdict == "changed" and (o.target, o.after_top) == (0, 1) and o.delta == pytest.approx(-0.4)
    assert whatif.outcome(base, base, target=2).before_prob == 0.1
    with pytest.raises(ValueError):
        whatif.outcome(base, base[:2])


def test_change_kind_names_what_separates_two_interventions():
    none, zero = Intervention(), Intervention(positions="zero")
    assert whatif.change_kind(none, none) == "none"
    assert whatif.change_kind(none, Intervention(hide=(1,))) == "hide"
    assert whatif.change_kind(none, Intervention(heads_off=((0, 1),))) == "heads"
    assert whatif.change_kind(none, zero) == "positions"
    assert whatif.change_kind(none, Intervention(shuffle=(1, 0))) == "shuffle"
    assert whatif.change_kind(zero, Intervention(positions="zero", shuffle=(1, 0))) == "shuffle-no-positions"
    assert whatif.change_kind(none, Intervention(positions="zero", shuffle=(1, 0))) == "mixed"
    assert whatif.change_kind(zero, Intervention(positions="zero", hide=(0,))) == "hide"


def test_sanity_summary():
    stages = ["original", "head", "block 0", "embedding"]
    summary = whatif.sanity_summary(stages, {"a": [1, 1, 0.9, 0.8], "b": [1, 0.4, 0.1, 0.0], "c": [1, 1, 0.3, np.nan]})
    assert summary["a"] == dict(after_head=1.0, final=0.8, verdict="stays")
    assert summary["b"]["verdict"] == "changes" and summary["b"]["after_head"] == 0.4
    assert summary["c"]["final"] == 0.0 and summary["c"]["verdict"] == "changes"


def test_explanations_include_a_random_reference():
    model = small()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    ex = whatif.explanations(model, x, target=2)
    assert list(ex["maps"]) == ["attention", "rollout", "gradient", "occlusion"]
    assert set(ex["deletion"]) == set(ex["insertion"]) == set(ex["maps"]) | {"random"}
    assert all(0 <= v <= 1 for v in list(ex["deletion_auc"].values()) + list(ex["insertion_auc"].values()))
    assert ex["fractions"][0] == 0 and ex["fractions"][-1] == 1 and ex["target"] == 2
    direct = vit.deletion_insertion(model, x, vit.rollout_map(model, x)[0], 2)
    assert ex["deletion_auc"]["rollout"] == pytest.approx(direct.deletion_auc)
