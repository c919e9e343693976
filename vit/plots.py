"""Plotly figures for every stage of a Vision Transformer: numpy arrays in, ``go.Figure`` out.

Written for a classroom projector: large fonts, clear titles and axis labels, a value on hover,
the same colour scale wherever the same quantity appears. Payloads stay small by drawing what is
seen at the resolution it is seen: a grid of maps is one heatmap with NaN gaps (never one trace
per map), images travel as uint8 ``go.Image`` at their own resolution, maps at patch resolution,
floats as rounded float32 (plotly sends numpy arrays as base64 typed arrays).

Conventions: patch indices, patch rows and columns are 0-based, in the row-major order of the
token sequence (token 0 is [class], patch i is token i + 1); layers and heads are labelled from 1
(the caller supplies their labels), and click ``customdata`` is always 0-based.

Nothing here imports torch or streamlit; tensors are accepted and converted with numpy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

__all__ = [
    "FONT_SIZE", "image_figure", "patch_grid_figure", "patch_sequence_figure", "patch_vectors_figure",
    "filters_figure", "token_matrix_figure", "patch_map_figure", "maps_grid_figure",
    "position_similarity_figure", "attention_matrix_figure", "attention_distance_figure",
    "token_norms_figure", "logit_lens_figure", "top_k_figure", "scaling_figure",
    "training_curve_figure", "figure_to_png",
]

FONT_SIZE = 16  # base font for a projector
TITLE_SIZE = 20
SMALL_SIZE = 13  # tick labels of dense grids
CLASS_LABEL = "[class]"
DIVERGING = "RdBu_r"  # negative blue, positive red, white at 0
SEQUENTIAL = "Viridis"
HEAD_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#e7ba52", "#7b4173", "#3182bd",
)
_GRID_WIDTH = 900  # nominal plot width (px) used to pick heights; the real width follows the page
# Streamlit stretches a figure to its container, so heights are picked for a nominal width: one of
# two page columns, or the whole page. Maps keep their aspect ratio (scaleanchor) and sit centred;
# their colour bar lies horizontally, centred under them, so it stays next to the map at any width.
_COLUMN_WIDTH = 500
_PAGE_WIDTH = 950
_BAR = 64  # px of bottom margin for a horizontal colour bar with its tick labels
# Images are capped at 250 (imperceptible): plotly's JSON escapes "/" as "\u002f", and runs of 255
# bytes are all "/" in base64, so a white sky would cost six times its size on the wire.
_WHITE = 250


# --- helpers ------------------------------------------------------------------------------------


def _np(x) -> np.ndarray:
    """A numpy array from anything array-like, tensors on any device included."""
    if hasattr(x, "detach"):
        x = x.detach()
        if hasattr(x, "float") and str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.cpu().numpy()
    return np.asarray(x)


def _matrix(x, expected: str) -> np.ndarray:
    """A 2-D array from (R, C) or (1, R, C) input; ``expected`` names the shape for the error."""
    x = _np(x)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"expected {expected}, got {x.shape}")
    return x


def _f32(x, decimals: int = 4) -> np.ndarray:
    """Float32, rounded: what goes over the wire. NaN stays NaN."""
    return np.round(np.asarray(x, dtype=np.float32), decimals)


def _to_uint8(image) -> np.ndarray:
    """(H, W, 3) uint8 from (H, W), (H, W, 1|3|4) or (1|3, H, W); floats are taken as [0, 1].

    Values are capped at ``_WHITE`` (250) to keep the JSON small; see above."""
    a = _np(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image (H, W, C) with C in 1, 3 or 4, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.nan_to_num(a.astype(np.float32), nan=0.0)
        a = np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)
    a = np.minimum(a, _WHITE)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


def _tile(maps: np.ndarray, gap: int = 1, fill=np.nan, row_gap: int | None = None) -> np.ndarray:
    """(R, C, h, w, ...) → (R·h + (R-1)·row_gap, C·w + (C-1)·gap, ...) with ``fill`` in the gaps
    (``row_gap`` defaults to ``gap``)."""
    r, c, h, w = maps.shape[:4]
    rest = maps.shape[4:]
    rg = gap if row_gap is None else int(row_gap)
    padded = np.full((r, c, h + rg, w + gap, *rest), fill, dtype=maps.dtype)
    padded[:, :, :h, :w] = maps
    axes = (0, 2, 1, 3, *range(4, 4 + len(rest)))
    out = padded.transpose(axes).reshape(r * (h + rg), c * (w + gap), *rest)
    return out[: r * (h + rg) - rg, : c * (w + gap) - gap]


def _wrap(items: np.ndarray, per_row: int, fill) -> np.ndarray:
    """(n, h, w, ...) → (rows, per_row, h, w, ...), the last row padded with ``fill``."""
    n = items.shape[0]
    rows = max(1, math.ceil(n / per_row))
    out = np.full((rows * per_row, *items.shape[1:]), fill, dtype=items.dtype)
    out[:n] = items
    return out.reshape(rows, per_row, *items.shape[1:])


def _title(text: str, subtitle: str | None = None) -> dict:
    # Pinned to the top of the figure, so ticks or labels above the plot area never run into it.
    title = dict(text=text, x=0.01, xanchor="left", y=1, yref="container", yanchor="top", pad=dict(t=10),
                 font=dict(size=TITLE_SIZE))
    if subtitle:
        title["subtitle"] = dict(text=subtitle, font=dict(size=FONT_SIZE - 1, color="#555"))
    return title


def _top(title: str = "", subtitle: str | None = None) -> int:
    """Top margin (px) that holds the title and its subtitle (one line per ``<br>``)."""
    lines = subtitle.count("<br>") + 1 if subtitle else 0
    return 20 + (40 if title else 0) + 21 * lines + (6 if lines else 0)


_TEMPLATE: dict | None = None


def _template() -> dict:
    """Plotly's "plotly_white" template as plain JSON, built once (building it costs ~50 ms)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


def _layout(title: str = "", height: float = 450, subtitle: str | None = None, margin: dict | None = None,
            **kwargs) -> dict:
    """The layout every figure shares, as a dict; ``margin`` overrides parts of the default margins."""
    margins = dict(l=10, r=10, t=_top(title, subtitle), b=10)
    margins.update(margin or {})
    layout = dict(template=_template(), height=int(round(height)), font=dict(size=FONT_SIZE), margin=margins,
                  hoverlabel=dict(font=dict(size=FONT_SIZE - 1)), **kwargs)
    if title:
        layout["title"] = _title(title, subtitle)
    return layout


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A ``go.Figure`` from plain trace and layout dicts, without plotly's property-by-property
    validation, which costs 50–250 ms per figure and would dominate every rerun of a page.

    The dicts are written in plotly's canonical form (named colour scales resolved, no ``font_size``
    shorthands), so the JSON sent is exactly what validation would have produced; tests/test_plots.py
    checks that for every figure by validating it again.
    """
    return go.Figure(data=data, layout=layout, _validate=False)


_HIDDEN_AXIS = dict(showticklabels=False, showgrid=False, zeroline=False, ticks="")


def _hidden_axes(x: dict | None = None, y: dict | None = None) -> dict:
    """Layout entries for axes without ticks, labels or grid, plus any extra settings."""
    return dict(xaxis={**_HIDDEN_AXIS, **(x or {})}, yaxis={**_HIDDEN_AXIS, **(y or {})})


@functools.cache
def _named_scale(name: str) -> tuple:
    # Through plotly's own validator, so the stops are exactly those a validated figure would carry.
    return tuple(tuple(stop) for stop in go.Heatmap(colorscale=name).colorscale)


def _scale(colorscale):
    """A named colour scale ("Viridis", "RdBu_r") as the explicit list of stops plotly.js needs."""
    if isinstance(colorscale, str):
        return [list(stop) for stop in _named_scale(colorscale)]
    return colorscale


def _image_height(h: int, w: int, target_width: int = 520, lo: int = 260, hi: int = 620) -> int:
    return int(np.clip(target_width * h / max(w, 1), lo, hi))


def _grid_height(rows: int, cols: int, extra: int = 120, width: int = _GRID_WIDTH, max_height: int = 820, max_cell: int = 36) -> int:
    """Height for a square-celled grid of rows × cols cells that fits ``width``."""
    cell = min(width / max(cols, 1), (max_height - extra) / max(rows, 1), max_cell)
    return int(max(rows * cell + extra, 220))


def _colorbar(title: str = "", **kwargs) -> dict:
    return dict(title=dict(text=title, side="right"), thickness=16, outlinewidth=0, **kwargs)


def _hbar(title: str = "", length: float = 300, **kwargs) -> dict:
    """A horizontal colour bar, ``length`` px long, centred under the plot area at the bottom of the
    figure (in the ``_BAR`` px of bottom margin): under a centred map it stays aligned at any width."""
    return dict(orientation="h", x=0.5, xref="paper", xanchor="center", y=0, yref="container", yanchor="bottom",
                ypad=8, len=int(max(120, length)), lenmode="pixels", thickness=14, outlinewidth=0,
                title=dict(text=title, side="right"), **kwargs)


def _label_width(labels: Sequence[str], size: int = FONT_SIZE) -> int:
    """Rough width (px) of the widest tick label."""
    return int(max((len(str(t)) for t in labels), default=0) * size * 0.55) + 10


def _bounds(values: np.ndarray, zmin, zmax) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if zmin is None and finite.size else zmin
    hi = float(finite.max()) if zmax is None and finite.size else zmax
    lo = 0.0 if lo is None else float(lo)
    hi = 1.0 if hi is None else float(hi)
    if hi <= lo:
        hi = lo + 1e-6
    return round(lo, 6), round(hi, 6)


def _unique(labels: Sequence[str]) -> list[str]:
    """Labels made unique (a plotly category axis would merge duplicates)."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        label = str(label)
        if label in seen:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        else:
            seen[label] = 1
        out.append(label)
    return out


def _short(name: str, limit: int = 32) -> str:
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _token_labels(t: int) -> list[str]:
    return [CLASS_LABEL] + [f"patch {i}" for i in range(t - 1)]


def _token_ticks(t: int, max_ticks: int = 12) -> tuple[list[int], list[str]]:
    """Tick positions for a token axis: [class] first, then evenly spaced patch numbers."""
    step = max(1, math.ceil((t - 1) / max_ticks))
    patches = list(range(0, t - 1, step))
    return [0] + [p + 1 for p in patches], [CLASS_LABEL] + [str(p) for p in patches]


# --- the image and its patches ----------------------------------------------------------------


def image_figure(image: np.ndarray, title: str = "") -> go.Figure:
    """The image as the model sees it, (H, W, C) in [0, 1] or uint8; grayscale is shown gray."""
    rgb = _to_uint8(image)
    image = dict(type="image", z=rgb, hovertemplate="x %{x}, y %{y}<br>RGB %{z}<extra></extra>")
    return _figure([image], {**_layout(title, _image_height(*rgb.shape[:2]) + (45 if title else 0)), **_hidden_axes()})


def patch_grid_figure(image: np.ndarray, patch_size: int, show_indices: bool = True, highlight: int | None = None) -> go.Figure:
    """The image cut into P×P patches: grid lines, each patch's index, one patch outlined.

    Traces: the image, then (if labels are shown and there are at most 400 patches) one text
    trace of indices, then an invisible marker at each patch centre whose ``customdata`` is the
    0-based patch index, for hover and for a Streamlit ``on_select`` click.
    """
    rgb = _to_uint8(image)
    h, w = rgb.shape[:2]
    p = int(patch_size)
    if p <= 0:
        raise ValueError("patch_size must be positive")
    gh, gw = h // p, w // p
    if gh == 0 or gw == 0:
        raise ValueError(f"image {h}×{w} is smaller than one {p}×{p} patch")
    n = gh * gw
    rows, cols = np.divmod(np.arange(n), gw)
    cx = (cols * p + (p - 1) / 2).astype(np.float32)
    cy = (rows * p + (p - 1) / 2).astype(np.float32)

    data = [dict(type="image", z=rgb, hoverinfo="skip")]
    line = dict(color="rgba(255,255,255,0.9)", width=1.5)
    right, bottom = gw * p - 0.5, gh * p - 0.5
    shapes = [dict(type="line", x0=c * p - 0.5, x1=c * p - 0.5, y0=-0.5, y1=bottom, line=line, layer="above") for c in range(gw + 1)]
    shapes += [dict(type="line", x0=-0.5, x1=right, y0=r * p - 0.5, y1=r * p - 0.5, line=line, layer="above") for r in range(gh + 1)]

    height = _image_height(h, w)
    if show_indices and n <= 400:
        cell_px = height / max(gh, 1)
        size = int(np.clip(cell_px * 0.38, 8, 14))
        data.append(dict(
            type="scatter", x=cx, y=cy, mode="text", text=[str(i) for i in range(n)], name="patch index",
            textfont=dict(size=size, color="white", shadow="0px 0px 3px black"),
            hoverinfo="skip", showlegend=False,
        ))
    data.append(dict(
        type="scatter", x=cx, y=cy, mode="markers", name="patches",
        marker=dict(size=max(6, int(height / max(gh, 1) * 0.8)), symbol="square", color="rgba(0,0,0,0)", opacity=0),
        customdata=np.arange(n, dtype=np.int32),
        text=[f"row {r}, column {c}" for r, c in zip(rows, cols)],
        hovertemplate="patch %{customdata}<br>%{text}<extra></extra>",
        showlegend=False,
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
    ))
    if highlight is not None:
        if not 0 <= int(highlight) < n:
            raise ValueError(f"highlight {highlight} is not a patch index in 0..{n - 1}")
        r, c = divmod(int(highlight), gw)
        shapes.append(dict(
            type="rect", x0=c * p - 0.5, x1=(c + 1) * p - 0.5, y0=r * p - 0.5, y1=(r + 1) * p - 0.5,
            line=dict(color="#ff2d55", width=4), layer="above",
        ))
    subtitle = f"{gh} × {gw} = {n} patches of {p} × {p} pixels"
    layout = _layout("The image as a grid of patches", height + 70, subtitle=subtitle,
                     shapes=shapes, hovermode="closest", clickmode="event+select")
    return _figure(data, {**layout, **_hidden_axes()})


def patch_sequence_figure(patches: np.ndarray, patch_size: int, channels: int, max_patches: int = 64) -> go.Figure:
    """The flattened patches (N, P·P·C), values in [0, 1], as a strip in sequence order.

    The rows of ``patches`` are laid out (p1 p2 c), as ``VisionTransformer.trace`` makes them.
    One uint8 image, patches wrapped 16 to a row with 1-px white separators; an invisible marker
    per patch gives its index on hover.
    """
    p, c = int(patch_size), int(channels)
    x = _matrix(patches, f"(N, {p * p * c}) patches")
    if x.shape[1] != p * p * c:
        raise ValueError(f"expected (N, {p * p * c}) patches, got {x.shape}")
    total = x.shape[0]
    n = max(1, min(total, int(max_patches)))
    tiles = _to_uint8(x[:n].reshape(n * p, p, c)).reshape(n, p, p, 3)
    per_row = min(16, n)
    grid = _wrap(tiles, per_row, _WHITE)
    strip = _tile(grid, gap=1, fill=np.uint8(_WHITE))
    index = np.arange(n)
    cx = ((index % per_row) * (p + 1) + (p - 1) / 2).astype(np.float32)
    cy = ((index // per_row) * (p + 1) + (p - 1) / 2).astype(np.float32)
    data = [dict(type="image", z=strip, hoverinfo="skip"), dict(
        type="scatter", x=cx, y=cy, mode="markers", customdata=index.astype(np.int32), showlegend=False, name="patches",
        marker=dict(size=10, color="rgba(0,0,0,0)", opacity=0),
        hovertemplate="patch %{customdata}<extra></extra>",
    )]
    shown = f"all {total} patches" if n == total else f"first {n} of {total} patches"
    subtitle = f"{shown}, row by row, left to right<br>each {p}×{p}×{c} = {p * p * c} numbers"
    title = "The sequence of patches"
    # Height from the strip itself: as wide as a page column allows, at most 40 px per patch.
    scale = min((_COLUMN_WIDTH - 20) / strip.shape[1], 40 / p)
    height = _top(title, subtitle) + strip.shape[0] * scale + 12
    layout = _layout(title, max(200, height), subtitle=subtitle, hovermode="closest", margin=dict(b=12))
    return _figure(data, {**layout, **_hidden_axes()})


def patch_vectors_figure(patches: np.ndarray, max_patches: int = 64) -> go.Figure:
    """The (N, P²C) matrix of flattened patches as a heatmap: each patch is a word of P²C numbers."""
    x = _matrix(patches, "(N, P·P·C) patches")
    total, d = x.shape
    n = max(1, min(total, int(max_patches)))
    z = _f32(x[:n])
    lo, hi = _bounds(z, None, None)
    heat = dict(
        type="heatmap", z=z, x0=0, dx=1, y0=0, dy=1, colorscale=_scale("gray"), zmin=lo, zmax=hi,
        colorbar=_colorbar("value"),
        hovertemplate="patch %{y}<br>number %{x} of the patch: %{z:.3f}<extra></extra>",
    )
    shown = f"all {total} patches" if n == total else f"first {n} of {total} patches"
    subtitle = f"{shown}; one row per patch,<br>flattened pixel by pixel (row, column, channel)"
    layout = _layout(f"Each patch is a word of {d} numbers", max(320, min(620, 6 * n + 230)), subtitle=subtitle,
                     xaxis=dict(title=dict(text="position in the flattened patch"), showgrid=False, zeroline=False),
                     yaxis=dict(title=dict(text="patch (sequence position)"), autorange="reversed", showgrid=False,
                                zeroline=False))
    return _figure([heat], layout)


def filters_figure(components: np.ndarray, explained: np.ndarray | None = None, cols: int = 7) -> go.Figure:
    """Principal components (k, C, P, P) of the patch-embedding filters E, each scaled to [0, 1]."""
    comp = _np(components).astype(np.float32)
    if comp.ndim == 3:
        comp = comp[:, None]
    if comp.ndim != 4:
        raise ValueError(f"expected components (k, C, P, P), got {comp.shape}")
    k, c, ph, pw = comp.shape
    flat = comp.reshape(k, -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    norm = (comp - lo[:, None, None, None]) / np.maximum(hi - lo, 1e-12)[:, None, None, None]
    if c not in (1, 3):
        norm = norm.mean(axis=1, keepdims=True)
    tiles = _to_uint8(norm.transpose(0, 2, 3, 1).reshape(k * ph, pw, -1)).reshape(k, ph, pw, 3)
    per_row = max(1, min(int(cols), k))
    gap = max(1, ph // 8)
    image = _tile(_wrap(tiles, per_row, _WHITE), gap=gap, fill=np.uint8(_WHITE))
    index = np.arange(k)
    cx = ((index % per_row) * (pw + gap) + (pw - 1) / 2).astype(np.float32)
    cy = ((index // per_row) * (ph + gap) + (ph - 1) / 2).astype(np.float32)
    if explained is not None:
        share = _np(explained).astype(np.float64).reshape(-1)[:k] * 100
        text = [f"component {i + 1}<br>{s:.1f}% of the variance" for i, s in enumerate(share)]
    else:
        text = [f"component {i + 1}" for i in range(k)]
    data = [dict(type="image", z=image, hoverinfo="skip"), dict(
        type="scatter", x=cx, y=cy, mode="markers", text=text, customdata=index.astype(np.int32), showlegend=False,
        marker=dict(size=12, color="rgba(0,0,0,0)", opacity=0), hovertemplate="%{text}<extra></extra>",
        name="components",
    )]
    if explained is not None:
        subtitle = f"top {k}: {float(share.sum()):.0f}% of variance; each on its own scale"
    else:
        subtitle = "ordered by variance; each on its own scale"
    title = "Principal components of E"
    # Tiles of about 60 px (at most 70): as wide as a page column allows, the height from the rows.
    scale = min((_COLUMN_WIDTH - 20) / image.shape[1], 70 / max(ph, pw))
    height = _top(title, subtitle) + image.shape[0] * scale + 12
    layout = _layout(title, max(200, height), subtitle=subtitle, hovermode="closest", margin=dict(b=12))
    return _figure(data, {**layout, **_hidden_axes()})


# --- tokens -------------------------------------------------------------------------------------


def token_matrix_figure(tokens: np.ndarray, max_dims: int | None = None) -> go.Figure:
    """The (N+1, D) token matrix, row 0 the [class] token, diverging colours centred at 0."""
    x = _matrix(tokens, "tokens (N+1, D)")
    t, d = x.shape
    dims = d if max_dims is None else max(1, min(d, int(max_dims)))
    z = _f32(x[:, :dims])
    finite = np.abs(z[np.isfinite(z)])
    m = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    m = round(max(m, 1e-6), 4)
    labels = _token_labels(t)
    heat = dict(
        type="heatmap", z=z, x0=0, dx=1, y=labels, colorscale=_scale(DIVERGING), zmid=0, zmin=-m, zmax=m,
        colorbar=_colorbar("value"),
        hovertemplate="%{y}<br>dimension %{x}: %{z:.3f}<extra></extra>",
    )
    frame = dict(type="rect", x0=-0.5, x1=dims - 0.5, y0=-0.5, y1=0.5, line=dict(color="black", width=2.5))
    subtitle = f"{t} tokens × {d} dimensions" + ("" if dims == d else f" (first {dims} shown)")
    subtitle += "; colours clipped at ±" + f"{m:.3g}"
    title = "The token sequence: one row per token"
    height = int(np.clip(5 * t + 190, 320, 700))
    bottom = 60  # x tick labels and title
    row_px = (height - _top(title, subtitle) - bottom) / max(t, 1)
    # [class] on row 0, then patch numbers every `step` rows, far enough apart (and from [class]) to read.
    step = next((s for s in (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 256, 500) if s * row_px >= 30), t)
    patches = list(range(t - 1)) if step == 1 else list(range(step, t - 1, step))
    ticktext = [CLASS_LABEL] + [f"patch {i}" for i in patches]
    tickvals = [labels[0]] + [labels[i + 1] for i in patches]
    layout = _layout(title, height, subtitle=subtitle, margin=dict(b=bottom), shapes=[frame],
                     xaxis=dict(title=dict(text="embedding dimension"), showgrid=False, zeroline=False),
                     yaxis=dict(title=dict(text="token"), type="category", autorange="reversed", tickmode="array",
                                tickvals=tickvals, ticktext=ticktext, showgrid=False, automargin=True))
    return _figure([heat], layout)


# --- maps over the image --------------------------------------------------------------------


def patch_map_figure(
    values: np.ndarray,
    image: np.ndarray | None = None,
    title: str = "",
    colorscale="Viridis",
    zmin=None,
    zmax=None,
    opacity: float = 0.6,
    colorbar_title: str = "",
    *,
    percent: bool = False,
) -> go.Figure:
    """A (gh, gw) map at patch resolution, laid over the image (each cell covers one patch).

    The image is drawn in grayscale underneath, so the map's colours are never confused with the
    image's own. Alone, the map gets patch row and column axes. The map is about 400 px, its colour
    bar centred under it. ``percent`` shows the values (e.g. attention probabilities) × 100 with a
    "%" on the colour bar and in the hover; ``zmin``/``zmax`` stay in the values' own units.
    """
    v = _np(values)
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 2:
        raise ValueError(f"expected a (gh, gw) map, got {v.shape}")
    gh, gw = v.shape
    factor = 100.0 if percent else 1.0
    z = _f32(v.astype(np.float64) * factor)
    lo, hi = _bounds(z, None if zmin is None else float(zmin) * factor, None if zmax is None else float(zmax) * factor)
    index = np.arange(gh * gw, dtype=np.int32).reshape(gh, gw)
    name = colorbar_title or "value"
    shown = "%{z:.2f}%" if percent else "%{z:.3f}"
    if image is None:
        aspect, left, bottom = gh / gw, 76, 58 + _BAR
    else:
        rgb = _to_uint8(image)
        h, w = rgb.shape[:2]
        aspect, left, bottom = h / w, 10, _BAR + 4
    top = _top(title)
    map_w = min(_COLUMN_WIDTH - left - 10, 400.0)
    map_h = map_w * aspect
    if map_h > 420:
        map_h = 420.0
        map_w = map_h / aspect
    bar = _hbar(colorbar_title, 0.75 * map_w, **({"ticksuffix": "%"} if percent else {}))
    heat = dict(
        type="heatmap", z=z, zmin=lo, zmax=hi, colorscale=_scale(colorscale), customdata=index, colorbar=bar,
        hoverongaps=False,
        hovertemplate=f"patch %{{customdata}}<br>{name} {shown}<extra></extra>",
    )
    height = top + map_h + bottom
    if image is None:
        layout = _layout(title, height, margin=dict(l=left, b=bottom),
                         xaxis=dict(title=dict(text="patch column"), showgrid=False, zeroline=False, constrain="domain"),
                         yaxis=dict(title=dict(text="patch row"), autorange="reversed", scaleanchor="x", scaleratio=1,
                                    showgrid=False, zeroline=False, constrain="domain"))
        return _figure([dict(x0=0, dx=1, y0=0, dy=1, **heat)], layout)
    # Luminance (ITU-R BT.601), kept as three equal channels of a uint8 image.
    gray = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    gray = np.repeat(np.clip(gray, 0, _WHITE).astype(np.uint8)[..., None], 3, axis=-1)
    ph, pw = h / gh, w / gw
    data = [dict(type="image", z=gray, hoverinfo="skip"),
            dict(x0=(pw - 1) / 2, dx=pw, y0=(ph - 1) / 2, dy=ph, opacity=float(opacity), **heat)]
    axes = _hidden_axes(dict(range=[-0.5, w - 0.5], constrain="domain"),
                        dict(range=[h - 0.5, -0.5], autorange=False, scaleanchor="x", scaleratio=1, constrain="domain"))
    return _figure(data, {**_layout(title, height, hovermode="closest", margin=dict(l=left, b=bottom)), **axes})


def _scaled(maps: np.ndarray, shared_scale: bool, zmin, zmax, title: str):
    """Float32 maps, min-max scaled per map unless ``shared_scale``; the colour range and the title."""
    data = maps.astype(np.float32)
    if not shared_scale:
        lo = np.nanmin(data, axis=(2, 3), keepdims=True)
        hi = np.nanmax(data, axis=(2, 3), keepdims=True)
        data = (data - lo) / np.maximum(hi - lo, 1e-12)
        zmin, zmax = 0.0, 1.0
        title = f"{title} (each map scaled to its own 0–1 range)" if title else "each map scaled to its own 0–1 range"
    return data, zmin, zmax, title


def _bar_length(map_w: float) -> float:
    return float(np.clip(0.75 * map_w, 160, 420))


def _maps_grid(
    maps: np.ndarray,
    row_ticks: list[str],
    col_ticks: list[str],
    row_names: list[str],
    col_names: list[str],
    title: str,
    shared_scale: bool,
    colorscale,
    zmin,
    zmax,
    x_title: str = "",
    y_title: str = "",
    colorbar_title: str = "",
    subtitle: str | None = None,
    width: float = _COLUMN_WIDTH,
    max_height: float = 900,
    max_tile: float = 170,
) -> go.Figure:
    """One heatmap of (R, C, h, w) maps with 1-cell NaN gaps; empty ``row_ticks`` hide the row labels.

    Square tiles, as large as ``width`` (nominal, px) and ``max_height`` allow, up to ``max_tile`` px;
    the figure is exactly as tall as its content."""
    r, c, h, w = maps.shape
    data, zmin, zmax, title = _scaled(maps, shared_scale, zmin, zmax, title)
    z = _f32(_tile(data, gap=1))
    lo, hi = _bounds(z, zmin, zmax)
    # Category axes carry the hover text: one short label per row and column of cells, not per cell.
    ycats, xcats = [], []
    for i in range(r):
        prefix = f"{row_names[i]}, " if row_names[i] else ""
        ycats += [f"{prefix}row {k}" for k in range(h)] + ([f"gap {i}"] if i < r - 1 else [])
    for j in range(c):
        xcats += [f"{col_names[j]}, col {k}" for k in range(w)] + ([f"gap {j}"] if j < c - 1 else [])
    show_rows = any(str(t) for t in row_ticks)
    tick_size = SMALL_SIZE if max(r, c) > 8 else FONT_SIZE
    on_top = r > 1  # column labels above a grid, under a single row
    x_space = 28 + (26 if x_title else 0)
    top = _top(title, subtitle) + (x_space if on_top else 0)
    bottom = _BAR + (0 if on_top else x_space)
    left = 10 + (_label_width(row_ticks, tick_size) if show_rows else 0) + (30 if y_title else 0)
    rows_cells, cols_cells = z.shape
    cell = min((width - left - 10) / cols_cells, (max_height - top - bottom) / rows_cells, max_tile / max(h, w))
    heat = dict(
        type="heatmap", z=z, x=xcats, y=ycats, zmin=lo, zmax=hi, colorscale=_scale(colorscale), hoverongaps=False,
        colorbar=_hbar(colorbar_title or ("scaled value" if not shared_scale else "value"), _bar_length(cols_cells * cell)),
        hovertemplate="%{y}<br>%{x}<br>value %{z:.3f}<extra></extra>",
    )
    xaxis = dict(type="category", tickmode="array", tickvals=[j * (w + 1) + (w - 1) / 2 for j in range(c)],
                 ticktext=col_ticks, showgrid=False, zeroline=False, constrain="domain",
                 tickfont=dict(size=tick_size), side="top" if on_top else "bottom", ticks="")
    yaxis = dict(type="category", tickmode="array", tickvals=[i * (h + 1) + (h - 1) / 2 for i in range(r)],
                 ticktext=row_ticks if show_rows else [], showticklabels=show_rows, autorange="reversed",
                 scaleanchor="x", scaleratio=1, showgrid=False, zeroline=False, constrain="domain",
                 tickfont=dict(size=tick_size), ticks="")
    if x_title:
        xaxis["title"] = dict(text=x_title)
    if y_title:
        yaxis["title"] = dict(text=y_title)
    layout = _layout(title, top + rows_cells * cell + bottom, subtitle=subtitle, margin=dict(l=left, t=top, b=bottom),
                     xaxis=xaxis, yaxis=yaxis)
    return _figure([heat], layout)


def _maps_wrapped(maps: np.ndarray, names: list[str], per_row: int, title: str, shared_scale: bool, colorscale,
                  zmin, zmax, width: float = _COLUMN_WIDTH, max_height: float = 900, max_tile: float = 170) -> go.Figure:
    """A single row of (1, C, h, w) maps wrapped onto rows of ``per_row``, each labelled above its tile."""
    _, c, h, w = maps.shape
    data, zmin, zmax, title = _scaled(maps, shared_scale, zmin, zmax, title)
    rows = math.ceil(c / per_row)
    tiles = _wrap(data[0], per_row, np.float32(np.nan))  # (rows, per_row, h, w)
    label_px = 24
    top = _top(title) + label_px
    bottom = _BAR
    cols_cells = per_row * (w + 1) - 1
    cell = min((width - 20) / cols_cells, max_tile / max(h, w))
    for _ in range(2):  # the gap between rows holds the labels, so it depends on the cell size
        row_gap = max(1, math.ceil(label_px / cell))
        rows_cells = rows * (h + row_gap) - row_gap
        cell = min(cell, (max_height - top - bottom) / rows_cells)
    z = _f32(_tile(tiles, gap=1, row_gap=row_gap))
    lo, hi = _bounds(z, zmin, zmax)
    text = np.full(z.shape, "", dtype=object)
    for t, name in enumerate(names):
        i, j = divmod(t, per_row)
        y0, x0 = i * (h + row_gap), j * (w + 1)
        for k in range(h):
            for m in range(w):
                text[y0 + k, x0 + m] = f"{name}, row {k}, col {m}"  # no <br>: JSON escapes "<" as 6 chars
    heat = dict(
        type="heatmap", z=z, x0=0, dx=1, y0=0, dy=1, text=text.tolist(), zmin=lo, zmax=hi,
        colorscale=_scale(colorscale), hoverongaps=False,
        colorbar=_hbar("scaled value" if not shared_scale else "value", _bar_length(cols_cells * cell)),
        hovertemplate="%{text}<br>value %{z:.3f}<extra></extra>",
    )
    labels = []
    for t, name in enumerate(names):
        i, j = divmod(t, per_row)
        labels.append(dict(x=j * (w + 1) + (w - 1) / 2, y=i * (h + row_gap) - 0.5, text=name, showarrow=False,
                           xref="x", yref="y", yanchor="bottom", yshift=2, font=dict(size=FONT_SIZE - 1)))
    layout = _layout(title, top + rows_cells * cell + bottom, margin=dict(t=top, b=bottom), annotations=labels)
    axes = _hidden_axes(dict(constrain="domain"), dict(autorange="reversed", scaleanchor="x", scaleratio=1, constrain="domain"))
    return _figure([heat], {**layout, **axes})


def maps_grid_figure(
    maps: np.ndarray,
    row_labels: list[str] | None,
    col_labels: list[str] | None,
    title: str = "",
    shared_scale: bool = True,
    colorscale="Viridis",
    zmin=None,
    zmax=None,
    *,
    wrap: int | None = 6,
    width: int | None = None,
) -> go.Figure:
    """(R, C, gh, gw) maps tiled into ONE heatmap with 1-cell NaN gaps, labelled by row and column.

    E.g. R = layers, C = heads. Hover shows the tile's row and column labels, the cell's row and
    column inside the map and the value. With ``shared_scale`` all tiles share one colour range
    (``zmin``/``zmax``, default the data range); otherwise each tile is min-max scaled to [0, 1].

    A single row without ``row_labels`` (all heads of one layer) has no row label, and more than
    ``wrap`` maps in it are wrapped onto several rows, each map labelled above it (None: never).
    The height follows the content: square tiles as large as ``width`` allows (the nominal width in
    px; default one page column for a single row, the whole page otherwise), at most 900 px in all.
    """
    m = _np(maps)
    if m.ndim == 3:
        m = m[None]
    if m.ndim != 4:
        raise ValueError(f"expected maps (R, C, gh, gw), got {m.shape}")
    r, c = m.shape[:2]
    single = r == 1 and row_labels is None
    rows = [""] if single else _unique(row_labels if row_labels is not None else [f"row {i + 1}" for i in range(r)])
    cols = _unique(col_labels if col_labels is not None else [f"column {j + 1}" for j in range(c)])
    if len(rows) != r or len(cols) != c:
        raise ValueError(f"{len(rows)} row labels and {len(cols)} column labels for a {r}×{c} grid")
    nominal = float(width) if width else (_COLUMN_WIDTH if r == 1 else _PAGE_WIDTH)
    if single and wrap is not None and c > max(1, int(wrap)):
        lines = math.ceil(c / max(1, int(wrap)))
        return _maps_wrapped(m, cols, math.ceil(c / lines), title, shared_scale, colorscale, zmin, zmax, nominal)
    return _maps_grid(m, rows, cols, rows, cols, title, shared_scale, colorscale, zmin, zmax, width=nominal)


def position_similarity_figure(similarity: np.ndarray, grid: tuple[int, int], *, max_tiles: int = 16) -> go.Figure:
    """Paper Fig. 7 centre: tile (r, c) is the cosine similarity of the position embedding of patch
    (r, c) to that of every other patch, as a (gh, gw) map, all on one -1..1 scale.

    Grids larger than ``max_tiles`` per side show evenly spaced input positions only.
    """
    s = _np(similarity)
    gh, gw = int(grid[0]), int(grid[1])
    n = gh * gw
    if s.shape != (n, n):
        raise ValueError(f"expected an ({n}, {n}) similarity for a {gh}×{gw} grid, got {s.shape}")
    maps = s.reshape(gh, gw, gh, gw)
    rows = np.unique(np.linspace(0, gh - 1, min(gh, max_tiles)).round().astype(int))
    cols = np.unique(np.linspace(0, gw - 1, min(gw, max_tiles)).round().astype(int))
    maps = maps[rows][:, cols]
    subtitle = "each tile: one position against all the others"
    if len(rows) < gh or len(cols) < gw:
        subtitle += f"<br>{len(rows)}×{len(cols)} of the {gh}×{gw} positions shown"
    return _maps_grid(
        maps, [str(i) for i in rows], [str(j) for j in cols],
        [f"input row {i}" for i in rows], [f"input col {j}" for j in cols],
        "Position embedding similarity", True, SEQUENTIAL, -1.0, 1.0,
        x_title="input patch column", y_title="input patch row", colorbar_title="cosine similarity",
        subtitle=subtitle,
    )


# --- attention ----------------------------------------------------------------------------------


def attention_matrix_figure(attention: np.ndarray, title: str = "") -> go.Figure:
    """The full (T, T) attention matrix of one head: rows are queries, columns keys, token 0 [class]."""
    a = _np(attention)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square (T, T) attention matrix, got {a.shape}")
    t = a.shape[0]
    z = _f32(a)
    labels = _token_labels(t)
    lo, hi = _bounds(z, 0.0, None)
    heat = dict(
        type="heatmap", z=z, x=labels, y=labels, zmin=lo, zmax=hi, colorscale=_scale(SEQUENTIAL),
        colorbar=_colorbar("attention"),
        hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.4f}<extra></extra>",
    )
    sep = dict(color="white", width=1.5)
    shapes = [dict(type="line", x0=0.5, x1=0.5, y0=-0.5, y1=t - 0.5, line=sep),
              dict(type="line", x0=-0.5, x1=t - 0.5, y0=0.5, y1=0.5, line=sep)]
    tickvals, ticktext = _token_ticks(t)
    ticks = dict(type="category", tickmode="array", tickvals=[labels[i] for i in tickvals], ticktext=ticktext,
                 showgrid=False, zeroline=False, constrain="domain")
    layout = _layout(title or "Attention: every query token against every key token",
                     _grid_height(t, t, extra=150, max_cell=24), subtitle="each row sums to 1", shapes=shapes,
                     xaxis=dict(title=dict(text="key (attended to)"), **ticks),
                     yaxis=dict(title=dict(text="query (attending)"), autorange="reversed", scaleanchor="x", scaleratio=1,
                                **ticks))
    return _figure([heat], layout)


def attention_distance_figure(distances: np.ndarray, selected: tuple[int, int] | None = None,
                              uniform: float | None = None) -> go.Figure:
    """Paper Fig. 7 right: mean attention distance (pixels) of every head against network depth.

    One trace per head (a legend entry each), points at x = layer (1-based), each head shifted a
    little sideways so that heads at the same distance (an untrained model) stay apart and
    clickable; ``customdata`` is [layer index, head index], 0-based, a plain list of int pairs (so
    a Streamlit selection returns a list), for click selection. ``selected`` (0-based) is ringed.
    ``uniform`` (pixels), if given, is drawn as a dashed horizontal line labelled "uniform attention":
    the distance of a head that attends equally to every patch, the reference for local and global.
    """
    d = _np(distances)
    if d.ndim == 3 and d.shape[1] == 1:  # (L, B=1, H) from analysis.attention_distances
        d = d[:, 0]
    if d.ndim != 2:
        raise ValueError(f"expected distances (L, H), got {d.shape}")
    layers, heads = d.shape
    step = min(0.15, 0.7 / max(heads - 1, 1))  # all heads of a layer within ±0.35 of it

    def jittered(h: int) -> np.ndarray:
        return np.round(np.arange(1, layers + 1) + (h - (heads - 1) / 2) * step, 4)

    data = []
    size = 12 if heads <= 8 else 10
    for h in range(heads):
        data.append(dict(
            type="scatter", x=jittered(h).tolist(), y=_f32(d[:, h], 2), mode="markers", name=f"head {h + 1}",
            marker=dict(size=size, color=HEAD_COLOURS[h % len(HEAD_COLOURS)], line=dict(width=0.5, color="white")),
            customdata=np.stack([np.arange(layers), np.full(layers, h)], axis=1).astype(int).tolist(),
            text=[f"layer {l + 1}, head {h + 1}" for l in range(layers)],
            hovertemplate="%{text}<br>mean distance %{y:.1f} px<extra></extra>",
        ))
    if selected is not None:
        sl, sh = int(selected[0]), int(selected[1])
        if not (0 <= sl < layers and 0 <= sh < heads):
            raise ValueError(f"selected {selected} is outside {layers} layers × {heads} heads")
        data.append(dict(
            type="scatter", x=[float(jittered(sh)[sl])], y=[round(float(d[sl, sh]), 2)], mode="markers", name="selected",
            showlegend=False, marker=dict(size=size + 9, symbol="circle-open", color="black", line=dict(width=2.5)),
            hoverinfo="skip",
        ))
    finite = d[np.isfinite(d)]
    top = float(finite.max()) * 1.15 if finite.size else 1.0  # headroom for the selection ring
    extra = {}
    if uniform is not None:
        u = round(float(uniform), 2)
        top = max(top, u * 1.12)  # room for the line's label
        extra["shapes"] = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=u, y1=u, layer="below",
                                line=dict(color="#555555", dash="dash", width=2),
                                label=dict(text=f"uniform attention: {u:.1f} px", textposition="end", yanchor="bottom",
                                           font=dict(size=SMALL_SIZE, color="#555555")))]
    layout = _layout("How far each head looks", 470, subtitle="mean attention distance per head; click a point to select it",
                     hovermode="closest", clickmode="event+select", legend=dict(title=dict(text="head"), font=dict(size=13)),
                     **extra,
                     xaxis=dict(title=dict(text="Network depth (layer)"), tickmode="linear", tick0=1,
                                dtick=1 if layers <= 24 else 2, range=[0.5, layers + 0.5]),
                     yaxis=dict(title=dict(text="Mean attention distance (pixels)"), range=[0, max(top, 1e-6)]))
    return _figure(data, layout)


# --- tokens through the network -------------------------------------------------------------


def token_norms_figure(norms: np.ndarray) -> go.Figure:
    """L2 norms (L+1, N+1) of the tokens after each block: [class] as a line, patches as median + band."""
    x = _np(norms)
    if x.ndim == 3 and x.shape[1] == 1:  # (L+1, B=1, N+1) from analysis.token_norms
        x = x[:, 0]
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"expected norms (L+1, N+1), got {x.shape}")
    steps = np.arange(x.shape[0], dtype=np.int32)
    patches = x[:, 1:].astype(np.float64)
    q10, q50, q90 = (np.percentile(patches, q, axis=1) for q in (10, 50, 90))
    band = "rgba(31,119,180,0.2)"
    data = [
        dict(type="scatter", x=steps, y=_f32(q10, 3), mode="lines", line=dict(width=0, color=band), name="patches 10%",
                   showlegend=False, hovertemplate="after block %{x}<br>patches, 10th percentile %{y:.2f}<extra></extra>"),
        dict(type="scatter", x=steps, y=_f32(q90, 3), mode="lines", line=dict(width=0, color=band), fill="tonexty", fillcolor=band,
                   name="patches, 10–90%", hovertemplate="after block %{x}<br>patches, 90th percentile %{y:.2f}<extra></extra>"),
        dict(type="scatter", x=steps, y=_f32(q50, 3), mode="lines+markers", line=dict(width=3, color="#1f77b4"),
                   name="patches, median", hovertemplate="after block %{x}<br>patches, median %{y:.2f}<extra></extra>"),
        dict(type="scatter", x=steps, y=_f32(patches.max(axis=1), 3), mode="lines", line=dict(width=1.5, dash="dot", color="#7f7f7f"),
                   name="patches, largest", hovertemplate="after block %{x}<br>largest patch token %{y:.2f}<extra></extra>"),
        dict(type="scatter", x=steps, y=_f32(x[:, 0], 3), mode="lines+markers", line=dict(width=3, color="#d62728"),
                   name=CLASS_LABEL, hovertemplate="after block %{x}<br>[class] token %{y:.2f}<extra></extra>"),
    ]
    layout = _layout("How long the token vectors are", 450, subtitle="L2 norm of each token in the residual stream",
                     hovermode="x unified", legend=dict(orientation="h", y=-0.22, x=0),
                     xaxis=dict(title=dict(text="after block l (0 = embeddings z₀)"), tickmode="linear", tick0=0,
                                dtick=1 if x.shape[0] <= 25 else 2),
                     yaxis=dict(title=dict(text="norm ‖z‖"), rangemode="tozero"))
    return _figure(data, layout)


def logit_lens_figure(probs: np.ndarray, class_names: list[str], top: int = 5) -> go.Figure:
    """Logit lens: the head read off every layer's [class] token, (L+1, classes) probabilities.

    Rows: the ``top`` most probable classes after the last block, then any class that is top-1
    at some earlier layer. Columns: z0 and the output of each block.
    """
    p = _np(probs)
    if p.ndim == 3 and p.shape[1] == 1:  # (L+1, B=1, classes)
        p = p[:, 0]
    if p.ndim != 2:
        raise ValueError(f"expected probabilities (L+1, classes), got {p.shape}")
    steps, k = p.shape
    names = [str(n) for n in class_names] if class_names is not None else [f"class {i}" for i in range(k)]
    if len(names) < k:
        names += [f"class {i}" for i in range(len(names), k)]
    chosen = [int(i) for i in np.argsort(-p[-1], kind="stable")[: max(1, min(int(top), k))]]
    for i in np.argmax(p, axis=1):
        if int(i) not in chosen:
            chosen.append(int(i))
    labels = _unique([_short(names[i]) for i in chosen])
    z = _f32(p[:, chosen].T, 4)
    cols = ["z₀"] + [str(i) for i in range(1, steps)]
    heat = dict(
        type="heatmap", z=z, x=cols, y=labels, zmin=0, zmax=1, colorscale=_scale("Blues"),
        colorbar=_colorbar("probability", tickformat=".0%"),
        texttemplate="%{z:.0%}", textfont=dict(size=12 if steps > 13 else 14),
        hovertemplate="%{y}<br>after block %{x}: %{z:.1%}<extra></extra>",
    )
    layout = _layout("Logit lens: the prediction at each depth", max(300, 42 * len(chosen) + 190),
                     subtitle=f"the top {len(chosen[:top])} at the end, and any earlier top-1",
                     xaxis=dict(title=dict(text="after block l (0 = embeddings)"), type="category", showgrid=False),
                     yaxis=dict(type="category", autorange="reversed", showgrid=False))
    return _figure([heat], layout)


def top_k_figure(probs: np.ndarray, class_names: list[str], k: int = 5) -> go.Figure:
    """The k most probable classes as horizontal bars, highest on top, labelled in percent."""
    p = _np(probs).astype(np.float64)
    if p.ndim == 2 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 1:
        raise ValueError(f"expected a vector of class probabilities, got {p.shape}")
    k = max(1, min(int(k), p.shape[0]))
    order = np.argsort(-p, kind="stable")[:k]
    names = [str(class_names[i]) if class_names is not None and i < len(class_names) else f"class {i}" for i in order]
    labels = _unique([_short(n, 40) for n in names])
    values = np.round(p[order], 4)
    bars = dict(
        type="bar", x=values, y=labels, orientation="h", marker=dict(color=["#1f77b4"] + ["#9ecae1"] * (k - 1)),
        texttemplate="%{x:.1%}", textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    )
    layout = _layout(f"Top {k} predictions", 110 + 48 * k, margin=dict(r=70),  # room for "100.0%" beside a full bar
                     xaxis=dict(title=dict(text="probability"), tickformat=".0%",
                                range=[0, min(1.0, float(values.max()) * 1.2 + 0.05)]),
                     yaxis=dict(type="category", autorange="reversed", showgrid=False))
    return _figure([bars], layout)


# --- playground and training ------------------------------------------------------------------


def scaling_figure(image_sizes: list[int], patch_size: int) -> go.Figure:
    """Sequence length N+1 (N = (S/P)² patches and [class]) and attention cost (N+1)² per head per
    layer against image side S, on log axes labelled at powers of ten."""
    sizes = np.array(sorted({int(s) for s in image_sizes}), dtype=np.int64)
    p = int(patch_size)
    n = (sizes // p) ** 2
    tokens = n + 1
    cost = tokens ** 2
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14,
                        subplot_titles=("sequence length N+1", "attention entries (N+1)²"))
    fig.add_trace(go.Scatter(x=sizes, y=tokens, mode="lines+markers", name="N+1", line=dict(width=3), customdata=n,
                             hovertemplate="%{x}×%{x} px → N = %{customdata:,} patches + [class] = %{y:,} tokens"
                                           "<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=sizes, y=cost, mode="lines+markers", name="(N+1)²", line=dict(width=3, color="#d62728"),
                             hovertemplate="%{x}×%{x} px → %{y:,} attention weights per head and layer<extra></extra>"),
                  row=1, col=2)
    title, subtitle = f"Cost of attention with {p}×{p} patches", "double the image side: 4× the tokens, 16× the attention"
    # Room between the subtitle and the subplot titles (annotations just above each plot area).
    fig.update_layout(**_layout(title, 460, subtitle=subtitle, showlegend=False, margin=dict(t=_top(title, subtitle) + 34, b=10)))
    fig.update_annotations(font_size=FONT_SIZE)
    fig.update_xaxes(title="image side S (pixels)")
    log = dict(type="log", dtick=1, exponentformat="power", showexponent="all", minor=dict(showgrid=False))
    fig.update_yaxes(title="tokens N+1 (N patches + [class])", row=1, col=1, **log)
    fig.update_yaxes(title="entries per head and layer", row=1, col=2, **log)
    return fig


def training_curve_figure(history: list[dict]) -> go.Figure:
    """Loss (left) and accuracy (right) per epoch; keys epoch, train_loss, train_acc, test_acc and,
    if present, neighbour_score (share of positions whose nearest embedding is a grid neighbour)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=("loss", "accuracy"))
    history = list(history or [])
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]

    def series(key):
        pairs = [(e, h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]
        return [e for e, _ in pairs], [round(float(v), 4) for _, v in pairs]

    x, y = series("train_loss")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="train loss", line=dict(width=3, color="#1f77b4"),
                             hovertemplate="epoch %{x}<br>train loss %{y:.3f}<extra></extra>"), row=1, col=1)
    accuracy = [("train_acc", "train accuracy", "#1f77b4", "solid"), ("test_acc", "test accuracy", "#d62728", "solid"),
                ("neighbour_score", "position neighbour score", "#2ca02c", "dash")]
    biggest = 0.0
    for key, name, colour, dash in accuracy:
        x, y = series(key)
        if key != "train_acc" and not x:
            continue
        biggest = max([biggest, *y])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line=dict(width=3, color=colour, dash=dash),
                                 hovertemplate=f"epoch %{{x}}<br>{name} %{{y:.1%}}<extra></extra>"), row=1, col=2)
    fig.update_layout(**_layout("Training", 420, legend=dict(orientation="h", y=-0.25, x=0), hovermode="x unified"))
    fig.update_annotations(font_size=FONT_SIZE)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="cross-entropy", rangemode="tozero", row=1, col=1)
    if biggest <= 1.0:
        fig.update_yaxes(title="share correct", tickformat=".0%", range=[0, 1.02], row=1, col=2)
    else:
        fig.update_yaxes(title="share correct", rangemode="tozero", row=1, col=2)
    if not history:
        fig.add_annotation(text="no training yet", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                           font=dict(size=FONT_SIZE + 2, color="#777"))
    return fig


def figure_to_png(fig: go.Figure) -> bytes | None:
    """PNG bytes of ``fig`` when kaleido is installed (and can render), else None."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return None
    try:
        return fig.to_image(format="png")
    except Exception:  # kaleido present but unable to render (e.g. no browser for kaleido 1.x)
        return None
