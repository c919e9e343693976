"""What every figure shares: constants, array helpers, the layout, title wrapping, axes, colour bars.

Figures are built as plain dicts and wrapped by :func:`_figure` without plotly's validation (see
there). Every text a person reads goes through :func:`vit.i18n.gettext` when the figure is built,
so a figure built while Korean is active comes out in Korean.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from vit.i18n import gettext as _

FONT_SIZE = 16  # base font for a projector
TITLE_SIZE = 20
TICK_SIZE = 16  # tick labels where space allows
SMALL_SIZE = 14  # the smallest text of a figure: tick labels of dense grids and colour bars, legends
TICK_COLOUR = "#333333"  # tick labels: dark, never the light grey of a theme
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
_COLUMN_WIDTH = 420  # a half-page column: about 330 px on a laptop with the sidebar open, 540 px at 1400
_PAGE_WIDTH = 950
# Texts that do not wrap by themselves (titles) are wrapped for the narrowest figure they meet: a
# page column on a 1024 px screen with the sidebar open, or a phone (~330 px); a little less, to be safe.
SAFE_WIDTH = 320
_CHAR_EM = 0.55  # width of an average Latin character, in em; a Hangul syllable counts as two
_BAR = 72  # px of bottom margin for a horizontal colour bar: its title above it, tick labels under it
_BAR_MAX = 240  # px: a colour bar stays shorter than the narrowest figure, its end labels inside it
_BAR_WITH_TITLE_MAX = 230  # px: a bar with its title beside it fits centred under a row of 6 maps in a laptop column
_X_AXIS = 58  # px under the plot for x tick labels and an x-axis title
# Images are capped at 250 (imperceptible): plotly's JSON escapes "/" as "\u002f", and runs of 255
# bytes are all "/" in base64, so a white sky would cost six times its size on the wire.
_WHITE = 250


# --- arrays -------------------------------------------------------------------------------------


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


def _bounds(values: np.ndarray, zmin, zmax) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if zmin is None and finite.size else zmin
    hi = float(finite.max()) if zmax is None and finite.size else zmax
    lo = 0.0 if lo is None else float(lo)
    hi = 1.0 if hi is None else float(hi)
    if hi <= lo:
        hi = lo + 1e-6
    return round(lo, 6), round(hi, 6)


# --- text ---------------------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]*>")


def _units(text: str) -> int:
    """Width of ``text`` in Latin characters: a wide character (Hangul, CJK) counts two, tags nothing."""
    text = _TAG.sub("", str(text))
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _budget(size: float, width: float = SAFE_WIDTH) -> int:
    """How many Latin characters of ``size`` px fit on one line ``width`` px wide."""
    return max(8, int(width / (_CHAR_EM * size)))


def _wrap_text(text: str, size: float, width: float = SAFE_WIDTH) -> str:
    """``text`` broken with ``<br>`` into lines that fit ``width`` px at ``size`` px, at spaces where
    possible (a word longer than a line is cut). Existing ``<br>`` are kept."""
    if not text:
        return text
    budget = _budget(size, width)
    lines: list[str] = []
    for segment in str(text).split("<br>"):
        line = ""
        for word in segment.split(" "):
            candidate = f"{line} {word}" if line else word
            if _units(candidate) <= budget:
                line = candidate
                continue
            if line:
                lines.append(line)
            while _units(word) > budget:  # a word longer than a line: cut it
                cut = 1
                while cut < len(word) and _units(word[: cut + 1]) <= budget:
                    cut += 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return "<br>".join(lines)


def _line_count(text: str | None) -> int:
    return text.count("<br>") + 1 if text else 0


def _wrapped(title: str = "", subtitle: str | None = None) -> tuple[str, str | None]:
    return _wrap_text(title, TITLE_SIZE), (_wrap_text(subtitle, FONT_SIZE - 1) if subtitle else subtitle)


_MULTILINE_TITLE_SHIFT = 14  # plotly.js draws a title of several lines this much higher than one of one line


def _top_of(title_lines: int, subtitle_lines: int) -> int:
    title_px = 40 + 26 * (title_lines - 1) if title_lines else 0
    if title_lines > 1:
        title_px += _MULTILINE_TITLE_SHIFT
    return 20 + title_px + 21 * subtitle_lines + (6 if subtitle_lines else 0)


def _top(title: str = "", subtitle: str | None = None) -> int:
    """Top margin (px) that holds the title and its subtitle, wrapped as :func:`_layout` wraps them."""
    t, s = _wrapped(title, subtitle)
    return _top_of(_line_count(t), _line_count(s))


def _title(text: str, subtitle: str | None = None) -> dict:
    # Pinned to the top of the figure, so ticks or labels above the plot area never run into it.
    # A title of several lines is drawn _MULTILINE_TITLE_SHIFT px higher than one line (measured in
    # Chromium): more padding keeps its first line inside the figure instead of cut at the top.
    pad = 10 + (_MULTILINE_TITLE_SHIFT if "<br>" in text else 0)
    title = dict(text=text, x=0.01, xanchor="left", y=1, yref="container", yanchor="top", pad=dict(t=pad),
                 font=dict(size=TITLE_SIZE))
    if subtitle:
        title["subtitle"] = dict(text=subtitle, font=dict(size=FONT_SIZE - 1, color="#555"))
    return title


def _label_width(labels: Sequence[str], size: int = FONT_SIZE) -> int:
    """Rough width (px) of the widest tick label (of its widest line)."""
    widest = max((_units(line) for t in labels for line in str(t).split("<br>")), default=0)
    return int(widest * size * 0.55) + 10


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


def _hover(*lines: str) -> str:
    """A hover template from its lines, without plotly's trace-name box."""
    return "<br>".join(lines) + "<extra></extra>"


# --- layout -------------------------------------------------------------------------------------

_TEMPLATE: dict | None = None


def _template() -> dict:
    """Plotly's "plotly_white" template as plain JSON, built once (building it costs ~50 ms)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


def _layout(title: str = "", height: float = 450, subtitle: str | None = None, margin: dict | None = None,
            **kwargs) -> dict:
    """The layout every figure shares, as a dict; ``margin`` overrides parts of the default margins.

    The title and subtitle are wrapped to fit the narrowest figure (:data:`SAFE_WIDTH`) and the top
    margin holds their lines. Unless ``margin`` sets ``t`` itself (its caller then sized the figure
    with :func:`_top`), ``height`` is the height for a one-line title, and the figure grows by the
    lines wrapping adds.
    """
    wrapped_title, wrapped_subtitle = _wrapped(title, subtitle)
    top = _top_of(_line_count(wrapped_title), _line_count(wrapped_subtitle))
    margins = dict(l=10, r=10, t=top, b=10)
    margins.update(margin or {})
    if "t" not in (margin or {}):
        height += top - _top_of(1 if title else 0, _line_count(subtitle))
    layout = dict(template=_template(), height=int(round(height)), font=dict(size=FONT_SIZE), margin=margins,
                  hoverlabel=dict(font=dict(size=FONT_SIZE - 1)), **kwargs)
    if title:
        layout["title"] = _title(wrapped_title, wrapped_subtitle)
    return layout


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A ``go.Figure`` from plain trace and layout dicts, without plotly's property-by-property
    validation, which costs 50–250 ms per figure and would dominate every rerun of a page.

    The dicts are written in plotly's canonical form (named colour scales resolved, no ``font_size``
    shorthands), so the JSON sent is exactly what validation would have produced; tests/test_plots.py
    checks that for every figure by validating it again.
    """
    return go.Figure(data=data, layout=layout, _validate=False)


def _tickfont(size: int = TICK_SIZE) -> dict:
    """Tick labels set on the axis itself, so that no theme (Streamlit's is 12 px grey) replaces them."""
    return dict(size=int(max(size, SMALL_SIZE)), color=TICK_COLOUR)


def _axis(title: str = "", size: int = TICK_SIZE, **kwargs) -> dict:
    """An axis with dark, readable tick labels and, if given, a title."""
    axis = dict(tickfont=_tickfont(size), **kwargs)
    if title:
        axis["title"] = dict(text=title)
    return axis


_HIDDEN_AXIS = dict(showticklabels=False, showgrid=False, zeroline=False, ticks="")


def _hidden_axes(x: dict | None = None, y: dict | None = None) -> dict:
    """Layout entries for axes without ticks, labels or grid, plus any extra settings."""
    return dict(xaxis={**_HIDDEN_AXIS, **(x or {})}, yaxis={**_HIDDEN_AXIS, **(y or {})})


_NICE_STEPS = (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 256, 500, 1000)


def _step(count: int, max_ticks: int) -> int:
    """The smallest round step that puts at most ``max_ticks`` ticks on ``count`` values."""
    return next((s for s in _NICE_STEPS if math.ceil(count / s) <= max_ticks), _NICE_STEPS[-1])


def _int_ticks(count: int, start: int = 1, max_ticks: int = 8) -> dict:
    """Integer ticks for ``count`` cells numbered from ``start``: every cell, or ``start`` and the
    multiples of a round step, never a fraction like 0.5."""
    step = _step(count, max_ticks)
    last = start + count - 1
    values = list(range(start, last + 1)) if step == 1 else \
        [start] + [v for v in range(step, last + 1, step) if v - start >= step / 2]
    return dict(tickmode="array", tickvals=values, ticktext=[str(v) for v in values])


# --- colour -------------------------------------------------------------------------------------


@functools.cache
def _named_scale(name: str) -> tuple:
    # Through plotly's own validator, so the stops are exactly those a validated figure would carry.
    return tuple(tuple(stop) for stop in go.Heatmap(colorscale=name).colorscale)


def _scale(colorscale):
    """A named colour scale ("Viridis", "RdBu_r") as the explicit list of stops plotly.js needs."""
    if isinstance(colorscale, str):
        return [list(stop) for stop in _named_scale(colorscale)]
    return colorscale


def _end_ticks(lo: float, hi: float) -> dict:
    """Colour-bar ticks at both ends of a fixed range and at round values between (-1, -0.5, 0, 0.5, 1)."""
    span = hi - lo
    raw = span / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    inner = [round(v, 6) for v in np.arange(math.ceil(lo / step) * step, hi, step) if lo + step / 3 < v < hi - step / 3]
    values = [round(lo, 6), *inner, round(hi, 6)]
    values = [int(v) if float(v).is_integer() else float(v) for v in values]
    return dict(tickmode="array", tickvals=values, ticktext=[f"{v:g}" for v in values])


def _bar_length(map_w: float) -> float:
    return float(np.clip(0.75 * map_w, 160, _BAR_MAX))


def _hbar(title: str = "", length: float = _BAR_MAX, **kwargs) -> dict:
    """A horizontal colour bar, ``length`` px long (at most :data:`_BAR_MAX`), centred under the plot
    area at the bottom of the figure, in the ``_BAR`` px of bottom margin: its title beside it,
    never cut, and its tick labels under it. Under a centred map it stays aligned at any width."""
    length = float(np.clip(length, 120, _BAR_MAX))
    bar = dict(orientation="h", x=0.5, xref="paper", xanchor="center", y=0, yref="container", yanchor="bottom",
               ypad=8, len=int(length), lenmode="pixels", thickness=14, outlinewidth=0,
               ticklabeloverflow="allow",  # else plotly.js may hide the end labels ("1" of -1…1)
               tickfont=_tickfont(SMALL_SIZE), **kwargs)
    if title:
        # Beside the bar, on its left (plotly.js "right" for a horizontal bar), wrapped short so the bar
        # keeps most of its length: a "top" title is drawn over the bar, and a "bottom" one can push the
        # bar up onto the plot (both measured in Chromium).
        text = _wrap_text(title, SMALL_SIZE + 1, 150)
        bar["title"] = dict(text=text, side="right", font=dict(size=SMALL_SIZE + 1))
        bar["ypad"] = 14
        widest = max(_units(line) for line in text.split("<br>"))
        # The title takes its room out of the bar's length: lengthen the bar by it, within what a
        # column of ~330 px holds centred under its plot.
        bar["len"] = int(min(length + widest * _CHAR_EM * (SMALL_SIZE + 1) + 16, _BAR_WITH_TITLE_MAX))
    return bar


def _bar_space(title: str = "") -> int:
    """Bottom margin (px) for a horizontal colour bar with ``title`` (one line more per wrapped line)."""
    return _BAR + 20 * max(0, _line_count(_wrap_text(title, SMALL_SIZE + 1, _BAR_MAX + 60)) - 1)


# --- sizes --------------------------------------------------------------------------------------


def _image_height(h: int, w: int, target_width: int = 420, lo: int = 260, hi: int = 500) -> int:
    """Plot height for an h×w image: sized for a half-page column on a laptop with the sidebar open
    (about 330–450 px wide), so a square map neither floats in empty space there nor shrinks on a wide screen."""
    return int(np.clip(target_width * h / max(w, 1), lo, hi))


def _grid_height(rows: int, cols: int, extra: int = 120, width: int = _GRID_WIDTH, max_height: int = 820, max_cell: int = 36) -> int:
    """Height for a square-celled grid of rows × cols cells that fits ``width``."""
    cell = min(width / max(cols, 1), (max_height - extra) / max(rows, 1), max_cell)
    return int(max(rows * cell + extra, 220))


# --- tokens -------------------------------------------------------------------------------------


def _patch_label(number: int) -> str:
    """"patch 3": patches are numbered from 1 on screen, as the paper's x_p^1 … x_p^N."""
    return _("patch {n}").format(n=number)


def _token_labels(t: int) -> list[str]:
    """One label per token: [class] (token 0), then patch i for token i."""
    return [CLASS_LABEL] + [_patch_label(i) for i in range(1, t)]


def _token_ticks(t: int, max_ticks: int = 12) -> tuple[list[int], list[str]]:
    """Tick positions (token indices) for a token axis: [class] first, then patch numbers at
    multiples of a round step (token i is patch i)."""
    step = _step(t - 1, max_ticks)
    patches = list(range(1, t)) if step == 1 else list(range(step, t, step))
    return [0] + patches, [CLASS_LABEL] + [str(p) for p in patches]


# --- export -------------------------------------------------------------------------------------


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
