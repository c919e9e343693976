"""Tokens through the encoder and the prediction: token norms, the logit lens, the top-k classes.

Probabilities are shown in % on a fixed 0–100% scale, so that an untrained model's 11% guess never
looks like a confident answer.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from vit.i18n import gettext as _

from ._base import (
    _X_AXIS, CLASS_LABEL, SAFE_WIDTH, SMALL_SIZE, TICK_SIZE, _axis, _bar_space, _end_ticks, _f32, _figure, _hbar,
    _budget, _hover, _label_width, _layout, _np, _scale, _unique, _units, _wrap_text,
)

_PERCENT_TICKS = dict(tickmode="array", tickvals=[0, 25, 50, 75, 100], ticksuffix="%")
_MIN_TEXT_CELL = 26  # px: a cell narrower than this (at the narrowest width) gets no number in it
_NAME_WIDTH = 150  # px: class names longer than this are wrapped onto a second line


def _class_label(name: str) -> str:
    """A class name (data) as a tick label of at most two lines of :data:`_NAME_WIDTH` px, cut with
    "…" beyond, so the bars and cells keep most of a phone's width. The name is text: plotly.js renders
    some HTML in labels (links, images of sorts), so a checkpoint's own names are HTML-escaped."""
    lines = [html.escape(line, quote=False) for line in _wrap_text(str(name), TICK_SIZE, _NAME_WIDTH).split("<br>")]
    if len(lines) <= 2:
        return "<br>".join(lines)
    budget = _budget(TICK_SIZE, _NAME_WIDTH)
    second = lines[1]
    while second and _units(second) > budget - 1:
        second = second[:-1]
    return lines[0] + "<br>" + second.rstrip() + "…"


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
    after = _("after block {l}").format(l="%{x}")
    data = [
        dict(type="scatter", x=steps, y=_f32(q10, 3), mode="lines", line=dict(width=0, color=band), name="patches 10%",
             showlegend=False, hovertemplate=_hover(after, _("patches, 10th percentile {v}").format(v="%{y:.2f}"))),
        dict(type="scatter", x=steps, y=_f32(q90, 3), mode="lines", line=dict(width=0, color=band), fill="tonexty", fillcolor=band,
             name=_("patches, 10–90%"), hovertemplate=_hover(after, _("patches, 90th percentile {v}").format(v="%{y:.2f}"))),
        dict(type="scatter", x=steps, y=_f32(q50, 3), mode="lines+markers", line=dict(width=3, color="#1f77b4"),
             name=_("patches, median"), hovertemplate=_hover(after, _("patches, median {v}").format(v="%{y:.2f}"))),
        dict(type="scatter", x=steps, y=_f32(patches.max(axis=1), 3), mode="lines", line=dict(width=1.5, dash="dot", color="#7f7f7f"),
             name=_("patches, largest"), hovertemplate=_hover(after, _("largest patch token {v}").format(v="%{y:.2f}"))),
        dict(type="scatter", x=steps, y=_f32(x[:, 0], 3), mode="lines+markers", line=dict(width=3, color="#d62728"),
             name=CLASS_LABEL, hovertemplate=_hover(after, _("[class] token {v}").format(v="%{y:.2f}"))),
    ]
    layout = _layout(_("How long the token vectors are"), 450, subtitle=_("L2 norm of each token in the residual stream"),
                     hovermode="x unified", legend=dict(orientation="h", y=-0.22, x=0, font=dict(size=SMALL_SIZE + 1)),
                     xaxis=_axis(_("after block l (0 = embeddings z₀)"), tickmode="linear", tick0=0,
                                 dtick=1 if x.shape[0] <= 25 else 2),
                     yaxis=_axis(_("norm ‖z‖"), rangemode="tozero"))
    return _figure(data, layout)


def logit_lens_figure(probs: np.ndarray, class_names: list[str], top: int = 5) -> go.Figure:
    """Logit lens: the head read off every layer's [class] token, (L+1, classes) probabilities.

    Rows: the ``top`` most probable classes after the last block, then any class that is top-1
    at some earlier layer. Columns: z0 and the output of each block. Colours and hover in %, on a
    fixed 0–100% scale. Cells show their number (in %, without the sign) only where one fits at the
    narrowest width a figure meets (a phone), and only from 10% up; elsewhere the value is on hover.
    """
    p = _np(probs)
    if p.ndim == 3 and p.shape[1] == 1:  # (L+1, B=1, classes)
        p = p[:, 0]
    if p.ndim != 2:
        raise ValueError(f"expected probabilities (L+1, classes), got {p.shape}")
    steps, k = p.shape
    names = [str(n) for n in class_names] if class_names is not None else [_("class {i}").format(i=i) for i in range(k)]
    if len(names) < k:
        names += [_("class {i}").format(i=i) for i in range(len(names), k)]
    chosen = [int(i) for i in np.argsort(-p[-1], kind="stable")[: max(1, min(int(top), k))]]
    for i in np.argmax(p, axis=1):
        if int(i) not in chosen:
            chosen.append(int(i))
    labels = _unique([_class_label(names[i]) for i in chosen])
    z = _f32(p[:, chosen].T * 100, 2)
    cols = ["z₀"] + [str(i) for i in range(1, steps)]
    tick = TICK_SIZE if _label_width(labels, TICK_SIZE) <= 140 else SMALL_SIZE
    cell = (SAFE_WIDTH - _label_width(labels, tick) - 20) / steps
    bar_title = _("probability")
    heat = dict(
        type="heatmap", z=z, x=cols, y=labels, zmin=0, zmax=100, colorscale=_scale("Blues"),
        colorbar=_hbar(bar_title, **_end_ticks(0, 100), ticksuffix="%"),
        hovertemplate=_hover("%{y}", _("after block {l}: {p}").format(l="%{x}", p="%{z:.1f}%")),
    )
    subtitle = _("the top {k} at the end, and any earlier top-1").format(k=len(chosen[:top]))
    if cell >= _MIN_TEXT_CELL:
        heat["text"] = [[f"{v:.0f}" if v >= 10 else "" for v in row] for row in z.tolist()]
        heat["texttemplate"] = "%{text}"
        heat["textfont"] = dict(size=SMALL_SIZE if cell < 36 else TICK_SIZE)
    else:
        subtitle += "<br>" + _("hover over a cell for its probability")
    bottom = _X_AXIS + _bar_space(bar_title)
    layout = _layout(_("Logit lens: the prediction at each depth"), max(300, 42 * len(chosen) + 190) + bottom - 60,
                     subtitle=subtitle, margin=dict(b=bottom),
                     xaxis=_axis(_("after block l (0 = embeddings)"), type="category", showgrid=False),
                     yaxis=_axis("", tick, type="category", autorange="reversed", showgrid=False))
    return _figure([heat], layout)


def top_k_figure(probs: np.ndarray, class_names: list[str], k: int = 5) -> go.Figure:
    """The k most probable classes as horizontal bars, highest on top, labelled in percent.

    Bar lengths are in % (0–100) on an axis that always runs from 0 to 100%."""
    p = _np(probs).astype(np.float64)
    if p.ndim == 2 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 1:
        raise ValueError(f"expected a vector of class probabilities, got {p.shape}")
    k = max(1, min(int(k), p.shape[0]))
    order = np.argsort(-p, kind="stable")[:k]
    names = [str(class_names[i]) if class_names is not None and i < len(class_names) else _("class {i}").format(i=i)
             for i in order]
    labels = _unique([_class_label(n) for n in names])
    values = np.round(p[order] * 100, 2)
    bars = dict(
        type="bar", x=values, y=labels, orientation="h", marker=dict(color=["#1f77b4"] + ["#9ecae1"] * (k - 1)),
        texttemplate="%{x:.1f}%", textposition="outside", cliponaxis=False, textfont=dict(size=TICK_SIZE),
        hovertemplate=_hover("%{y}: %{x:.2f}%"),
    )
    layout = _layout(_("Top {k} predictions").format(k=k), 110 + 48 * k, margin=dict(r=70),  # room for "100.0%" beside a full bar
                     xaxis=_axis(_("probability"), range=[0, 100], **_PERCENT_TICKS),
                     yaxis=_axis("", type="category", autorange="reversed", showgrid=False))
    return _figure([bars], layout)
