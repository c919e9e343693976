"""Position embeddings: how similar each position's embedding is to every other's (paper Fig. 7 centre)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vit.i18n import gettext as _

from ._base import SEQUENTIAL, _np
from .maps import _maps_grid


def position_similarity_figure(similarity: np.ndarray, grid: tuple[int, int], *, max_tiles: int = 16) -> go.Figure:
    """Paper Fig. 7 centre: tile (r, c) is the cosine similarity of the position embedding of patch
    (r, c) to that of every other patch, as a (gh, gw) map, all on one -1..1 scale (the colour bar
    shows the whole range, with ticks at -1 and 1).

    Input rows and columns are labelled from 1, as patches are. Grids larger than ``max_tiles`` per
    side show evenly spaced input positions only.
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
    subtitle = _("each tile: one position against all the others")
    if len(rows) < gh or len(cols) < gw:
        subtitle += "<br>" + _("{rows}×{cols} of the {gh}×{gw} positions shown").format(
            rows=len(rows), cols=len(cols), gh=gh, gw=gw)
    return _maps_grid(
        maps, [str(i + 1) for i in rows], [str(j + 1) for j in cols],
        [_("input row {i}").format(i=i + 1) for i in rows], [_("input col {j}").format(j=j + 1) for j in cols],
        _("Position embedding similarity"), True, SEQUENTIAL, -1.0, 1.0,
        x_title=_("input patch column"), y_title=_("input patch row"), colorbar_title=_("cosine similarity"),
        subtitle=subtitle,
    )
