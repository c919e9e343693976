"""vit.plots: numpy in, one small plotly figure out, with the data where the eye expects it."""

import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from vit import i18n, plots
from vit.plots._base import FONT_SIZE, TITLE_SIZE, _budget, _top, _units, _wrap_text
from vit.plots import (
    attention_distance_figure, attention_matrix_figure, figure_to_png, filters_figure, image_figure,
    logit_lens_figure, maps_grid_figure, patch_grid_figure, patch_map_figure, patch_sequence_figure,
    patch_vectors_figure, position_similarity_figure, scaling_figure, token_matrix_figure,
    token_norms_figure, top_k_figure, training_curve_figure,
)


@pytest.fixture
def gen() -> np.random.Generator:
    return np.random.default_rng(0)


def plain(text) -> str:
    """A title as one line: the <br> that wrapping adds become spaces."""
    return str(text).replace("<br>", " ")


def check_common(fig):
    """Every figure: a Figure, the white template, a height, a readable base font."""
    assert isinstance(fig, go.Figure)
    assert fig.layout.height and 200 <= fig.layout.height <= 1000
    assert fig.layout.font.size >= 14
    assert fig.layout.template.layout.paper_bgcolor in ("white", "#ffffff", "rgb(255,255,255)")
    fig.to_json()  # serialisable


def test_plots_never_imports_streamlit_or_torch():
    files = sorted(Path(plots.__file__).parent.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "_base.py", "patches.py", "embeddings.py", "positions.py",
                                       "attention.py", "encoder.py", "training.py"}
    for f in files:
        text = f.read_text()
        assert "import streamlit" not in text and "import torch" not in text, f.name


def test_public_names_are_re_exported():
    for name in plots.__all__:
        assert callable(getattr(plots, name)) or isinstance(getattr(plots, name), int), name
    assert plots.FONT_SIZE >= 14 and plots.SMALL_SIZE >= 14


# --- images -------------------------------------------------------------------------------------


def test_image_figure_float_and_gray(gen):
    rgb = gen.random((8, 12, 3)).astype(np.float32)
    fig = image_figure(rgb, "hello")
    check_common(fig)
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Image)
    z = fig.data[0].z
    assert z.dtype == np.uint8 and z.shape == (8, 12, 3)
    np.testing.assert_allclose(z[..., 0].astype(int), np.minimum(np.round(rgb[..., 0] * 255), 250), atol=1)
    assert fig.layout.title.text == "hello"
    assert fig.layout.xaxis.showticklabels is False and fig.layout.yaxis.showticklabels is False

    gray = image_figure(gen.random((8, 8, 1)))
    g = gray.data[0].z
    assert g.shape == (8, 8, 3) and (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    u8 = image_figure(np.full((4, 4, 3), 100, np.uint8))
    assert (u8.data[0].z == 100).all()


def test_white_image_stays_small():
    """255 runs are all '/' in base64, which plotly escapes to 6 characters each: images are capped."""
    fig = image_figure(np.ones((224, 224, 3), np.float32))
    assert len(fig.to_json()) < 250_000  # 150 kB raw, 200 kB of base64, plus the template


def test_patch_grid_lines_labels_and_click(gen):
    img = gen.random((32, 48, 3))
    fig = patch_grid_figure(img, 8, show_indices=True, highlight=8)  # patch 8: the 0-based index 7
    check_common(fig)
    gh, gw = 4, 6
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    vertical = [s for s in lines if s.x0 == s.x1]
    horizontal = [s for s in lines if s.y0 == s.y1]
    assert len(vertical) == gw + 1 and len(horizontal) == gh + 1
    assert sorted(s.x0 for s in vertical) == [c * 8 - 0.5 for c in range(gw + 1)]
    # image, index labels, click targets
    assert len(fig.data) == 3
    labels, targets = fig.data[1], fig.data[2]
    assert labels.mode == "text" and list(labels.text) == [str(i) for i in range(1, gh * gw + 1)]  # 1 … N
    assert labels.hoverinfo == "skip"
    assert list(targets.customdata) == list(range(gh * gw))  # clicks: the 0-based index
    assert "%{text}" in targets.hovertemplate
    assert targets.text[0].startswith("patch 1<br>row 1, column 1")
    # patch 8 = row 2, column 2 (index 7): centre at (8 + 3.5, 8 + 3.5)
    assert targets.x[7] == pytest.approx(11.5) and targets.y[7] == pytest.approx(11.5)
    assert targets.text[7] == "patch 8<br>row 2, column 2"
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1 and (rects[0].x0, rects[0].x1, rects[0].y0, rects[0].y1) == (7.5, 15.5, 7.5, 15.5)
    assert "24 patches" in fig.layout.title.subtitle.text


def test_patch_grid_skips_labels_when_crowded(gen):
    fig = patch_grid_figure(gen.random((84, 84, 3)), 4)  # 441 patches
    assert len(fig.data) == 2 and len(fig.data[1].customdata) == 441
    assert patch_grid_figure(gen.random((16, 16, 3)), 8, show_indices=False).data[-1].mode == "markers"
    assert patch_grid_figure(gen.random((16, 16, 3)), 8, highlight=4).layout.shapes[-1].type == "rect"  # the last
    for outside in (0, 5):  # highlight is the 1-based patch number
        with pytest.raises(ValueError):
            patch_grid_figure(gen.random((16, 16, 3)), 8, highlight=outside)


def test_patch_sequence_tiles_in_order(gen):
    p, c, n = 4, 3, 40
    patches = gen.random((n, p * p * c)).astype(np.float32)
    fig = patch_sequence_figure(patches, p, c, max_patches=20)
    check_common(fig)
    assert len(fig.data) == 2
    strip = fig.data[0].z
    assert strip.dtype == np.uint8
    assert strip.shape == (2 * p + 1, 16 * p + 15, 3)  # 20 patches → 16 + 4, 1-px separators
    want = np.minimum(np.round(patches[17].reshape(p, p, c) * 255), 250)  # patch 17: row 1, slot 1
    np.testing.assert_allclose(strip[p + 1 : 2 * p + 1, p + 1 : 2 * p + 1].astype(int), want, atol=1)
    assert (strip[p, :] == 250).all()  # separator row
    assert list(fig.data[1].customdata) == list(range(20))
    assert fig.data[1].text[0] == "patch 1" and fig.data[1].text[19] == "patch 20"
    assert "first 20 of 40 patches" in fig.layout.title.subtitle.text
    gray = patch_sequence_figure(gen.random((3, 4)), 2, 1)
    assert gray.data[0].z.shape == (2, 3 * 2 + 2, 3) and "all 3 patches" in gray.layout.title.subtitle.text


def test_patch_sequence_height_follows_rows_and_subtitles_fit(gen):
    """A strip of 4 rows of patches is a short figure; subtitle lines stay short enough for a column."""
    p, c = 4, 3
    one = patch_sequence_figure(gen.random((16, p * p * c)), p, c)
    four = patch_sequence_figure(gen.random((64, p * p * c)), p, c)
    check_common(four)
    assert one.layout.height < four.layout.height <= 300
    for fig in (four, patch_vectors_figure(gen.random((64, 48)))):
        assert all(len(line) <= 50 for line in fig.layout.title.subtitle.text.split("<br>"))


def test_patch_vectors_heatmap(gen):
    patches = gen.random((100, 48))
    fig = patch_vectors_figure(patches, max_patches=30)
    check_common(fig)
    assert len(fig.data) == 1 and fig.data[0].z.shape == (30, 48)
    np.testing.assert_allclose(fig.data[0].z, patches[:30], atol=1e-4)
    assert fig.data[0].z.dtype == np.float32
    assert "48 numbers" in plain(fig.layout.title.text)
    assert fig.layout.yaxis.autorange == "reversed"
    assert fig.data[0].y0 == 1 and "patch %{y}" in fig.data[0].hovertemplate  # patches from 1


def test_filters_each_normalised(gen):
    k, c, p = 10, 3, 4
    comps = gen.standard_normal((k, c, p, p))
    comps[3] *= 100  # scale must not leak across components
    explained = np.linspace(0.3, 0.01, k)
    fig = filters_figure(comps, explained, cols=4)
    check_common(fig)
    assert fig.layout.title.text == "Principal components of E"
    assert all(len(line) <= 50 for line in fig.layout.title.subtitle.text.split("<br>"))
    assert "top 10" in fig.layout.title.subtitle.text
    image = fig.data[0].z
    gap = 1
    assert image.shape == (3 * p + 2 * gap, 4 * p + 3 * gap, 3)
    for i in (0, 3, 9):
        r, col = divmod(i, 4)
        tile = image[r * (p + gap) : r * (p + gap) + p, col * (p + gap) : col * (p + gap) + p].astype(int)
        x = comps[i].transpose(1, 2, 0)
        want = np.minimum(np.round((x - x.min()) / (x.max() - x.min()) * 255), 250)
        np.testing.assert_allclose(tile, want, atol=1)
        assert tile.min() == 0
    hover = fig.data[1]
    assert len(hover.text) == k and "component 1" in hover.text[0] and "30.0%" in hover.text[0]
    assert "component 10" in hover.text[9]


def test_filters_gray_without_explained(gen):
    fig = filters_figure(gen.standard_normal((5, 1, 3, 3)))
    assert fig.data[0].z.shape[-1] == 3 and len(fig.data[1].text) == 5


def test_filters_height_follows_rows(gen):
    """Tiles of about 60 px: the figure grows with the rows of thumbnails, not a fixed height."""
    four = filters_figure(gen.standard_normal((28, 3, 4, 4)), cols=7)
    two = filters_figure(gen.standard_normal((14, 3, 4, 4)), cols=7)
    check_common(four)
    per_row = four.layout.height - two.layout.height
    assert 50 <= per_row / 2 <= 75


# --- tokens -------------------------------------------------------------------------------------


def test_token_matrix_diverging_and_class_row(gen):
    tokens = gen.standard_normal((10, 32))
    fig = token_matrix_figure(tokens, max_dims=20)
    check_common(fig)
    h = fig.data[0]
    assert h.z.shape == (10, 20) and h.zmid == 0 and h.zmin == -h.zmax
    assert h.colorscale[0][1] != h.colorscale[-1][1]
    assert list(h.y)[0] == "[class]" and list(h.y)[1] == "patch 1" and list(h.y)[-1] == "patch 9" and len(h.y) == 10
    assert "[class]" in fig.layout.yaxis.ticktext
    assert token_matrix_figure(tokens).data[0].z.shape == (10, 32)


@pytest.mark.parametrize("t", [10, 197])
def test_token_matrix_outline_keeps_the_class_row_visible(gen, t):
    """The [class] row is outlined from outside: no fill, lines just beyond the row's edges, even when
    the row is 2 px tall (an outline of data height ±0.5 would cover the whole row)."""
    fig = token_matrix_figure(gen.standard_normal((t, 32)))
    (rect,) = [s for s in fig.layout.shapes if s.type == "rect"]
    assert rect.fillcolor in (None, "rgba(0,0,0,0)") and rect.line.width <= 2
    assert rect.ysizemode == "pixel" and rect.yanchor == 0 and rect.y0 == -rect.y1
    margin = fig.layout.margin
    row_px = (fig.layout.height - margin.t - margin.b) / t
    assert rect.y1 - rect.line.width / 2 >= row_px / 2 + 0.5  # the line's inner edge lies outside the row
    assert (rect.xref, rect.x0, rect.x1) == ("paper", 0, 1)


@pytest.mark.parametrize("t", [17, 65, 197])
def test_token_matrix_height_and_ticks_do_not_overlap(gen, t):
    fig = token_matrix_figure(gen.standard_normal((t, 16)))
    check_common(fig)
    assert 320 <= fig.layout.height <= 900
    y = fig.layout.yaxis
    assert y.ticktext[0] == "[class]" and y.tickvals[0] == "[class]"
    assert all(text.startswith("patch ") for text in y.ticktext[1:]) and len(y.ticktext) >= 3
    rows = [list(fig.data[0].y).index(v) for v in y.tickvals]
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert min(b - a for a, b in zip(rows, rows[1:])) * plot_px / t >= 20  # ≥ 20 px between tick labels
    assert token_matrix_figure(gen.standard_normal((65, 16))).layout.height > token_matrix_figure(
        gen.standard_normal((17, 16))).layout.height


# --- maps ---------------------------------------------------------------------------------------


def test_patch_map_covers_image(gen):
    img = gen.random((64, 96, 3))
    values = gen.random((4, 6))
    fig = patch_map_figure(values, img, title="map", zmin=0, zmax=2, opacity=0.5, colorbar_title="share")
    check_common(fig)
    assert len(fig.data) == 2 and isinstance(fig.data[0], go.Image) and isinstance(fig.data[1], go.Heatmap)
    h = fig.data[1]
    assert h.z.shape == (4, 6)  # patch resolution, never upsampled
    assert h.opacity == 0.5 and (h.zmin, h.zmax) == (0, 2)
    # cells cover [-0.5, W-0.5] × [-0.5, H-0.5], one patch each
    assert h.dx == 16 and h.dy == 16
    assert h.x0 - h.dx / 2 == -0.5 and h.x0 + (6 - 0.5) * h.dx == 96 - 0.5
    assert h.y0 - h.dy / 2 == -0.5 and h.y0 + (4 - 0.5) * h.dy == 64 - 0.5
    assert fig.layout.yaxis.scaleanchor == "x"
    assert tuple(fig.layout.yaxis.range) == (63.5, -0.5)  # y grows downward
    assert h.customdata[0][0] == 1 and h.customdata[1][2] == 9  # the patch number (from 1) on hover
    assert h.colorbar.title.text == "share"


def test_patch_map_image_is_grayscale_underneath(gen):
    img = gen.random((32, 32, 3))
    fig = patch_map_figure(gen.random((8, 8)), img)
    z = fig.data[0].z
    assert z.dtype == np.uint8 and z.shape == (32, 32, 3)
    assert (z[..., 0] == z[..., 1]).all() and (z[..., 1] == z[..., 2]).all()
    rgb = np.minimum(np.round(img * 255), 250)
    np.testing.assert_allclose(z[..., 0], rgb @ [0.299, 0.587, 0.114], atol=1.5)


def test_patch_map_percent(gen):
    values = gen.dirichlet(np.ones(16)).reshape(4, 4)
    fig = patch_map_figure(values, gen.random((16, 16, 3)), colorbar_title="attention", percent=True)
    h = fig.data[1]
    np.testing.assert_allclose(h.z, values * 100, atol=1e-3)
    assert h.colorbar.ticksuffix == "%" and "%" in h.hovertemplate and "attention" in h.hovertemplate
    fixed = patch_map_figure(values, None, zmin=0, zmax=0.5, percent=True)
    assert (fixed.data[0].zmin, fixed.data[0].zmax) == (0, 50)
    plain = patch_map_figure(values)
    assert plain.data[0].colorbar.ticksuffix is None


def test_patch_map_is_compact_with_its_colour_bar_under_it(gen):
    for fig in (patch_map_figure(gen.random((8, 8)), gen.random((32, 32, 3)), title="t"), patch_map_figure(gen.random((14, 14)))):
        check_common(fig)
        assert 380 <= fig.layout.height <= 620
        bar = fig.data[-1].colorbar
        assert bar.orientation == "h" and bar.x == 0.5 and bar.xanchor == "center"  # centred under the centred map
        assert fig.layout.xaxis.constrain == "domain" and fig.layout.yaxis.scaleanchor == "x"


def test_patch_map_without_image(gen):
    fig = patch_map_figure(gen.random((3, 5)))
    assert len(fig.data) == 1 and fig.data[0].z.shape == (3, 5)
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"
    assert fig.data[0].zmin == pytest.approx(float(fig.data[0].z.min()), abs=1e-4)
    assert (fig.data[0].x0, fig.data[0].y0) == (1, 1)  # patch rows and columns from 1


def test_maps_grid_tiles_with_nan_gaps(gen):
    maps = gen.random((2, 3, 4, 4)).astype(np.float32)
    rows, cols = ["layer 1", "layer 2"], ["head 1", "head 2", "head 3"]
    fig = maps_grid_figure(maps, rows, cols, title="attention")
    check_common(fig)
    assert len(fig.data) == 1
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2 * 4 + 1, 3 * 4 + 2)
    assert np.isnan(z[4]).all() and np.isnan(z[:, 4]).all() and np.isnan(z[:, 9]).all()
    assert np.isfinite(z).sum() == maps.size
    for r in range(2):
        for c in range(3):
            np.testing.assert_allclose(z[r * 5 : r * 5 + 4, c * 5 : c * 5 + 4], maps[r, c], atol=1e-4)
    h = fig.data[0]
    assert h.zmin == pytest.approx(maps.min(), abs=1e-4) and h.zmax == pytest.approx(maps.max(), abs=1e-4)
    assert list(fig.layout.xaxis.ticktext) == cols and list(fig.layout.yaxis.ticktext) == rows
    assert list(fig.layout.xaxis.tickvals) == [1.5, 6.5, 11.5] and list(fig.layout.yaxis.tickvals) == [1.5, 6.5]
    # hover: per-row and per-column labels name the tile and the cell
    assert len(h.x) == z.shape[1] and len(h.y) == z.shape[0]
    assert h.y[6] == "layer 2, row 2" and h.x[12] == "head 3, col 3"  # rows and columns inside a map from 1
    assert "%{x}" in h.hovertemplate and "%{y}" in h.hovertemplate and "%{z" in h.hovertemplate
    assert fig.layout.yaxis.scaleanchor == "x"


def test_maps_grid_scales(gen):
    maps = gen.random((1, 2, 3, 3)) * np.array([1, 100])[None, :, None, None]
    fixed = maps_grid_figure(maps, None, ["a", "b"], zmin=0, zmax=5)
    assert (fixed.data[0].zmin, fixed.data[0].zmax) == (0, 5)
    own = maps_grid_figure(maps, ["x"], ["a", "b"], title="heads", shared_scale=False)
    z = np.asarray(own.data[0].z)
    for c in range(2):
        tile = z[:, c * 4 : c * 4 + 3]
        assert np.nanmin(tile) == pytest.approx(0) and np.nanmax(tile) == pytest.approx(1)
    assert "own 0–1" in plain(own.layout.title.text) and (own.data[0].zmin, own.data[0].zmax) == (0, 1)
    dup = maps_grid_figure(maps, ["x"], ["a", "a"])  # duplicate labels must not merge categories
    assert len(set(dup.data[0].x)) == len(dup.data[0].x)


def test_maps_grid_single_row_has_no_row_label_and_fits_its_tiles(gen):
    maps = gen.random((1, 4, 8, 8))
    fig = maps_grid_figure(maps, None, [f"head {h + 1}" for h in range(4)])
    check_common(fig)
    y = fig.layout.yaxis
    assert y.showticklabels is False and not y.ticktext
    assert not any("row 1," in str(label) for label in fig.data[0].y)  # hover names the map row only
    assert fig.data[0].y[0] == "row 1"
    # the height is the content: tiles of 80–140 px in a ~420 px column, a colour bar under them
    margin = fig.layout.margin
    tile = (fig.layout.height - margin.t - margin.b)
    assert 80 <= tile <= 140 and fig.layout.height <= 320
    assert fig.data[0].colorbar.orientation == "h" and fig.data[0].colorbar.len <= tile * 4


def test_maps_grid_height_scales_with_rows(gen):
    heights = [maps_grid_figure(gen.random((r, 4, 8, 8)), [f"layer {i + 1}" for i in range(r)], list("abcd")).layout.height
               for r in (1, 2, 4)]
    assert heights[0] < heights[1] < heights[2] <= 900
    big = maps_grid_figure(gen.random((12, 12, 14, 14)), [f"layer {i + 1}" for i in range(12)], [f"head {j + 1}" for j in range(12)])
    check_common(big)
    assert big.layout.height <= 900


def test_maps_grid_wraps_a_long_single_row(gen):
    maps = gen.random((1, 12, 14, 14)).astype(np.float32)
    names = [f"head {h + 1}" for h in range(12)]
    fig = maps_grid_figure(maps, None, names)
    check_common(fig)
    z = np.asarray(fig.data[0].z)
    assert z.shape[1] == 6 * 15 - 1 and np.isfinite(z).sum() == maps.size  # 2 rows of 6
    np.testing.assert_allclose(z[:14, 15:29], maps[0, 1], atol=1e-4)
    gap = z.shape[0] - 2 * 14
    np.testing.assert_allclose(z[14 + gap :, 15:29], maps[0, 7], atol=1e-4)  # head 8: row 2, slot 2
    assert [a.text for a in fig.layout.annotations] == names
    assert fig.data[0].text[14 + gap][15].startswith("head 8, row 1, col 1")
    assert len(fig.to_json()) < 150_000
    kept = maps_grid_figure(maps, None, names, wrap=None)
    assert np.asarray(kept.data[0].z).shape == (14, 12 * 15 - 1)


def test_overview_json_is_small(gen):
    maps = gen.dirichlet(np.ones(196), size=(12, 12)).reshape(12, 12, 14, 14)
    fig = maps_grid_figure(maps, [f"layer {i + 1}" for i in range(12)], [f"head {j + 1}" for j in range(12)])
    assert len(fig.data) == 1 and fig.data[0].z.shape == (12 * 15 - 1, 12 * 15 - 1)
    assert len(fig.to_json()) < 300_000


def test_position_similarity(gen):
    gh, gw = 3, 4
    emb = gen.standard_normal((gh * gw, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    fig = position_similarity_figure(sim, (gh, gw))
    check_common(fig)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (gh * gh + gh - 1, gw * gw + gw - 1)
    # tile (1, 2) is position 1·4 + 2 = 6 against all positions
    np.testing.assert_allclose(z[1 * 4 : 1 * 4 + gh, 2 * 5 : 2 * 5 + gw], sim[6].reshape(gh, gw), atol=1e-4)
    assert z[1 * 4 + 1, 2 * 5 + 2] == pytest.approx(1, abs=1e-4)  # itself
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-1, 1)
    assert fig.layout.xaxis.title.text == "input patch column" and fig.layout.yaxis.title.text == "input patch row"
    assert list(fig.layout.xaxis.ticktext) == ["1", "2", "3", "4"] and list(fig.layout.yaxis.ticktext) == ["1", "2", "3"]
    with pytest.raises(ValueError):
        position_similarity_figure(sim, (4, 4))


def test_position_similarity_14x14_json_is_small(gen):
    sim = np.corrcoef(gen.standard_normal((196, 20)))
    fig = position_similarity_figure(sim, (14, 14))
    assert fig.data[0].z.shape == (209, 209) and len(fig.to_json()) < 350_000


# --- attention ----------------------------------------------------------------------------------


def test_attention_matrix(gen):
    t = 10
    a = gen.dirichlet(np.ones(t), size=t)
    fig = attention_matrix_figure(a, title="layer 1, head 1")
    check_common(fig)
    assert len(fig.data) == 1 and fig.data[0].z.shape == (t, t)
    np.testing.assert_allclose(fig.data[0].z, a * 100, atol=1e-2)  # attention in %
    assert list(fig.data[0].x)[0] == "[class]" and list(fig.data[0].y)[0] == "[class]"
    assert list(fig.data[0].x)[1] == "patch 1"
    bar = fig.data[0].colorbar
    assert bar.title.text == "attention weight" and bar.ticksuffix == "%"
    assert fig.layout.yaxis.autorange == "reversed"
    assert "query" in fig.layout.yaxis.title.text and "key" in fig.layout.xaxis.title.text
    assert fig.data[0].zmin == 0
    big = attention_matrix_figure(gen.random((1, 1, 257, 257)))
    assert len(big.data) == 1 and big.data[0].z.shape == (257, 257)


def test_attention_distance(gen):
    layers, heads = 4, 3
    d = gen.random((layers, heads)) * 100
    fig = attention_distance_figure(d, selected=(2, 1))
    check_common(fig)
    assert len(fig.data) == heads + 1
    for h in range(heads):
        tr = fig.data[h]
        assert [round(x) for x in tr.x] == [1, 2, 3, 4] and tr.name == f"head {h + 1}"
        assert all(abs(x - round(x)) <= 0.36 for x in tr.x)
        np.testing.assert_allclose(tr.y, d[:, h], atol=0.01)
        assert [list(cd) for cd in tr.customdata] == [[l, h] for l in range(layers)]
    sel = fig.data[-1]
    assert sel.x[0] == pytest.approx(fig.data[1].x[2]) and sel.y[0] == pytest.approx(d[2, 1], abs=0.01)
    assert sel.marker.size > fig.data[0].marker.size
    assert fig.layout.xaxis.title.text == "Network depth (layer)"
    assert fig.layout.yaxis.title.text == "Mean attention distance (pixels)"
    assert len(attention_distance_figure(d).data) == heads


def test_attention_distance_uniform_line(gen):
    """The uniform-attention distance is a dashed horizontal line across the plot, labelled, inside the y range."""
    d = gen.random((4, 3)) * 10
    assert not attention_distance_figure(d).layout.shapes
    fig = attention_distance_figure(d, uniform=23.456)
    check_common(fig)
    assert len(fig.data) == 3, "the line is a shape, not a trace: clicks on heads keep their trace indices"
    (line,) = fig.layout.shapes
    assert line.type == "line" and line.line.dash == "dash"
    assert line.y0 == line.y1 == pytest.approx(23.46)
    assert (line.xref, line.x0, line.x1) == ("paper", 0, 1)
    assert "uniform attention" in line.label.text and "23.5 px" in line.label.text
    assert fig.layout.yaxis.range[1] > 23.46


def test_attention_distance_heads_apart_and_plain_customdata():
    """An untrained model: every head at the same distance. Points must not sit on each other, and a
    click must hand Streamlit [layer, head] as a plain list, not a base64 typed-array dict."""
    layers, heads = 4, 4
    fig = attention_distance_figure(np.full((layers, heads), 12.0), selected=(1, 2))
    xs = np.array([list(fig.data[h].x) for h in range(heads)])  # (heads, layers)
    for l in range(layers):
        assert len(set(xs[:, l])) == heads and np.all(np.diff(xs[:, l]) > 0)
        assert xs[:, l].mean() == pytest.approx(l + 1)
    sent = json.loads(fig.to_json())["data"]
    for h in range(heads):
        cd = sent[h]["customdata"]
        assert cd == [[l, h] for l in range(layers)] and all(type(v) is int for pair in cd for v in pair)
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] == pytest.approx(12 * 1.15, abs=0.01)
    many = attention_distance_figure(np.zeros((12, 12)) + 5)
    xs = np.array([list(t.x) for t in many.data])
    assert xs.max(axis=0).max() - xs.min(axis=0).min() < 12  # clusters of one layer never reach the next
    assert np.all(xs[:, 1:].min(axis=0) > xs[:, :-1].max(axis=0))


# --- tokens through the network, predictions ----------------------------------------------------


def test_token_norms(gen):
    norms = gen.random((5, 21)) * 10
    fig = token_norms_figure(norms)
    check_common(fig)
    names = [t.name for t in fig.data]
    cls = fig.data[names.index("[class]")]
    np.testing.assert_allclose(cls.y, norms[:, 0], atol=1e-3)
    median = fig.data[names.index("patches, median")]
    np.testing.assert_allclose(median.y, np.median(norms[:, 1:], axis=1), atol=1e-3)
    upper = fig.data[names.index("patches, 10–90%")]
    assert upper.fill == "tonexty"
    np.testing.assert_allclose(upper.y, np.percentile(norms[:, 1:], 90, axis=1), atol=1e-3)
    assert list(cls.x) == [0, 1, 2, 3, 4] and "after block" in fig.layout.xaxis.title.text


def test_logit_lens_rows(gen):
    layers, classes = 4, 8
    probs = np.full((layers + 1, classes), 0.01)
    probs[:, 0] = [0.1, 0.2, 0.3, 0.5, 0.9]  # final top-1
    probs[:, 1] = [0.05, 0.1, 0.2, 0.4, 0.05]  # second at the end
    probs[0, 5] = 0.8  # top-1 at z0 only
    probs[1, 6] = 0.7  # top-1 after block 1 only
    probs[2, 7] = 0.6
    names = [f"class {i}" for i in range(classes)]
    fig = logit_lens_figure(probs, names, top=2)
    check_common(fig)
    h = fig.data[0]
    assert list(h.y) == ["class 0", "class 1", "class 5", "class 6", "class 7"]
    assert h.z.shape == (5, layers + 1)
    np.testing.assert_allclose(h.z[0], probs[:, 0] * 100, atol=1e-2)  # in %
    assert list(h.x)[0] == "z₀" and len(h.x) == layers + 1
    assert h.texttemplate and (h.zmin, h.zmax) == (0, 100)


def test_top_k_ordering(gen):
    probs = np.array([0.05, 0.5, 0.1, 0.3, 0.05])
    fig = top_k_figure(probs, ["a", "b", "c", "d", "e"], k=3)
    check_common(fig)
    bar = fig.data[0]
    assert bar.orientation == "h"
    assert list(bar.y) == ["b", "d", "c"] and list(bar.x) == [50, 30, 10]  # in %
    assert fig.layout.yaxis.autorange == "reversed"  # first (highest) bar on top
    assert "%" in bar.texttemplate
    sure = top_k_figure(np.array([0.999, 0.001]), ["a", "b"])
    assert tuple(sure.layout.xaxis.range) == (0, 100) and sure.layout.margin.r >= 60, "a full bar's label needs room beside it"


# --- playground and training --------------------------------------------------------------------


def test_scaling():
    fig = scaling_figure([224, 64, 128], 16)
    check_common(fig)
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == [64, 128, 224] and list(fig.data[0].y) == [17, 65, 197]  # sequence length N+1
    assert list(fig.data[0].customdata) == [16, 64, 196]  # N patches, in the hover
    assert list(fig.data[1].y) == [17**2, 65**2, 197**2]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis.dtick == 1 and fig.layout.yaxis2.dtick == 1  # powers of ten only
    # the subplot titles say what each axis counts, wrapped to a phone's half-width plot; no y titles to collide
    assert "N+1" in fig.layout.annotations[0].text and "(N+1)²" in fig.layout.annotations[1].text
    assert not fig.layout.yaxis.title.text and not fig.layout.yaxis2.title.text
    assert all(len(line) <= 20 for a in fig.layout.annotations for line in a.text.split("<br>"))
    assert fig.layout.margin.t >= 110  # subplot titles clear of the subtitle


def test_training_curves():
    history = [dict(epoch=e, train_loss=2 / e, train_acc=0.3 * e, test_acc=0.25 * e, neighbour_score=0.2 * e) for e in (1, 2, 3)]
    fig = training_curve_figure(history)
    check_common(fig)
    names = [t.name for t in fig.data]
    assert names == ["train loss", "train accuracy", "test accuracy", "position neighbour score"]
    assert list(fig.data[0].y) == [2.0, 1.0, 0.6667]
    assert fig.data[0].xaxis == "x" and fig.data[1].xaxis == "x2"
    without = training_curve_figure([dict(epoch=1, train_loss=1.0, train_acc=0.1, test_acc=0.1)])
    assert len(without.data) == 3
    check_common(training_curve_figure([]))


def test_figure_to_png_without_kaleido():
    fig = top_k_figure(np.array([0.6, 0.4]), ["a", "b"])
    try:
        import kaleido  # noqa: F401
    except ImportError:
        assert figure_to_png(fig) is None
    else:
        png = figure_to_png(fig)
        assert png is None or png[:8] == b"\x89PNG\r\n\x1a\n"


def test_accepts_tensors():
    torch = pytest.importorskip("torch")
    fig = patch_map_figure(torch.rand(2, 2, requires_grad=True) * 1)
    assert fig.data[0].z.shape == (2, 2)
    fig = image_figure(torch.rand(3, 8, 8))  # (C, H, W) is recognised
    assert fig.data[0].z.shape == (8, 8, 3)
    json.loads(fig.to_json())


# --- figures are built without plotly's validation: what is sent must already be canonical ---------


def _all_figures(gen, subplots: bool = False) -> dict:
    """One of every kind of figure; ``subplots`` adds the two built with make_subplots (validated
    by plotly as they are built, and slow to build)."""
    img, gray = gen.random((32, 32, 3)), gen.random((28, 28, 1))
    att = gen.random((3, 4, 65, 65))
    att /= att.sum(-1, keepdims=True)
    return {
        "image": image_figure(img, "title"), "image gray": image_figure(gray),
        "grid": patch_grid_figure(img, 4, True, 5), "grid plain": patch_grid_figure(gray, 7, False, None),
        "sequence": patch_sequence_figure(gen.random((64, 48)), 4, 3),
        "vectors": patch_vectors_figure(gen.random((64, 48))),
        "filters": filters_figure(gen.random((14, 3, 4, 4)), gen.random(14) / 20),
        "filters gray": filters_figure(gen.random((7, 1, 7, 7))),
        "tokens": token_matrix_figure(gen.standard_normal((65, 64))),
        "map": patch_map_figure(att[0, 0, 0, 1:].reshape(8, 8), img, title="a", colorbar_title="attention", percent=True),
        "map alone": patch_map_figure(gen.random((8, 8)), None, colorscale="RdBu_r", zmin=-1, zmax=1),
        "heads": maps_grid_figure(att[0, :, 0, 1:].reshape(1, 4, 8, 8), None, [f"head {h}" for h in range(4)]),
        "heads wrapped": maps_grid_figure(gen.random((1, 12, 14, 14)), None, [f"head {h}" for h in range(12)],
                                          shared_scale=False),
        "overview": maps_grid_figure(att[:, :, 0, 1:].reshape(3, 4, 8, 8), ["a", "b", "c"], None, title="t"),
        "similarity": position_similarity_figure(gen.random((64, 64)) * 2 - 1, (8, 8)),
        "matrix": attention_matrix_figure(att[0, 0], "x"),
        "distance": attention_distance_figure(gen.random((3, 4)) * 20, (1, 2)),
        "distance uniform": attention_distance_figure(gen.random((3, 4)) * 20, None, uniform=12.5),
        "norms": token_norms_figure(gen.random((5, 65)) * 10),
        "lens": logit_lens_figure(gen.dirichlet(np.ones(10), size=7), [f"c{i}" for i in range(10)]),
        "lens deep": logit_lens_figure(gen.dirichlet(np.ones(10), size=13), [f"class number {i}" for i in range(10)]),
        "top k": top_k_figure(gen.dirichlet(np.ones(10)), [f"c{i}" for i in range(10)]),
        "attention map": patch_map_figure(att[0, 1, 3, 1:].reshape(8, 8), img, title="[class] → patches, layer 1 head 2",
                                          attention=True),
        "cosine map": patch_map_figure(gen.random((4, 4)) * 2 - 1, None, title="Similarity of position 6 (row 2, column 2)",
                                       colorscale="RdBu_r", zmin=-1, zmax=1, colorbar_title="cosine similarity"),
        "attention heads": maps_grid_figure(att[1, :, 0, 1:].reshape(1, 4, 8, 8), None, [f"head {h + 1}" for h in range(4)],
                                            attention=True),
        "attention overview": maps_grid_figure(att[:, :, 0, 1:].reshape(3, 4, 8, 8), ["a", "b", "c"], list("wxyz"),
                                               title="[class] → patch attention", shared_scale=False, attention=True),
    } | ({
        "scaling": scaling_figure([32, 64, 224], 16),
        "training": training_curve_figure([dict(epoch=e, train_loss=1 / e, train_acc=0.2 * e, test_acc=0.2 * e)
                                           for e in (1, 2, 3)]),
    } if subplots else {})


def test_every_figure_is_already_what_validation_would_make(gen):
    """Figures skip plotly's slow validation, so each must survive it unchanged: a named colour
    scale left unresolved, a ``font_size`` shorthand or a misspelt property would show up here."""
    for name, fig in _all_figures(gen).items():
        check_common(fig)
        sent = json.loads(fig.to_json())
        validated = json.loads(go.Figure(fig.to_dict()).to_json())  # raises on an invalid property
        assert sent == validated, name


def test_figures_skip_validation(gen):
    """Validation costs 50–250 ms per figure, more than the rest of a page rerun; it must stay off."""
    fig = patch_map_figure(gen.random((8, 8)), gen.random((32, 32, 3)))
    assert fig._validate is False


# --- readable on a 330 px column and a phone: titles, ticks, colour bars, units, numbering ----------


def _axes(fig):
    """Every x and y axis of a figure's layout (xaxis, yaxis2, ...)."""
    return [fig.layout[key] for key in fig.layout.to_plotly_json() if re.fullmatch(r"[xy]axis\d*", key)]


def _dark(colour) -> bool:
    match = re.fullmatch(r"#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})", str(colour))
    return bool(match) and all(int(c, 16) <= 0x33 for c in match.groups())


def test_wrapping_counts_hangul_double_and_keeps_breaks():
    assert _units("abc") == 3 and _units("패치") == 4 and _units("<b>ab</b>") == 2
    budget = _budget(TITLE_SIZE)
    assert 25 <= budget <= 32  # a 320 px line of 20 px text
    text = "[class] → patches, layer 12 head 12 of a model"
    wrapped = _wrap_text(text, TITLE_SIZE)
    assert wrapped.count("<br>") >= 1 and plain(wrapped) == text
    assert all(_units(line) <= budget for line in wrapped.split("<br>"))
    assert _wrap_text("a<br>b", TITLE_SIZE) == "a<br>b"
    word = _wrap_text("x" * 100, TITLE_SIZE).split("<br>")  # a word longer than a line is cut
    assert "".join(word) == "x" * 100 and all(_units(line) <= budget for line in word)
    korean = _wrap_text("위치 임베딩 유사도 " * 4, TITLE_SIZE).split("<br>")
    assert len(korean) >= 3 and all(_units(line) <= budget for line in korean)


def test_long_titles_wrap_and_the_top_margin_grows(gen):
    values = gen.random((4, 4))
    short = patch_map_figure(values, title="map")
    long = patch_map_figure(values, title="[class] → patches, layer 1 head 1, a title far too long for a column")
    lines = long.layout.title.text.split("<br>")
    assert len(lines) >= 3 and all(_units(line) <= _budget(TITLE_SIZE) for line in lines)
    grown = long.layout.margin.t - short.layout.margin.t
    assert grown >= 26 * (len(lines) - 1) and long.layout.height - short.layout.height == grown
    fixed = [top_k_figure(np.array([0.6, 0.4]), ["a", "b"], k=2), attention_distance_figure(gen.random((3, 2)))]
    for fig in fixed:  # a fixed-height figure grows by the lines wrapping adds, its plot keeps its height
        assert fig.layout.margin.t == _top(fig.layout.title.text, fig.layout.title.subtitle.text)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_no_title_line_is_over_the_budget(lang):
    with i18n.use_language(lang):
        figures = _all_figures(np.random.default_rng(0), subplots=True)
    for name, fig in figures.items():
        title = fig.layout.title
        if title.text:
            assert all(_units(line) <= _budget(TITLE_SIZE) for line in title.text.split("<br>")), (name, title.text)
        if title.subtitle.text:
            lines = title.subtitle.text.split("<br>")
            assert all(_units(line) <= _budget(FONT_SIZE - 1) for line in lines), (name, title.subtitle.text)
        if title.text:
            assert fig.layout.margin.t >= _top(title.text, title.subtitle.text), name  # the top margin holds them


def test_tick_labels_are_large_and_dark(gen):
    for name, fig in _all_figures(gen, subplots=True).items():
        for axis in _axes(fig):
            if axis.showticklabels is False:
                continue
            assert axis.tickfont.size >= 14 and _dark(axis.tickfont.color), (name, axis.tickfont)
        for trace in fig.data:
            if trace.type == "heatmap":
                assert trace.colorbar.tickfont.size >= 14 and _dark(trace.colorbar.tickfont.color), name
    sparse = top_k_figure(np.array([0.6, 0.4]), ["a", "b"])  # where space allows: 16 px
    assert sparse.layout.xaxis.tickfont.size == 16 and sparse.layout.yaxis.tickfont.size == 16


def test_colour_bars_lie_under_the_plot_with_their_title_beside_them(gen):
    """A horizontal bar at the bottom of the figure with its title beside it is never cut (a title on
    the right of a vertical bar lost its first letters; plotly.js draws a "top" title of a horizontal
    bar over the bar, and a "bottom" one can lift the bar onto the plot); the bar stays shorter than a
    phone's figure."""
    for name, fig in _all_figures(gen).items():
        for trace in fig.data:
            if trace.type != "heatmap":
                continue
            bar = trace.colorbar
            assert bar.orientation == "h" and bar.yref == "container" and bar.y == 0 and bar.yanchor == "bottom", name
            assert bar.lenmode == "pixels" and bar.len <= 300 and bar.xanchor == "center", name
            assert not bar.title.text or bar.title.side == "right", name
            assert fig.layout.margin.b >= 72, name


def test_cosine_colour_bars_show_the_whole_range_with_end_ticks(gen):
    emb = gen.standard_normal((16, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    for fig in (position_similarity_figure(sim, (4, 4)),
                patch_map_figure(sim[5].reshape(4, 4), None, colorscale="RdBu_r", zmin=-1, zmax=1)):
        h = fig.data[-1]
        assert (h.zmin, h.zmax) == (-1, 1)
        ticks = list(h.colorbar.tickvals)
        assert ticks[0] == -1 and ticks[-1] == 1 and 0 in ticks and ticks == sorted(ticks)
        assert list(h.colorbar.ticktext)[0] == "-1" and list(h.colorbar.ticktext)[-1] == "1"
    assert position_similarity_figure(sim, (4, 4)).data[0].colorbar.title.text == "cosine similarity"


def test_small_grid_maps_have_integer_ticks(gen):
    fig = patch_map_figure(gen.random((4, 4)))
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.tickmode == "array" and list(axis.tickvals) == [1, 2, 3, 4]
        assert all(isinstance(v, int) for v in axis.tickvals) and list(axis.ticktext) == ["1", "2", "3", "4"]
    big = patch_map_figure(gen.random((14, 14)))
    ticks = list(big.layout.xaxis.tickvals)
    assert ticks[0] == 1 and all(float(v).is_integer() for v in ticks) and len(ticks) <= 8
    vectors = patch_vectors_figure(gen.random((4, 12)))  # 4 patches: never 0.5, 1.5
    assert list(vectors.layout.yaxis.tickvals) == [1, 2, 3, 4]
    assert all(float(v).is_integer() for v in vectors.layout.xaxis.tickvals)


def test_probability_axes_run_from_0_to_100_percent():
    guess = np.full(9, 1 / 9)  # an untrained model: 11% each
    fig = top_k_figure(guess, [f"c{i}" for i in range(9)], k=3)
    axis = fig.layout.xaxis
    assert tuple(axis.range) == (0, 100) and axis.ticksuffix == "%" and list(axis.tickvals) == [0, 25, 50, 75, 100]
    assert fig.data[0].x[0] == pytest.approx(11.11, abs=0.01) and fig.data[0].texttemplate == "%{x:.1f}%"
    lens = logit_lens_figure(np.tile(guess, (4, 1)), [f"c{i}" for i in range(9)])
    h = lens.data[0]
    assert (h.zmin, h.zmax) == (0, 100) and h.colorbar.ticksuffix == "%"
    assert list(h.colorbar.tickvals) == [0, 25, 50, 75, 100] and "%{z:.1f}%" in h.hovertemplate


def test_attention_has_one_unit_everywhere(gen):
    att = gen.dirichlet(np.ones(16), size=(2, 12))  # (layers, heads, 16 patches)
    img = gen.random((16, 16, 3))
    figures = {
        "map": patch_map_figure(att[0, 0].reshape(4, 4), img, attention=True),
        "heads": maps_grid_figure(att[:1, :4].reshape(1, 4, 4, 4), None, list("abcd"), attention=True),
        "heads wrapped": maps_grid_figure(att[:1].reshape(1, 12, 4, 4), None, [f"h{i}" for i in range(12)], attention=True),
        "overview": maps_grid_figure(att.reshape(2, 12, 4, 4), ["l1", "l2"], [f"h{i}" for i in range(12)], attention=True),
        "matrix": attention_matrix_figure(gen.dirichlet(np.ones(5), size=5)),
    }
    for name, fig in figures.items():
        h = fig.data[-1]
        assert h.colorbar.title.text == "attention weight" and h.colorbar.ticksuffix == "%", name
        assert h.zmin == 0 and 1 < np.nanmax(np.asarray(h.z, dtype=float)) <= 100, name  # in %, from 0
        assert "attention weight" in h.hovertemplate and "%{z:.2f}%" in h.hovertemplate, name
    np.testing.assert_allclose(figures["map"].data[1].z, att[0, 0].reshape(4, 4) * 100, atol=1e-2)
    scaled = maps_grid_figure(att.reshape(2, 12, 4, 4), ["l1", "l2"], None, shared_scale=False, attention=True)
    bar = scaled.data[0].colorbar
    assert bar.title.text == "scaled attention" and bar.ticksuffix is None and (scaled.data[0].zmin, scaled.data[0].zmax) == (0, 1)


def test_logit_lens_numbers_only_where_they_fit(gen):
    """On a phone a 13-column lens has ~20 px cells: no numbers there (hover has them); a 5-column
    lens shows a number only in cells of 10% and more, at 14 px or larger."""
    names = [f"c{i}" for i in range(10)]
    deep = logit_lens_figure(gen.dirichlet(np.ones(10), size=13), names)
    assert not deep.data[0].texttemplate and not deep.data[0].text
    assert "hover" in plain(deep.layout.title.subtitle.text) and "%{z:.1f}%" in deep.data[0].hovertemplate
    probs = np.full((5, 10), 0.02)
    probs[:, 0] = [0.82, 0.5, 0.3, 0.09, 0.82]
    shallow = logit_lens_figure(probs, names, top=2)
    h = shallow.data[0]
    assert h.texttemplate == "%{text}" and h.textfont.size >= 14
    assert list(h.text[0]) == ["82", "50", "30", "", "82"] and all(t == "" for t in h.text[1])


def test_patches_are_numbered_from_one(gen):
    img = gen.random((12, 12, 3))
    grid = patch_grid_figure(img, 4, highlight=9)  # 3 × 3 patches, the last one outlined
    assert list(grid.data[1].text) == [str(i) for i in range(1, 10)]
    (rect,) = [s for s in grid.layout.shapes if s.type == "rect"]
    assert (rect.x0, rect.y0) == (7.5, 7.5)
    assert grid.data[2].text[8].startswith("patch 9") and grid.data[2].customdata[8] == 8
    tokens = token_matrix_figure(gen.standard_normal((10, 4)))
    assert list(tokens.data[0].y) == ["[class]"] + [f"patch {i}" for i in range(1, 10)]
    matrix = attention_matrix_figure(gen.dirichlet(np.ones(10), size=10))
    assert list(matrix.layout.xaxis.ticktext) == ["[class]"] + [str(i) for i in range(1, 10)]
    assert list(matrix.layout.xaxis.tickvals)[1] == "patch 1"


def test_figures_in_korean(gen):
    img = gen.random((16, 16, 3))
    with i18n.use_language("ko"):
        grid = patch_grid_figure(img, 8, highlight=1)
        norms = token_norms_figure(gen.random((5, 9)))
        top = top_k_figure(np.array([0.7, 0.3]), ["cat", "dog"])
        heads = maps_grid_figure(gen.random((1, 2, 3, 3)), None, ["헤드 1", "헤드 2"], attention=True)
    assert plain(grid.layout.title.text) == "패치 격자로 나눈 이미지"
    assert "패치 4개" in grid.layout.title.subtitle.text
    assert grid.data[-1].text[0] == "패치 1<br>1행, 1열"
    assert norms.data[2].name == "패치, 중앙값" and norms.layout.title.text == "토큰 벡터의 길이"
    assert norms.data[2].hovertemplate == "블록 %{x} 이후<br>패치, 중앙값 %{y:.2f}<extra></extra>"
    assert top.layout.title.text == "상위 2개 예측" and list(top.data[0].y) == ["cat", "dog"]  # class names are data
    assert heads.data[0].colorbar.title.text == "어텐션 가중치" and heads.data[0].x[0] == "헤드 1, 1열"
    assert plain(patch_grid_figure(img, 8).layout.title.text) == "The image as a grid of patches"  # English again


def test_korean_keeps_every_plotly_field():
    """The %{...} parts of hover and text templates are plotly's: the same in both languages."""
    def fields(figures):
        out = {}
        for name, fig in figures.items():
            out[name] = [sorted(re.findall(r"%\{[^}]*\}", f"{t.hovertemplate} {getattr(t, 'texttemplate', '')}"))
                         for t in fig.data]
        return out

    english = fields(_all_figures(np.random.default_rng(0)))
    with i18n.use_language("ko"):
        korean_figures = _all_figures(np.random.default_rng(0))
    assert fields(korean_figures) == english
    assert any("패치" in str(fig.layout.title.text) for fig in korean_figures.values())


def test_class_names_are_text_not_html():
    """A checkpoint's class names are data: plotly.js would render a link or markup in a label, so they are escaped."""
    names = ['<a href="http://example.org">click</a>', "<img src=x>", "plain"]
    probs = np.array([[0.5, 0.3, 0.2]] * 3)
    for fig in (top_k_figure(probs[-1], names, k=3), logit_lens_figure(probs, names, top=3)):
        labels = [str(v) for trace in fig.data for v in (trace.y if trace.y is not None else [])]
        assert labels and not any("<a " in v or "<img" in v for v in labels), labels
        assert any("&lt;a href" in v for v in labels) and any(v == "plain" for v in labels), labels
