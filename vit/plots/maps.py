"""Maps at patch resolution: one map over the image, and grids of maps (layers × heads, positions).

Rows, columns and patches are numbered from 1 on screen (patch 1 is the top-left one, token 1).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from vit.i18n import gettext as _

from ._base import (
    _COLUMN_WIDTH, _PAGE_WIDTH, _WHITE, _X_AXIS, FONT_SIZE, SMALL_SIZE, TICK_SIZE, _axis, _bar_length,
    _bar_space, _bounds, _end_ticks, _f32, _figure, _hbar, _hidden_axes, _hover, _int_ticks, _label_width,
    _layout, _np, _scale, _tickfont, _tile, _to_uint8, _top, _unique, _wrap,
)


def _attention_name() -> str:
    """The one name attention weights carry in every figure (their unit is %)."""
    return _("attention weight")


def _value_name() -> str:
    return _("value")


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
    attention: bool = False,
) -> go.Figure:
    """A (gh, gw) map at patch resolution, laid over the image (each cell covers one patch).

    The image is drawn in grayscale underneath, so the map's colours are never confused with the
    image's own. Alone, the map gets patch row and column axes, numbered from 1 with integer ticks.
    The map is about 400 px, its colour bar centred under it with its title on top. ``percent``
    shows the values (e.g. attention probabilities) × 100 with a "%" on the colour bar and in the
    hover; ``zmin``/``zmax`` stay in the values' own units. A fixed range (both ``zmin`` and
    ``zmax``, e.g. -1 and 1 for a cosine similarity) gets colour-bar ticks at both of its ends.

    ``attention=True`` is the one way attention weights are shown everywhere: in %, from 0 (unless
    ``zmin`` says otherwise), the colour bar titled "attention weight" (``colorbar_title`` is then
    ignored). The heatmap's ``customdata`` is each cell's patch number (1-based), for the hover.
    """
    v = _np(values)
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 2:
        raise ValueError(f"expected a (gh, gw) map, got {v.shape}")
    if attention:
        percent, colorbar_title = True, _attention_name()
        zmin = 0.0 if zmin is None else zmin
    gh, gw = v.shape
    factor = 100.0 if percent else 1.0
    z = _f32(v.astype(np.float64) * factor)
    lo, hi = _bounds(z, None if zmin is None else float(zmin) * factor, None if zmax is None else float(zmax) * factor)
    number = np.arange(1, gh * gw + 1, dtype=np.int32).reshape(gh, gw)
    name = colorbar_title or _value_name()
    shown = "%{z:.2f}%" if percent else "%{z:.3f}"
    bar_space = _bar_space(colorbar_title)
    if image is None:
        aspect, left, bottom = gh / gw, 76, _X_AXIS + bar_space
    else:
        rgb = _to_uint8(image)
        h, w = rgb.shape[:2]
        aspect, left, bottom = h / w, 10, bar_space + 4
    top = _top(title)
    map_w = min(_COLUMN_WIDTH - left - 10, 400.0)
    map_h = map_w * aspect
    if map_h > 420:
        map_h = 420.0
        map_w = map_h / aspect
    ticks = _end_ticks(lo, hi) if zmin is not None and zmax is not None else {}
    bar = _hbar(colorbar_title, 0.75 * map_w, **ticks, **({"ticksuffix": "%"} if percent else {}))
    heat = dict(
        type="heatmap", z=z, zmin=lo, zmax=hi, colorscale=_scale(colorscale), customdata=number, colorbar=bar,
        hoverongaps=False,
        hovertemplate=_hover(_("patch {n}").format(n="%{customdata}"), f"{name} {shown}"),
    )
    height = top + map_h + bottom
    if image is None:
        layout = _layout(title, height, margin=dict(l=left, t=top, b=bottom),
                         xaxis=_axis(_("patch column"), showgrid=False, zeroline=False, constrain="domain",
                                     **_int_ticks(gw)),
                         yaxis=_axis(_("patch row"), autorange="reversed", scaleanchor="x", scaleratio=1,
                                     showgrid=False, zeroline=False, constrain="domain", **_int_ticks(gh)))
        return _figure([dict(x0=1, dx=1, y0=1, dy=1, **heat)], layout)
    # Luminance (ITU-R BT.601), kept as three equal channels of a uint8 image.
    gray = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    gray = np.repeat(np.clip(gray, 0, _WHITE).astype(np.uint8)[..., None], 3, axis=-1)
    ph, pw = h / gh, w / gw
    data = [dict(type="image", z=gray, hoverinfo="skip"),
            dict(x0=(pw - 1) / 2, dx=pw, y0=(ph - 1) / 2, dy=ph, opacity=float(opacity), **heat)]
    axes = _hidden_axes(dict(range=[-0.5, w - 0.5], constrain="domain"),
                        dict(range=[h - 0.5, -0.5], autorange=False, scaleanchor="x", scaleratio=1, constrain="domain"))
    return _figure(data, {**_layout(title, height, hovermode="closest", margin=dict(l=left, t=top, b=bottom)), **axes})


def _scaled(maps: np.ndarray, shared_scale: bool, zmin, zmax, title: str):
    """Float32 maps, min-max scaled per map unless ``shared_scale``; the colour range and the title."""
    data = maps.astype(np.float32)
    if not shared_scale:
        lo = np.nanmin(data, axis=(2, 3), keepdims=True)
        hi = np.nanmax(data, axis=(2, 3), keepdims=True)
        data = (data - lo) / np.maximum(hi - lo, 1e-12)
        zmin, zmax = 0.0, 1.0
        title = _("{title} (each map scaled to its own 0–1 range)").format(title=title) if title \
            else _("each map scaled to its own 0–1 range")
    return data, zmin, zmax, title


def _bar_of(shared_scale: bool, colorbar_title: str, percent: bool, attention: bool) -> tuple[str, bool]:
    """The colour bar's title and whether values are shown in %: attention in % on a shared scale,
    a scaled value (0–1) when each map has its own range."""
    if not shared_scale:
        return (_("scaled attention") if attention else _("scaled value")), False
    if attention:
        return _attention_name(), True
    return colorbar_title or _value_name(), percent


def _prepared(maps, shared_scale, zmin, zmax, title, colorbar_title, percent, attention):
    """What both map grids start from: whether the range is fixed, the colour bar's title,
    whether values show as %, and the maps scaled as :func:`_scaled` does (attention from 0)."""
    fixed = zmin is not None and zmax is not None
    bar_title, percent = _bar_of(shared_scale, colorbar_title, percent, attention)
    if attention and shared_scale and zmin is None:
        zmin = 0.0
    data, zmin, zmax, title = _scaled(maps, shared_scale, zmin, zmax, title)
    return fixed, bar_title, percent, data, zmin, zmax, title


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
    percent: bool = False,
    attention: bool = False,
) -> go.Figure:
    """One heatmap of (R, C, h, w) maps with 1-cell NaN gaps; empty ``row_ticks`` hide the row labels.

    Square tiles, as large as ``width`` (nominal, px) and ``max_height`` allow, up to ``max_tile`` px;
    the figure is exactly as tall as its content. A fixed range (``zmin`` and ``zmax``) gets
    colour-bar ticks at both ends."""
    r, c, h, w = maps.shape
    fixed, bar_title, percent, data, zmin, zmax, title = _prepared(maps, shared_scale, zmin, zmax, title,
                                                                   colorbar_title, percent, attention)
    factor = 100.0 if percent else 1.0
    z = _f32(_tile(data.astype(np.float64) * factor, gap=1))
    lo, hi = _bounds(z, None if zmin is None else zmin * factor, None if zmax is None else zmax * factor)
    # Category axes carry the hover text: one short label per row and column of cells, not per cell.
    rows_in_map = [_("row {k}").format(k=k + 1) for k in range(h)]
    cols_in_map = [_("col {k}").format(k=k + 1) for k in range(w)]
    ycats, xcats = [], []
    for i in range(r):
        prefix = f"{row_names[i]}, " if row_names[i] else ""
        ycats += [prefix + label for label in rows_in_map] + ([f"gap {i}"] if i < r - 1 else [])
    for j in range(c):
        xcats += [f"{col_names[j]}, {label}" for label in cols_in_map] + ([f"gap {j}"] if j < c - 1 else [])
    show_rows = any(str(t) for t in row_ticks)
    tick_size = SMALL_SIZE if max(r, c) > 8 else TICK_SIZE
    on_top = r > 1  # column labels above a grid, under a single row
    x_space = 30 + (26 if x_title else 0)
    top = _top(title, subtitle) + (x_space if on_top else 0)
    bottom = _bar_space(bar_title) + (0 if on_top else x_space)
    left = 10 + (_label_width(row_ticks, tick_size) if show_rows else 0) + (30 if y_title else 0)
    rows_cells, cols_cells = z.shape
    cell = min((width - left - 10) / cols_cells, (max_height - top - bottom) / rows_cells, max_tile / max(h, w))
    ticks = _end_ticks(lo, hi) if fixed or not shared_scale else {}
    shown = "%{z:.2f}%" if percent else "%{z:.3f}"
    heat = dict(
        type="heatmap", z=z, x=xcats, y=ycats, zmin=lo, zmax=hi, colorscale=_scale(colorscale), hoverongaps=False,
        colorbar=_hbar(bar_title, _bar_length(cols_cells * cell), **ticks, **({"ticksuffix": "%"} if percent else {})),
        hovertemplate=_hover("%{y}", "%{x}", f"{bar_title} {shown}"),
    )
    xaxis = dict(type="category", tickmode="array", tickvals=[j * (w + 1) + (w - 1) / 2 for j in range(c)],
                 ticktext=col_ticks, showgrid=False, zeroline=False, constrain="domain",
                 tickfont=_tickfont(tick_size), side="top" if on_top else "bottom", ticks="")
    yaxis = dict(type="category", tickmode="array", tickvals=[i * (h + 1) + (h - 1) / 2 for i in range(r)],
                 ticktext=row_ticks if show_rows else [], showticklabels=show_rows, autorange="reversed",
                 scaleanchor="x", scaleratio=1, showgrid=False, zeroline=False, constrain="domain",
                 tickfont=_tickfont(tick_size), ticks="")
    if x_title:
        xaxis["title"] = dict(text=x_title)
    if y_title:
        yaxis["title"] = dict(text=y_title)
    layout = _layout(title, top + rows_cells * cell + bottom, subtitle=subtitle, margin=dict(l=left, t=top, b=bottom),
                     xaxis=xaxis, yaxis=yaxis)
    return _figure([heat], layout)


def _maps_wrapped(maps: np.ndarray, names: list[str], per_row: int, title: str, shared_scale: bool, colorscale,
                  zmin, zmax, width: float = _COLUMN_WIDTH, max_height: float = 900, max_tile: float = 170,
                  colorbar_title: str = "", percent: bool = False, attention: bool = False) -> go.Figure:
    """A single row of (1, C, h, w) maps wrapped onto rows of ``per_row``, each labelled above its tile."""
    c, h, w = maps.shape[1:]
    fixed, bar_title, percent, data, zmin, zmax, title = _prepared(maps, shared_scale, zmin, zmax, title,
                                                                   colorbar_title, percent, attention)
    factor = 100.0 if percent else 1.0
    rows = math.ceil(c / per_row)
    tiles = _wrap(data[0], per_row, np.float32(np.nan))  # (rows, per_row, h, w)
    label_px = 24
    top = _top(title) + label_px
    bottom = _bar_space(bar_title)
    cols_cells = per_row * (w + 1) - 1
    cell = min((width - 20) / cols_cells, max_tile / max(h, w))
    for _i in range(2):  # the gap between rows holds the labels, so it depends on the cell size
        row_gap = max(1, math.ceil(label_px / cell))
        rows_cells = rows * (h + row_gap) - row_gap
        cell = min(cell, (max_height - top - bottom) / rows_cells)
    z = _f32(_tile(tiles.astype(np.float64) * factor, gap=1, row_gap=row_gap))
    lo, hi = _bounds(z, None if zmin is None else zmin * factor, None if zmax is None else zmax * factor)
    text = np.full(z.shape, "", dtype=object)
    rows_in_map = [_("row {k}").format(k=k + 1) for k in range(h)]
    cols_in_map = [_("col {k}").format(k=m + 1) for m in range(w)]
    for t, name in enumerate(names):
        i, j = divmod(t, per_row)
        y0, x0 = i * (h + row_gap), j * (w + 1)
        for k in range(h):
            for m in range(w):
                text[y0 + k, x0 + m] = f"{name}, {rows_in_map[k]}, {cols_in_map[m]}"  # no <br>: JSON escapes "<"
    ticks = _end_ticks(lo, hi) if fixed or not shared_scale else {}
    shown = "%{z:.2f}%" if percent else "%{z:.3f}"
    heat = dict(
        type="heatmap", z=z, x0=0, dx=1, y0=0, dy=1, text=text.tolist(), zmin=lo, zmax=hi,
        colorscale=_scale(colorscale), hoverongaps=False,
        colorbar=_hbar(bar_title, _bar_length(cols_cells * cell), **ticks, **({"ticksuffix": "%"} if percent else {})),
        hovertemplate=_hover("%{text}", f"{bar_title} {shown}"),
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
    colorbar_title: str = "",
    percent: bool = False,
    attention: bool = False,
) -> go.Figure:
    """(R, C, gh, gw) maps tiled into ONE heatmap with 1-cell NaN gaps, labelled by row and column.

    E.g. R = layers, C = heads. Hover shows the tile's row and column labels, the cell's row and
    column inside the map (from 1) and the value. With ``shared_scale`` all tiles share one colour
    range (``zmin``/``zmax``, default the data range); otherwise each tile is min-max scaled to [0, 1].

    ``attention=True`` shows attention weights as every figure does: in % from 0, the colour bar
    titled "attention weight" (per-map scaled maps: "scaled attention", 0–1). Otherwise
    ``colorbar_title`` (default "value") names the values and ``percent`` shows them × 100 in %.

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
    rows = [""] if single else _unique(row_labels if row_labels is not None
                                       else [_("row {k}").format(k=i + 1) for i in range(r)])
    cols = _unique(col_labels if col_labels is not None else [_("column {k}").format(k=j + 1) for j in range(c)])
    if len(rows) != r or len(cols) != c:
        raise ValueError(f"{len(rows)} row labels and {len(cols)} column labels for a {r}×{c} grid")
    nominal = float(width) if width else (_COLUMN_WIDTH if r == 1 else _PAGE_WIDTH)
    bar = dict(colorbar_title=colorbar_title, percent=percent, attention=attention)
    if single and wrap is not None and c > max(1, int(wrap)):
        lines = math.ceil(c / max(1, int(wrap)))
        return _maps_wrapped(m, cols, math.ceil(c / lines), title, shared_scale, colorscale, zmin, zmax, nominal, **bar)
    return _maps_grid(m, rows, cols, rows, cols, title, shared_scale, colorscale, zmin, zmax, width=nominal, **bar)
