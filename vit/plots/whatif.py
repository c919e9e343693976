"""What if…? Before and after an intervention, explanations side by side, and how far to trust them.

* ``hide_grid_figure``: the image cut into patches, hidden ones covered; a click on a patch (its
  ``customdata``, the 0-based index) hides or shows it.
* ``heads_figure``: every layer × head, the ones switched off crossed out, coloured (when measured)
  by how much switching each off alone lowers the class's probability; a click (``customdata``
  [layer, head], 0-based) switches a head off or on.
* ``before_after_bars_figure``: the class probabilities before and after, as paired bars on 0–100%.
* ``side_by_side_maps_figure``: two or more maps over the image on ONE colour scale (the same
  ``zmin``/``zmax`` and colours on every heatmap, one colour bar), e.g. the [class] attention before
  and after, or four explanation maps.
* ``curves_figure``: deletion or insertion curves of several maps, their areas in the legend.
* ``sanity_check_figure``: how much each map still resembles the trained model's as weights are
  randomised from the top (Spearman rank correlation).
"""

from __future__ import annotations

import html
import math
import re

import numpy as np
import plotly.graph_objects as go

from vit.i18n import gettext as _

from ._base import (
    _COLUMN_WIDTH, _WHITE, _X_AXIS, DIVERGING, FONT_SIZE, HEAD_COLOURS, SAFE_WIDTH, SEQUENTIAL, SMALL_SIZE,
    TICK_SIZE, _axis, _bar_space, _bounds, _end_ticks, _f32, _figure, _hbar, _hidden_axes, _hover, _image_height,
    _label_width, _layout, _np, _patch_label, _scale, _to_uint8, _top, _unique, _units, _wrap_text,
)
from .encoder import _PERCENT_TICKS, _class_label
from .patches import _patch_layout

BEFORE_COLOUR = "#9e9e9e"
AFTER_COLOUR = "#1f77b4"
_COVER = "rgba(70,70,70,0.88)"


def _map(values, what: str = "a (gh, gw) map") -> np.ndarray:
    v = _np(values)
    if v.ndim == 3 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 2:
        raise ValueError(f"expected {what}, got {v.shape}")
    return v.astype(np.float64)


# --- the controls: patches to hide, heads to switch off ------------------------------------------------


def hide_grid_figure(image: np.ndarray, patch_size: int, hidden=(), title: str | None = None) -> go.Figure:
    """The image as a grid of patches, numbered from 1, each ``hidden`` patch (0-based indices)
    covered by a dark card with a cross. Traces: the image, the numbers (up to 400 patches), the
    crosses on hidden patches (if any), then one invisible marker per patch whose ``customdata`` is
    its 0-based index, for a Streamlit ``on_select`` click."""
    rgb, p, gh, gw, n = _patch_layout(image, patch_size)
    h, w = rgb.shape[:2]
    hidden = sorted({int(i) for i in hidden})
    if hidden and not 0 <= hidden[0] <= hidden[-1] < n:
        raise ValueError(f"hidden patches must be indices 0..{n - 1}, got {hidden}")
    rows, cols = np.divmod(np.arange(n), gw)
    cx = (cols * p + (p - 1) / 2).astype(np.float32)
    cy = (rows * p + (p - 1) / 2).astype(np.float32)
    height = _image_height(h, w, target_width=400, hi=460)
    cell_px = height / max(gh, 1)

    line = dict(color="rgba(255,255,255,0.9)", width=1.5)
    right, bottom = gw * p - 0.5, gh * p - 0.5
    shapes = [dict(type="line", x0=c * p - 0.5, x1=c * p - 0.5, y0=-0.5, y1=bottom, line=line, layer="above") for c in range(gw + 1)]
    shapes += [dict(type="line", x0=-0.5, x1=right, y0=r * p - 0.5, y1=r * p - 0.5, line=line, layer="above") for r in range(gh + 1)]
    for i in hidden:
        r, c = divmod(i, gw)
        shapes.append(dict(type="rect", x0=c * p - 0.5, x1=(c + 1) * p - 0.5, y0=r * p - 0.5, y1=(r + 1) * p - 0.5,
                           fillcolor=_COVER, line=dict(color="#ff2d55", width=2), layer="above"))
    data = [dict(type="image", z=rgb, hoverinfo="skip")]
    if n <= 400:
        size = int(np.clip(cell_px * 0.38, 8, 14))
        data.append(dict(type="scatter", x=cx, y=cy, mode="text", text=[str(i + 1) for i in range(n)], name="patch number",
                         textfont=dict(size=size, color="white", shadow="0px 0px 3px black"), hoverinfo="skip",
                         showlegend=False))
    if hidden:
        data.append(dict(type="scatter", x=cx[hidden], y=cy[hidden], mode="markers", name="hidden", hoverinfo="skip",
                         showlegend=False,
                         marker=dict(symbol="x-thin", size=max(6, int(cell_px * 0.7)), color="rgba(0,0,0,0)",
                                     line=dict(width=2, color="#ff8fa3"))))
    state = [(_("hidden: click to show it again") if i in set(hidden) else _("click to hide it")) for i in range(n)]
    data.append(dict(
        type="scatter", x=cx, y=cy, mode="markers", name="patches",
        marker=dict(size=max(6, int(cell_px * 0.8)), symbol="square", color="rgba(0,0,0,0)", opacity=0),
        customdata=np.arange(n, dtype=np.int32), text=[f"{_patch_label(i + 1)}<br>{s}" for i, s in enumerate(state)],
        hovertemplate=_hover("%{text}"), showlegend=False,
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
    ))
    title = _("Click patches to hide them") if title is None else title
    subtitle = _("{k} of {n} patches hidden").format(k=len(hidden), n=n)
    layout = _layout(title, height + 70, subtitle=subtitle, shapes=shapes, hovermode="closest", clickmode="event+select",
                     dragmode=False)
    return _figure(data, {**layout, **_hidden_axes(dict(range=[-0.5, w - 0.5], constrain="domain"),
                                                   dict(range=[h - 0.5, -0.5], scaleanchor="x", scaleratio=1,
                                                        constrain="domain", constraintoward="top"))})


def heads_figure(depth: int, heads: int, off=(), drops=None, target_name: str = "") -> go.Figure:
    """Every head as a cell: layers down, heads across (both from 1), the heads in ``off`` ((layer,
    head) pairs, 0-based) crossed out. ``drops`` (L, H), if given, colours each cell by how much
    switching that head off alone lowers the probability of ``target_name``, in percentage points on
    a symmetric diverging scale from −m to +m, m the largest drop rounded up to a whole point (blue:
    it would rise). Traces: the heatmap, the crosses (if any),
    then an invisible marker per head whose ``customdata`` is [layer, head], 0-based, for clicks."""
    depth, heads = int(depth), int(heads)
    if depth < 1 or heads < 1:
        raise ValueError("a model has at least one layer and one head")
    off = sorted({(int(a), int(b)) for a, b in off})
    for layer, head in off:
        if not (0 <= layer < depth and 0 <= head < heads):
            raise ValueError(f"head {(layer, head)} is outside {depth} layers × {heads} heads")
    xs = np.arange(1, heads + 1)
    ys = np.arange(1, depth + 1)
    cell = float(np.clip(300 / max(heads, depth), 18, 64))
    label = lambda layer, head: _("layer {l}, head {h}").format(l=layer + 1, h=head + 1)  # noqa: E731
    states = {pair: _("off: click to switch it on") for pair in off}
    if drops is not None:
        d = _map(drops, f"drops ({depth}, {heads})")
        if d.shape != (depth, heads):
            raise ValueError(f"expected drops ({depth}, {heads}), got {d.shape}")
        z = _f32(d * 100, 2)
        span = float(max(1, math.ceil(float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1)))
        # No title beside the bar (it would crowd a narrow column): the subtitle says what the colour is.
        bar = _hbar("", 140, tickmode="array", tickvals=[-span, 0, span], ticktext=[f"−{span:g}", "0", f"+{span:g}"])
        heat = dict(type="heatmap", z=z, x=xs, y=ys, zmin=-span, zmax=span, colorscale=_scale(DIVERGING), xgap=2, ygap=2,
                    colorbar=bar, hoverinfo="skip")
        text = [[f"{round(v):+d}" if round(v) else "0" for v in row] for row in z.tolist()]
        if cell >= 26:
            heat.update(text=text, texttemplate="%{text}", textfont=dict(size=SMALL_SIZE if cell < 40 else TICK_SIZE))
        effect = [[_("switching it off changes p by {v} points").format(v=f"{-v:+.1f}") for v in row] for row in z.tolist()]
    else:
        heat = dict(type="heatmap", z=np.zeros((depth, heads), np.float32), x=xs, y=ys, zmin=0, zmax=1, xgap=2, ygap=2,
                    colorscale=[[0, "#e8eef7"], [1, "#e8eef7"]], showscale=False, hoverinfo="skip")
        effect = [["" for _h in range(heads)] for _l in range(depth)]
    data = [heat]
    if off:
        data.append(dict(type="scatter", x=[h + 1 for _l, h in off], y=[layer + 1 for layer, _h in off], mode="markers",
                         name="off", hoverinfo="skip", showlegend=False,
                         marker=dict(symbol="x", size=int(cell * 0.55), color="#222222", line=dict(width=1, color="white"))))
    pairs = [(layer, h) for layer in range(depth) for h in range(heads)]
    data.append(dict(
        type="scatter", x=[h + 1 for _l, h in pairs], y=[layer + 1 for layer, _h in pairs], mode="markers", name="heads",
        marker=dict(size=max(8, int(cell * 0.9)), symbol="square", color="rgba(0,0,0,0)", opacity=0),
        customdata=[[layer, h] for layer, h in pairs],
        text=["<br>".join(t for t in (label(layer, h), states.get((layer, h), _("on: click to switch it off")),
                                      effect[layer][h]) if t) for layer, h in pairs],
        hovertemplate=_hover("%{text}"), showlegend=False,
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
    ))
    bottom = (_bar_space() if drops is not None else 10) + _X_AXIS
    title = _("Click heads to switch them off")
    if drops is None:
        subtitle = _("{k} of {n} heads off").format(k=len(off), n=depth * heads)
    elif target_name:
        subtitle = _("colour: how many points p({name}) drops when each is off alone").format(name=target_name)
    else:
        subtitle = _("colour: how many points the probability drops when each is off alone")
    top = _top(title, subtitle)
    left = 10 + _label_width([str(depth)]) + 30
    height = top + depth * cell + bottom
    layout = _layout(title, max(height, 220), subtitle=subtitle, margin=dict(l=left, t=top, b=bottom),
                     hovermode="closest", clickmode="event+select", dragmode=False,
                     xaxis=_axis(_("head"), tickmode="linear", tick0=1, dtick=1 if heads <= 16 else 2, showgrid=False,
                                 zeroline=False, range=[0.5, heads + 0.5], constrain="domain"),
                     yaxis=_axis(_("layer"), tickmode="linear", tick0=1, dtick=1 if depth <= 16 else 2, showgrid=False,
                                 zeroline=False, range=[depth + 0.5, 0.5], scaleanchor="x", scaleratio=1,
                                 constrain="domain", constraintoward="top"))
    return _figure(data, layout)


# --- before and after -------------------------------------------------------------------------------------


def before_after_bars_figure(before, after, class_names, k: int = 5, labels: tuple[str, str] | None = None) -> go.Figure:
    """Paired horizontal bars: each class's probability before (grey) and after (blue), in %, on an
    axis from 0 to 100%. Classes: the ``k`` most probable before, then any of the after's top ``k``
    not among them (at most 2k rows)."""
    b = _np(before).astype(np.float64).ravel()
    a = _np(after).astype(np.float64).ravel()
    if b.shape != a.shape or b.size == 0:
        raise ValueError(f"expected two probability vectors of one length, got {b.shape} and {a.shape}")
    k = max(1, min(int(k), b.size))
    chosen = [int(i) for i in np.argsort(-b, kind="stable")[:k]]
    chosen += [int(i) for i in np.argsort(-a, kind="stable")[:k] if int(i) not in chosen]
    names = [str(class_names[i]) if class_names is not None and i < len(class_names) else _("class {i}").format(i=i)
             for i in chosen]
    ticks = _unique([_class_label(n) for n in names])
    first, second = labels or (_("before"), _("after"))
    bars = []
    for name, values, colour in ((first, b, BEFORE_COLOUR), (second, a, AFTER_COLOUR)):
        bars.append(dict(type="bar", x=np.round(values[chosen] * 100, 2), y=ticks, orientation="h", name=name,
                         marker=dict(color=colour), texttemplate="%{x:.1f}%", textposition="outside", cliponaxis=False,
                         textfont=dict(size=SMALL_SIZE), hovertemplate=_hover(f"{html.escape(name)}: %{{x:.2f}}%")))
    rows = len(chosen)
    title = _("Prediction before and after")
    top = _top(title) + 30  # the legend sits between the title and the bars
    layout = _layout(title, top + 56 * rows + _X_AXIS + 10, margin=dict(r=70, t=top, b=_X_AXIS + 10),
                     barmode="group", bargap=0.25, bargroupgap=0.05,
                     legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", yref="paper", font=dict(size=SMALL_SIZE),
                                 traceorder="normal"),
                     xaxis=_axis(_("probability"), range=[0, 100], tickmode="array", tickvals=[0, 50, 100], ticksuffix="%"),
                     yaxis=_axis("", type="category", autorange="reversed", showgrid=False))
    return _figure(bars, layout)


def _gray(image) -> np.ndarray:
    rgb = _to_uint8(image)
    gray = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.repeat(np.clip(gray, 0, _WHITE).astype(np.uint8)[..., None], 3, axis=-1)


def side_by_side_maps_figure(maps, labels, image=None, title: str = "", subtitle: str | None = None, *,
                             colorbar_title: str = "", percent: bool = False, zmin=None, zmax=None,
                             colorscale=SEQUENTIAL, per_row: int = 2, width: float = _COLUMN_WIDTH,
                             opacity: float = 0.6) -> go.Figure:
    """Maps (gh, gw) side by side, each labelled above it, on ONE colour scale.

    Every heatmap carries the same ``zmin``/``zmax`` (default: the range of all maps together) and
    colour scale, so equal colours mean equal values across the panels; the first one shows the one
    colour bar. ``image``
    (one for all, or one per map, or None) is drawn in grayscale under each map. NaN cells are
    transparent. ``percent`` shows values × 100 with "%". Panels wrap after ``per_row``; they are
    sized for a nominal ``width`` (px) and keep square cells at any width.
    """
    ms = [_map(m) for m in maps]
    if not ms:
        raise ValueError("no maps to show")
    if len(labels) != len(ms):
        raise ValueError(f"{len(labels)} labels for {len(ms)} maps")
    gh, gw = ms[0].shape
    if any(m.shape != (gh, gw) for m in ms):
        raise ValueError(f"maps of different shapes: {[m.shape for m in ms]}")
    images = image if isinstance(image, (list, tuple)) else [image] * len(ms)
    if len(images) != len(ms):
        raise ValueError(f"{len(images)} images for {len(ms)} maps")
    factor = 100.0 if percent else 1.0
    zs = [_f32(m * factor) for m in ms]
    lo, hi = _bounds(np.concatenate([z.ravel() for z in zs]), None if zmin is None else float(zmin) * factor,
                     None if zmax is None else float(zmax) * factor)
    name = colorbar_title or _("value")
    shown = "%{z:.2f}%" if percent else "%{z:.3f}"
    k = len(ms)
    cols = max(1, min(int(per_row), k))
    rows = math.ceil(k / cols)
    label_px, gap_px, hgap = 26, 14, 0.06
    panel_w = (width - 20 - (cols - 1) * hgap * width) / cols
    first = next((im for im in images if im is not None), None)
    aspect = (_to_uint8(first).shape[0] / _to_uint8(first).shape[1]) if first is not None else gh / gw
    panel_h = float(np.clip(panel_w * aspect, 120, 360))
    top = _top(title, subtitle) + label_px
    ticks = _end_ticks(lo, hi) if zmin is not None and zmax is not None else dict(nticks=4)
    bottom = _bar_space(name) + 4
    plot_h = rows * panel_h + (rows - 1) * (label_px + gap_px)
    unit = (1 - hgap * (cols - 1)) / cols
    data, annotations, axes = [], [], {}
    number = np.arange(1, gh * gw + 1, dtype=np.int32).reshape(gh, gw)
    scale = _scale(colorscale)
    for i, (z, label, im) in enumerate(zip(zs, labels, images)):
        r, c = divmod(i, cols)
        suffix = "" if i == 0 else str(i + 1)
        x0 = c * (unit + hgap)
        y1 = 1 - r * (panel_h + label_px + gap_px) / plot_h
        y0 = y1 - panel_h / plot_h
        ref = dict(xaxis=f"x{suffix}", yaxis=f"y{suffix}")
        heat = dict(type="heatmap", z=z, zmin=lo, zmax=hi, colorscale=scale, showscale=i == 0, customdata=number,
                    hoverongaps=False,
                    hovertemplate=_hover(html.escape(str(label)), _("patch {n}").format(n="%{customdata}"), f"{name} {shown}"),
                    **ref)
        if i == 0:  # one colour bar for all: every heatmap has the same range and colours
            heat["colorbar"] = _hbar(name, 160, **ticks, **({"ticksuffix": "%"} if percent else {}))
        if im is None:
            data.append(dict(x0=0, dx=1, y0=0, dy=1, **heat))
            xr, yr = [-0.5, gw - 0.5], [gh - 0.5, -0.5]
        else:
            g = _gray(im)
            h, w = g.shape[:2]
            ph, pw = h / gh, w / gw
            data.append(dict(type="image", z=g, hoverinfo="skip", **ref))
            data.append(dict(x0=(pw - 1) / 2, dx=pw, y0=(ph - 1) / 2, dy=ph, opacity=float(opacity), **heat))
            xr, yr = [-0.5, w - 0.5], [h - 0.5, -0.5]
        # A panel narrower than planned keeps its cells square by shrinking its height towards the top,
        # so it stays right under its label.
        axes[f"xaxis{suffix}"] = dict(domain=[round(x0, 6), round(min(1.0, x0 + unit), 6)], range=xr, anchor=f"y{suffix}",
                                      showticklabels=False, showgrid=False, zeroline=False, ticks="", constrain="domain",
                                      constraintoward="center")
        axes[f"yaxis{suffix}"] = dict(domain=[round(max(0.0, y0), 6), round(min(1.0, y1), 6)], range=yr, autorange=False,
                                      anchor=f"x{suffix}", scaleanchor=f"x{suffix}", scaleratio=1, showticklabels=False,
                                      showgrid=False, zeroline=False, ticks="", constrain="domain", constraintoward="top")
        annotations.append(dict(text=_wrap_text(html.escape(str(label)), FONT_SIZE - 1, panel_w), x=round(x0 + unit / 2, 6),
                                y=round(min(1.0, y1), 6), xref="paper", yref="paper", xanchor="center", yanchor="bottom",
                                yshift=2, showarrow=False, font=dict(size=FONT_SIZE - 1)))
    layout = _layout(title, top + plot_h + bottom, subtitle=subtitle, margin=dict(t=top, b=bottom), hovermode="closest",
                     annotations=annotations)
    return _figure(data, {**layout, **axes})


# --- explanations and their checks -------------------------------------------------------------------------


def curves_figure(fractions, curves: dict, areas: dict, kind: str = "deletion", class_name: str = "") -> go.Figure:
    """Deletion or insertion curves: the class's probability (in %, 0–100) against the share of patches
    hidden (deletion) or revealed (insertion), one line per map, each with its area under the curve in
    the legend (the area is of the probability as a share, so it lies between 0 and 1)."""
    if kind not in ("deletion", "insertion"):
        raise ValueError(f"kind must be 'deletion' or 'insertion', not {kind!r}")
    x = _np(fractions).astype(np.float64).ravel() * 100
    data = []
    for i, (label, values) in enumerate(curves.items()):
        y = _np(values).astype(np.float64).ravel() * 100
        if y.shape != x.shape:
            raise ValueError(f"curve {label!r} has {y.size} points for {x.size} fractions")
        area = areas.get(label)
        entry = _("{method}: area {area}").format(method=label, area=f"{area:.2f}") if area is not None else str(label)
        data.append(dict(type="scatter", x=_f32(x, 2), y=_f32(y, 2), mode="lines", name=html.escape(entry),
                         line=dict(width=3, color=HEAD_COLOURS[i % len(HEAD_COLOURS)]),
                         hovertemplate=_hover(html.escape(str(label)), "%{x:.0f}% → %{y:.1f}%")))
    who = f"p({class_name})" if class_name else _("probability")
    if kind == "deletion":
        title, subtitle = _("Deletion: hide the top patches first"), _("a good map makes the curve fall fast: small area")
        x_title = _("share of patches hidden, most important first")
    else:
        title, subtitle = _("Insertion: reveal the top patches first"), _("a good map makes the curve rise fast: large area")
        x_title = _("share of patches shown, most important first")
    x_title = _wrap_text(x_title, FONT_SIZE, SAFE_WIDTH - 70)
    legend_rows = len(curves)
    bottom = _X_AXIS + 20 * x_title.count("<br>") + 16 + 22 * legend_rows
    layout = _layout(title, 330 + bottom, subtitle=subtitle, margin=dict(b=bottom, l=60),
                     legend=dict(orientation="h", x=0, y=0, yanchor="bottom", yref="container", font=dict(size=SMALL_SIZE)),
                     hovermode="closest",
                     xaxis=_axis(x_title, range=[0, 100], tickmode="array", tickvals=[0, 25, 50, 75, 100], ticksuffix="%"),
                     yaxis=_axis(who, range=[0, 100], **_PERCENT_TICKS))
    return _figure(data, layout)


def stage_label(name: str) -> str:
    """A stage of the cascading randomisation, in the page's language: 'block 3' (0-based) → 'block 4'."""
    if name == "original":
        return _("trained")
    if name == "head":
        return _("head")
    if name == "embedding":
        return _("embedding")
    block = re.fullmatch(r"block (\d+)", name)
    return _("block {n}").format(n=int(block.group(1)) + 1) if block else str(name)


def sanity_check_figure(stages, similarity: dict) -> go.Figure:
    """Spearman rank correlation of each map with the trained model's map (1 at the first stage) as the
    weights are randomised cumulatively from the top; one line per map. A map that explains the model
    falls towards 0; one that stays near 1 depends on the image, not on what the model learned."""
    labels = _unique([stage_label(str(s)) for s in stages])
    data = []
    for i, (label, values) in enumerate(similarity.items()):
        y = _np(values).astype(np.float64).ravel()
        if y.size != len(labels):
            raise ValueError(f"{label!r}: {y.size} values for {len(labels)} stages")
        data.append(dict(type="scatter", x=labels, y=_f32(np.nan_to_num(y, nan=0.0), 3), mode="lines+markers",
                         name=html.escape(str(label)), marker=dict(size=9),
                         line=dict(width=3, color=HEAD_COLOURS[i % len(HEAD_COLOURS)]),
                         hovertemplate=_hover(html.escape(str(label)), "%{x}: %{y:.2f}")))
    shapes = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=0, y1=0, layer="below",
                   line=dict(color="#555555", dash="dash", width=1.5))]
    slant = max(_units(label) for label in labels) * SMALL_SIZE * 0.55 * 0.71 + 10  # labels at 45°
    x_title = _("randomised down to")
    bottom = int(slant + 30 + 20 * len(similarity) + 24)
    layout = _layout(_("Sanity check: randomise the weights from the top"), 330 + bottom,
                     subtitle=_("similarity to the trained model's map (1 = same ranking of patches)"),
                     margin=dict(b=bottom, l=60), shapes=shapes, hovermode="closest",
                     legend=dict(orientation="h", x=0, y=0, yanchor="bottom", yref="container", font=dict(size=SMALL_SIZE)),
                     xaxis={**_axis("", SMALL_SIZE, type="category", tickangle=-45, automargin=True),
                            "title": dict(text=x_title, standoff=10)},
                     yaxis=_axis(_("rank correlation"), range=[-1.05, 1.05], tickmode="array",
                                 tickvals=[-1, -0.5, 0, 0.5, 1]))
    return _figure(data, layout)
