"""Plotly figures for every stage of a Vision Transformer: numpy arrays in, ``go.Figure`` out.

Written for a classroom projector and for a page column or a phone: large fonts, dark tick labels
of at least 14 px, titles wrapped to fit a 320 px figure, colour bars under the plot with their
title on top, a value on hover, the same colour scale and unit wherever the same quantity appears
(attention weights and probabilities in %). Payloads stay small by drawing what is seen at the
resolution it is seen: a grid of maps is one heatmap with NaN gaps (never one trace per map),
images travel as uint8 ``go.Image`` at their own resolution, maps at patch resolution, floats as
rounded float32 (plotly sends numpy arrays as base64 typed arrays).

Every text a person reads is translated when the figure is built (``vit.i18n``; Korean in
``locales/ko/LC_MESSAGES/plots.po``): build a figure while Korean is active and it is in Korean.

Conventions: on screen, patches are numbered from 1 to N, as the paper's x_p^1 … x_p^N (token 0
is [class], token i is patch i), and so are patch rows and columns; ``patch_grid_figure``'s
``highlight`` is such a 1-based patch number. Layers and heads are labelled from 1 (the caller
supplies their labels), and click ``customdata`` is always 0-based (a patch's index is its
number − 1). Arrays are in the row-major order of the token sequence.

One module per stage: ``patches`` (the image, the grid, the sequence), ``embeddings`` (filters, the
token matrix), ``maps`` (maps over the image, grids of maps), ``positions``, ``attention``,
``encoder`` (token norms, logit lens, top-k), ``training`` (scaling, training curves) and ``whatif``
(before and after an intervention, explanations and their checks); ``_base``
holds what they share. Nothing here imports torch or streamlit; tensors are accepted and
converted with numpy.
"""

from __future__ import annotations

from ._base import (  # noqa: F401 (the constants are public too: plots.FONT_SIZE, plots.CLASS_LABEL, ...)
    CLASS_LABEL, DIVERGING, FONT_SIZE, HEAD_COLOURS, SAFE_WIDTH, SEQUENTIAL, SMALL_SIZE, TICK_COLOUR, TICK_SIZE,
    TITLE_SIZE, figure_to_png,
)
from .attention import attention_distance_figure, attention_matrix_figure
from .embeddings import filters_figure, token_matrix_figure
from .encoder import logit_lens_figure, token_norms_figure, top_k_figure
from .maps import maps_grid_figure, patch_map_figure
from .patches import image_figure, patch_grid_figure, patch_sequence_figure, patch_vectors_figure
from .positions import position_similarity_figure
from .training import scaling_figure, training_curve_figure
from .whatif import (
    before_after_bars_figure, curves_figure, heads_figure, hide_grid_figure, sanity_check_figure,
    side_by_side_maps_figure, stage_label,
)

__all__ = [
    "FONT_SIZE", "image_figure", "patch_grid_figure", "patch_sequence_figure", "patch_vectors_figure",
    "filters_figure", "token_matrix_figure", "patch_map_figure", "maps_grid_figure",
    "position_similarity_figure", "attention_matrix_figure", "attention_distance_figure",
    "token_norms_figure", "logit_lens_figure", "top_k_figure", "scaling_figure",
    "training_curve_figure", "figure_to_png", "hide_grid_figure", "heads_figure", "before_after_bars_figure",
    "side_by_side_maps_figure", "curves_figure", "sanity_check_figure", "stage_label",
]
