"""Patch embedding: the principal components of the filters E, and the token matrix it makes."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vit.i18n import gettext as _

from ._base import (
    _COLUMN_WIDTH, _WHITE, _X_AXIS, CLASS_LABEL, DIVERGING, _axis, _bar_space, _f32, _figure, _hbar, _hidden_axes,
    _hover, _int_ticks, _layout, _matrix, _np, _patch_label, _scale, _tile, _to_uint8, _token_labels, _top, _top_of,
    _wrap,
)


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
    names = [_("component {i}").format(i=i + 1) for i in range(k)]
    if explained is not None:
        share = _np(explained).astype(np.float64).reshape(-1)[:k] * 100
        text = [name + "<br>" + _("{share}% of the variance").format(share=f"{s:.1f}") for name, s in zip(names, share)]
    else:
        text = names
    data = [dict(type="image", z=image, hoverinfo="skip"), dict(
        type="scatter", x=cx, y=cy, mode="markers", text=text, customdata=index.astype(np.int32), showlegend=False,
        marker=dict(size=12, color="rgba(0,0,0,0)", opacity=0), hovertemplate=_hover("%{text}"),
        name="components",
    )]
    if explained is not None:
        subtitle = _("top {k}: {share}% of variance; each on its own scale").format(k=k, share=f"{float(share.sum()):.0f}")
    else:
        subtitle = _("ordered by variance; each on its own scale")
    title = _("Principal components of E")
    # Tiles of about 60 px (at most 70): as wide as a page column allows, the height from the rows.
    scale = min((_COLUMN_WIDTH - 20) / image.shape[1], 70 / max(ph, pw))
    top = _top(title, subtitle)
    height = top + image.shape[0] * scale + 12
    layout = _layout(title, max(200, height), subtitle=subtitle, hovermode="closest", margin=dict(t=top, b=12))
    return _figure(data, {**layout, **_hidden_axes()})


def token_matrix_figure(tokens: np.ndarray, max_dims: int | None = None) -> go.Figure:
    """The (N+1, D) token matrix, row 0 the [class] token, diverging colours centred at 0.

    Rows are labelled "[class]", then "patch 1" … "patch N" (token i is patch i). The [class] row
    is outlined from outside (the outline's lines lie just beyond the row's edges), so that even a
    row of 2 px stays visible.
    """
    x = _matrix(tokens, "tokens (N+1, D)")
    t, d = x.shape
    dims = d if max_dims is None else max(1, min(d, int(max_dims)))
    z = _f32(x[:, :dims])
    finite = np.abs(z[np.isfinite(z)])
    m = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    m = round(max(m, 1e-6), 4)
    labels = _token_labels(t)
    bar_title = _("value")
    heat = dict(
        type="heatmap", z=z, x0=0, dx=1, y=labels, colorscale=_scale(DIVERGING), zmid=0, zmin=-m, zmax=m,
        colorbar=_hbar(bar_title),
        hovertemplate=_hover("%{y}", _("dimension {d}: {v}").format(d="%{x}", v="%{z:.3f}")),
    )
    size = _("{t} tokens × {d} dimensions").format(t=t, d=d) if dims == d else \
        _("{t} tokens × {d} dimensions (first {shown} shown)").format(t=t, d=d, shown=dims)
    subtitle = size + "; " + _("colours clipped at ±{m}").format(m=f"{m:.3g}")
    title = _("The token sequence: one row per token")
    top = _top(title, subtitle)
    bottom = _X_AXIS + _bar_space(bar_title)
    height = int(np.clip(5 * t + 190, 320, 700)) + (top - _top_of(1, 1)) + (bottom - 60)
    row_px = (height - top - bottom) / max(t, 1)
    # The outline: the whole width (paper x, so never clipped sideways), its top and bottom lines
    # 2 px beyond the row's edges, in pixels around row 0, whatever the row's height.
    half = row_px / 2 + 2
    frame = dict(type="rect", xref="paper", x0=0, x1=1, yref="y", ysizemode="pixel", yanchor=0, y0=-half, y1=half,
                 line=dict(color="black", width=2), fillcolor="rgba(0,0,0,0)", layer="above")
    # [class] on row 0, then patch numbers at multiples of a step, far enough apart (and from [class]) to read.
    step = next((s for s in (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 256, 500) if s * row_px >= 30), t)
    patches = list(range(1, t)) if step == 1 else list(range(step, t, step))
    ticktext = [CLASS_LABEL] + [_patch_label(i) for i in patches]
    tickvals = [labels[0]] + [labels[i] for i in patches]
    layout = _layout(title, height, subtitle=subtitle, margin=dict(t=top, b=bottom, r=14), shapes=[frame],
                     xaxis=_axis(_("embedding dimension"), showgrid=False, zeroline=False,
                                 **_int_ticks(dims, start=0, max_ticks=6)),
                     yaxis=_axis(_("token"), type="category", autorange="reversed", tickmode="array",
                                 tickvals=tickvals, ticktext=ticktext, showgrid=False, automargin=True))
    return _figure([heat], layout)

