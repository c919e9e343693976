"""Self-attention: one head's full matrix, and how far every head looks (paper Fig. 7 right).

Attention weights are shown in % everywhere, with the colour bar titled "attention weight" (see
:func:`vit.plots.patch_map_figure` and :func:`vit.plots.maps_grid_figure` with ``attention=True``).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vit.i18n import gettext as _

from ._base import (
    _X_AXIS, HEAD_COLOURS, SEQUENTIAL, SMALL_SIZE, TICK_SIZE, _axis, _bar_space, _bounds, _f32, _figure, _grid_height, _hbar,
    _hover, _layout, _np, _scale, _token_labels, _token_ticks,
)
from .maps import _attention_name


def attention_matrix_figure(attention: np.ndarray, title: str = "") -> go.Figure:
    """The full (T, T) attention matrix of one head: rows are queries, columns keys, token 0 [class],
    token i patch i. Weights in % (each row sums to 100%), the colour scale from 0."""
    a = _np(attention)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square (T, T) attention matrix, got {a.shape}")
    t = a.shape[0]
    z = _f32(a.astype(np.float64) * 100, 3)
    labels = _token_labels(t)
    lo, hi = _bounds(z, 0.0, None)
    name = _attention_name()
    heat = dict(
        type="heatmap", z=z, x=labels, y=labels, zmin=lo, zmax=hi, colorscale=_scale(SEQUENTIAL),
        colorbar=_hbar(name, ticksuffix="%"),
        hovertemplate=_hover(_("query {token}").format(token="%{y}"), _("key {token}").format(token="%{x}"),
                             f"{name} %{{z:.2f}}%"),
    )
    sep = dict(color="white", width=1.5)
    shapes = [dict(type="line", x0=0.5, x1=0.5, y0=-0.5, y1=t - 0.5, line=sep),
              dict(type="line", x0=-0.5, x1=t - 0.5, y0=0.5, y1=0.5, line=sep)]
    tickvals, ticktext = _token_ticks(t)
    tick = SMALL_SIZE if t > 30 else TICK_SIZE  # dense token axes: the smallest readable labels
    ticks = dict(type="category", tickmode="array", tickvals=[labels[i] for i in tickvals], ticktext=ticktext,
                 showgrid=False, zeroline=False, constrain="domain")
    bottom = _X_AXIS + _bar_space(name)
    layout = _layout(title or _("Attention: every query token against every key token"),
                     _grid_height(t, t, extra=150, max_cell=24) + bottom - 60, subtitle=_("each row sums to 100%"),
                     shapes=shapes, margin=dict(b=bottom),
                     xaxis=_axis(_("key (attended to)"), tick, **ticks),
                     yaxis=_axis(_("query (attending)"), tick, autorange="reversed", scaleanchor="x", scaleratio=1, **ticks))
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
    hover = _hover("%{text}", _("mean distance {d} px").format(d="%{y:.1f}"))
    for h in range(heads):
        data.append(dict(
            type="scatter", x=jittered(h).tolist(), y=_f32(d[:, h], 2), mode="markers",
            name=_("head {n}").format(n=h + 1),
            marker=dict(size=size, color=HEAD_COLOURS[h % len(HEAD_COLOURS)], line=dict(width=0.5, color="white")),
            customdata=np.stack([np.arange(layers), np.full(layers, h)], axis=1).astype(int).tolist(),
            text=[_("layer {l}, head {h}").format(l=l + 1, h=h + 1) for l in range(layers)],
            hovertemplate=hover,
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
                                label=dict(text=_("uniform attention: {d} px").format(d=f"{u:.1f}"), textposition="end",
                                           yanchor="bottom", font=dict(size=SMALL_SIZE, color="#555555")))]
    layout = _layout(_("How far each head looks"), 470,
                     subtitle=_("mean attention distance per head; click a point to select it"),
                     hovermode="closest", clickmode="event+select",
                     legend=dict(title=dict(text=_("head")), font=dict(size=SMALL_SIZE)),
                     **extra,
                     xaxis=_axis(_("Network depth (layer)"), tickmode="linear", tick0=1,
                                 dtick=1 if layers <= 24 else 2, range=[0.5, layers + 0.5]),
                     yaxis=_axis(_("Mean attention distance (pixels)"), range=[0, max(top, 1e-6)]))
    return _figure(data, layout)
