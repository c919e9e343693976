"""The playground and training: the cost of attention against image size, and the training curves."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vit.i18n import gettext as _

from ._base import FONT_SIZE, _figure, _hover, _layout, _line_count, _tickfont, _top, _top_of, _wrap_text


def scaling_figure(image_sizes: list[int], patch_size: int) -> go.Figure:
    """Sequence length N+1 (N = (S/P)² patches and [class]) and attention cost (N+1)² per head per
    layer against image side S, on log axes labelled at powers of ten."""
    sizes = np.array(sorted({int(s) for s in image_sizes}), dtype=np.int64)
    p = int(patch_size)
    n = (sizes // p) ** 2
    tokens = n + 1
    cost = tokens ** 2
    titles = [_wrap_text(t, FONT_SIZE, 140) for t in (_("sequence length N+1"), _("attention entries (N+1)²"))]
    side = "%{x}"
    lines = [
        dict(type="scatter", x=sizes.tolist(), y=tokens.tolist(), mode="lines+markers", name="N+1", line=dict(width=3),
             customdata=n.tolist(), xaxis="x", yaxis="y",
             hovertemplate=_hover(_("{side}×{side} px → N = {n} patches + [class] = {t} tokens").format(
                 side=side, n="%{customdata:,}", t="%{y:,}"))),
        dict(type="scatter", x=sizes.tolist(), y=cost.tolist(), mode="lines+markers", name="(N+1)²",
             line=dict(width=3, color="#d62728"), xaxis="x2", yaxis="y2",
             hovertemplate=_hover(_("{side}×{side} px → {e} attention weights per head and layer").format(
                 side=side, e="%{y:,}"))),
    ]
    title = _("Cost of attention with {p}×{p} patches").format(p=p)
    subtitle = _("double the image side: 4× the tokens, 16× the attention")
    top = _top(title, subtitle)
    # Two plots side by side (what make_subplots(1, 2, horizontal_spacing=0.16) lays out), written as
    # plain dicts: plotly's validation of a subplot figure costs ~0.5 s, on every slider step.
    domains = ([0.0, 0.42], [0.58, 1.0])
    log = dict(type="log", dtick=1, exponentformat="power", showexponent="all", minor=dict(showgrid=False),
               tickfont=_tickfont())
    x_title = dict(text=_("side S (px)"))
    axes = dict(xaxis=dict(anchor="y", domain=domains[0], title=x_title, tickfont=_tickfont()),
                xaxis2=dict(anchor="y2", domain=domains[1], title=x_title, tickfont=_tickfont()),
                yaxis=dict(anchor="x", domain=[0.0, 1.0], **log), yaxis2=dict(anchor="x2", domain=[0.0, 1.0], **log))
    # Each subplot is about 150 px wide on a phone: titles wrap to that, and the y axes carry no title
    # (the subplot titles say what they count), so nothing runs into the neighbouring plot.
    annotations = [dict(text=t, x=sum(d) / 2, y=1.0, xref="paper", yref="paper", xanchor="center", yanchor="bottom",
                        showarrow=False, font=dict(size=FONT_SIZE)) for t, d in zip(titles, domains)]
    layout = _layout(title, 460 + top - _top_of(1, 1), subtitle=subtitle, showlegend=False, annotations=annotations,
                     margin=dict(t=top + 34 + 20 * (max(_line_count(t) for t in titles) - 1), b=10), **axes)
    fig = _figure(lines, layout)
    return fig


def training_curve_figure(history: list[dict]) -> go.Figure:
    """Loss (left) and accuracy (right) per epoch; keys epoch, train_loss, train_acc, test_acc and,
    if present, neighbour_score (share of positions whose nearest embedding is a grid neighbour)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(_("loss"), _("accuracy")))
    history = list(history or [])
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]

    def series(key):
        pairs = [(e, h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]
        return [e for e, _v in pairs], [round(float(v), 4) for _e, v in pairs]

    epoch = _("epoch {e}").format(e="%{x}")
    x, y = series("train_loss")
    name = _("train loss")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line=dict(width=3, color="#1f77b4"),
                             hovertemplate=_hover(epoch, f"{name} %{{y:.3f}}")), row=1, col=1)
    accuracy = [("train_acc", _("train accuracy"), "#1f77b4", "solid"), ("test_acc", _("test accuracy"), "#d62728", "solid"),
                ("neighbour_score", _("position neighbour score"), "#2ca02c", "dash")]
    biggest = 0.0
    for key, name, colour, dash in accuracy:
        x, y = series(key)
        if key != "train_acc" and not x:
            continue
        biggest = max([biggest, *y])
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line=dict(width=3, color=colour, dash=dash),
                                 hovertemplate=_hover(epoch, f"{name} %{{y:.1%}}")), row=1, col=2)
    fig.update_layout(**_layout(_("Training"), 420, legend=dict(orientation="h", y=-0.25, x=0), hovermode="x unified"))
    fig.update_annotations(font_size=FONT_SIZE)
    ticks = dict(tickmode="array", tickvals=sorted(set(epochs))) if 0 < len(set(epochs)) <= 10 else {}
    fig.update_xaxes(title=_("epoch"), tickfont=_tickfont(), **ticks)
    fig.update_yaxes(title=_("cross-entropy"), rangemode="tozero", tickfont=_tickfont(), row=1, col=1)
    if biggest <= 1.0:
        fig.update_yaxes(title=_("share correct"), tickformat=".0%", range=[0, 1.02], tickfont=_tickfont(), row=1, col=2)
    else:
        fig.update_yaxes(title=_("share correct"), rangemode="tozero", tickfont=_tickfont(), row=1, col=2)
    if not history:
        fig.add_annotation(text=_("no training yet"), xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                           font=dict(size=FONT_SIZE + 2, color="#777"))
    return fig
