"""The image and its patches: the image, the grid of patches, the sequence, the flattened vectors.

Patches are numbered from 1 to N on screen, as the paper's x_p^1 … x_p^N (token 0 is [class],
token i is patch i); click ``customdata`` stays the 0-based patch index.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vit.i18n import gettext as _

from ._base import (
    _COLUMN_WIDTH, _WHITE, _X_AXIS, _axis, _bar_space, _bounds, _f32, _figure, _hbar, _hidden_axes, _hover,
    _image_height, _int_ticks, _layout, _matrix, _patch_label, _scale, _tile, _to_uint8, _top, _wrap,
)


def image_figure(image: np.ndarray, title: str = "") -> go.Figure:
    """The image as the model sees it, (H, W, C) in [0, 1] or uint8; grayscale is shown gray."""
    rgb = _to_uint8(image)
    image = dict(type="image", z=rgb, hovertemplate="x %{x}, y %{y}<br>RGB %{z}<extra></extra>")
    return _figure([image], {**_layout(title, _image_height(*rgb.shape[:2]) + (45 if title else 0)), **_hidden_axes()})


def _row_column(row: int, column: int) -> str:
    """"row 2, column 3", both from 1."""
    return _("row {r}, column {c}").format(r=row, c=column)



def _patch_layout(image: np.ndarray, patch_size: int) -> tuple[np.ndarray, int, int, int, int]:
    """The image as uint8 RGB and its grid of P×P patches: (rgb, P, rows, columns, N); ValueError for
    a patch size below 1 or an image smaller than one patch."""
    rgb = _to_uint8(image)
    h, w = rgb.shape[:2]
    p = int(patch_size)
    if p <= 0:
        raise ValueError("patch_size must be positive")
    gh, gw = h // p, w // p
    if gh == 0 or gw == 0:
        raise ValueError(f"image {h}×{w} is smaller than one {p}×{p} patch")
    return rgb, p, gh, gw, gh * gw


def patch_grid_figure(image: np.ndarray, patch_size: int, show_indices: bool = True, highlight: int | None = None) -> go.Figure:
    """The image cut into P×P patches: grid lines, each patch's number, one patch outlined.

    Patches are numbered 1 … N in row-major order, the numbers the paper writes x_p^1 … x_p^N
    (patch i is token i; token 0 is [class]); rows and columns in the hover count from 1 too.
    ``highlight`` is the 1-based patch number to outline (1 … N), or None.

    Traces: the image, then (if labels are shown and there are at most 400 patches) one text
    trace of the numbers 1 … N, then an invisible marker at each patch centre whose ``customdata``
    is the 0-based patch index (number − 1), for hover and for a Streamlit ``on_select`` click.
    """
    rgb, p, gh, gw, n = _patch_layout(image, patch_size)
    h, w = rgb.shape[:2]
    rows, cols = np.divmod(np.arange(n), gw)
    cx = (cols * p + (p - 1) / 2).astype(np.float32)
    cy = (rows * p + (p - 1) / 2).astype(np.float32)

    data = [dict(type="image", z=rgb, hoverinfo="skip")]
    line = dict(color="rgba(255,255,255,0.9)", width=1.5)
    right, bottom = gw * p - 0.5, gh * p - 0.5
    shapes = [dict(type="line", x0=c * p - 0.5, x1=c * p - 0.5, y0=-0.5, y1=bottom, line=line, layer="above") for c in range(gw + 1)]
    shapes += [dict(type="line", x0=-0.5, x1=right, y0=r * p - 0.5, y1=r * p - 0.5, line=line, layer="above") for r in range(gh + 1)]

    # Sized for a column of a laptop screen with the sidebar open (about 330 px), so the grid fills it
    # instead of floating in empty space; wider columns centre it.
    height = _image_height(h, w, target_width=400, hi=480)
    if show_indices and n <= 400:
        cell_px = height / max(gh, 1)
        size = int(np.clip(cell_px * 0.38, 8, 14))
        data.append(dict(
            type="scatter", x=cx, y=cy, mode="text", text=[str(i + 1) for i in range(n)], name="patch number",
            textfont=dict(size=size, color="white", shadow="0px 0px 3px black"),
            hoverinfo="skip", showlegend=False,
        ))
    data.append(dict(
        type="scatter", x=cx, y=cy, mode="markers", name="patches",
        marker=dict(size=max(6, int(height / max(gh, 1) * 0.8)), symbol="square", color="rgba(0,0,0,0)", opacity=0),
        customdata=np.arange(n, dtype=np.int32),
        text=[f"{_patch_label(i + 1)}<br>{_row_column(r + 1, c + 1)}" for i, (r, c) in enumerate(zip(rows, cols))],
        hovertemplate=_hover("%{text}"),
        showlegend=False,
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
    ))
    if highlight is not None:
        if not 1 <= int(highlight) <= n:
            raise ValueError(f"highlight {highlight} is not a patch number in 1..{n}")
        r, c = divmod(int(highlight) - 1, gw)
        shapes.append(dict(
            type="rect", x0=c * p - 0.5, x1=(c + 1) * p - 0.5, y0=r * p - 0.5, y1=(r + 1) * p - 0.5,
            line=dict(color="#ff2d55", width=4), layer="above",
        ))
    subtitle = _("{gh} × {gw} = {n} patches of {p} × {p} pixels").format(gh=gh, gw=gw, n=n, p=p)
    layout = _layout(_("The image as a grid of patches"), height + 70, subtitle=subtitle,
                     shapes=shapes, hovermode="closest", clickmode="event+select")
    return _figure(data, {**layout, **_hidden_axes()})


def _shown(n: int, total: int) -> str:
    return _("all {total} patches").format(total=total) if n == total else \
        _("first {n} of {total} patches").format(n=n, total=total)


def patch_sequence_figure(patches: np.ndarray, patch_size: int, channels: int, max_patches: int = 64) -> go.Figure:
    """The flattened patches (N, P·P·C), values in [0, 1], as a strip in sequence order.

    The rows of ``patches`` are laid out (p1 p2 c), as ``VisionTransformer.trace`` makes them.
    One uint8 image, patches wrapped 16 to a row with 1-px white separators; an invisible marker
    per patch gives its number (from 1) on hover; its ``customdata`` is the 0-based index.
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
        marker=dict(size=10, color="rgba(0,0,0,0)", opacity=0), text=[_patch_label(i + 1) for i in range(n)],
        hovertemplate=_hover("%{text}"),
    )]
    subtitle = (_("{shown}, row by row, left to right").format(shown=_shown(n, total)) + "<br>"
                + _("each {p}×{p}×{c} = {values} numbers").format(p=p, c=c, values=p * p * c))
    title = _("The sequence of patches")
    # Height from the strip itself: as wide as a page column allows, at most 40 px per patch.
    scale = min((_COLUMN_WIDTH - 20) / strip.shape[1], 40 / p)
    top = _top(title, subtitle)
    height = top + strip.shape[0] * scale + 12
    layout = _layout(title, max(200, height), subtitle=subtitle, hovermode="closest", margin=dict(t=top, b=12))
    return _figure(data, {**layout, **_hidden_axes()})


def patch_vectors_figure(patches: np.ndarray, max_patches: int = 64) -> go.Figure:
    """The (N, P²C) matrix of flattened patches as a heatmap: each patch is a word of P²C numbers.

    Rows are patches numbered from 1 (y = patch number); columns the position in the patch, from 0."""
    x = _matrix(patches, "(N, P·P·C) patches")
    total, d = x.shape
    n = max(1, min(total, int(max_patches)))
    z = _f32(x[:n])
    lo, hi = _bounds(z, None, None)
    bar_title = _("value")
    heat = dict(
        type="heatmap", z=z, x0=0, dx=1, y0=1, dy=1, colorscale=_scale("gray"), zmin=lo, zmax=hi,
        colorbar=_hbar(bar_title),
        hovertemplate=_hover(_("patch {n}").format(n="%{y}"),
                             _("number {i} of the patch: {v}").format(i="%{x}", v="%{z:.3f}")),
    )
    subtitle = _("{shown}; one row per patch, flattened pixel by pixel (row, column, channel)").format(
        shown=_shown(n, total))
    bottom = _X_AXIS + _bar_space(bar_title)
    layout = _layout(_("Each patch is a word of {d} numbers").format(d=d), max(320, min(620, 6 * n + 230)) + bottom - 60,
                     subtitle=subtitle, margin=dict(b=bottom),
                     xaxis=_axis(_("position in the flattened patch"), showgrid=False, zeroline=False,
                                 **_int_ticks(d, start=0, max_ticks=6)),
                     yaxis=_axis(_("patch (sequence position)"), autorange="reversed", showgrid=False,
                                 zeroline=False, **_int_ticks(n, max_ticks=8)))
    return _figure([heat], layout)
