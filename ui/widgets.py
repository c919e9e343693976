"""Small pieces every page uses: the teaching paragraph, figures, columns, links that open a view."""

from __future__ import annotations

import functools
import re

import numpy as np
import streamlit as st
from PIL import Image

import vit
from ui.i18n import _, choose_language, ngettext
from ui.state import current_model

PRESENT_FONT = 20  # projector mode: base font of figures (px)
PRESENT_TICKS = 18  # projector mode: tick labels, at least 16 px as a projector needs
PRESENT_TITLE = 24


def device_text(model) -> str:
    """Where the model runs, in the page's language: 'CPU, 2 threads', 'cuda: NVIDIA H100'."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cpu":
        return ngettext("CPU, {n} thread", "CPU, {n} threads", torch.get_num_threads()).format(n=torch.get_num_threads())
    return vit.describe_device(device)


def presenting() -> bool:
    """Projector mode: larger type, one figure per row, the sidebar collapsed. Set by the frame."""
    return bool(st.session_state.get("present"))


def explain(text: str, equation: str | None = None) -> None:
    """The teaching paragraph and the paper's equation at the top of a page."""
    st.markdown(text)
    if equation:
        st.latex(equation)


def columns(spec, **kwargs) -> list:
    """``st.columns``, except in projector mode, where every column becomes a full-width row."""
    n = spec if isinstance(spec, int) else len(spec)
    if presenting():
        return [st.container() for _ in range(n)]
    return st.columns(spec, **kwargs)


DISPLAY_MAX_SIDE = 1600  # px: what the app ever asks the browser to show of an image
DISPLAY_MAX_ASPECT = 16  # longer side ÷ shorter side; beyond it the picture is padded (st.image cannot encode 160:1)


def display_image(image, min_size: int = 224) -> Image.Image:
    """A safe, bounded picture of ``image`` to show on screen, never to give the model.

    - A small image (longer side under ``min_size``) is enlarged by a whole factor with nearest-neighbour,
      so each pixel becomes a sharp block of its own colour instead of a blur into its neighbours'.
    - A large one is shrunk so its longer side is at most ``DISPLAY_MAX_SIDE``.
    - A very elongated one (beyond ``DISPLAY_MAX_ASPECT``:1) is padded with grey to that ratio, so it is
      still visible and the browser never gets a 40000×1 picture it cannot encode or draw.
    """
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    w, h = image.size
    longest = max(w, h)
    if longest <= 0:
        return image
    if longest < min_size:
        k = -(-int(min_size) // longest)  # ceil: the smallest whole factor that reaches min_size
        image = image.resize((w * k, h * k), Image.Resampling.NEAREST)
    elif longest > DISPLAY_MAX_SIDE:
        scale = DISPLAY_MAX_SIDE / longest
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    w, h = image.size
    if max(w, h) > DISPLAY_MAX_ASPECT * min(w, h):
        side = -(-max(w, h) // DISPLAY_MAX_ASPECT)
        canvas = Image.new(image.mode if image.mode in ("RGB", "L", "RGBA") else "RGB",
                           (w, max(h, side)) if w >= h else (max(w, side), h), "#bdbdbd" if image.mode != "L" else 189)
        canvas.paste(image.convert(canvas.mode), ((canvas.width - w) // 2, (canvas.height - h) // 2))
        image = canvas
    return image


def figure_name(stage: str, **parts) -> str:
    """A download name that says what the figure is: 'vit-tiny-symbols_attention_layer-2_head-3'."""
    words = [current_model().label, stage] + [f"{k}-{v}" for k, v in parts.items() if v is not None]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(str(w) for w in words)).strip("-")


def _for_projector(fig) -> None:
    fig.update_layout(font=dict(size=PRESENT_FONT), title_font_size=PRESENT_TITLE)
    fig.update_xaxes(tickfont_size=PRESENT_TICKS, title_font_size=PRESENT_FONT)
    fig.update_yaxes(tickfont_size=PRESENT_TICKS, title_font_size=PRESENT_FONT)
    fig.update_traces(selector=dict(type="heatmap"), colorbar=dict(tickfont_size=PRESENT_TICKS))
    fig.update_layout(legend_font_size=PRESENT_TICKS, hoverlabel_font_size=PRESENT_TICKS)
    fig.update_annotations(font_size=PRESENT_TICKS)
    fig.update_layout(height=int((fig.layout.height or 450) * 1.15))


def plot(fig, key: str, name: str | None = None, **kwargs):
    """Show a Plotly figure; its toolbar's camera saves a PNG called ``name`` (see :func:`figure_name`).

    Returns the selection event, if any. The toolbar shows on hover only, so it never covers a title.
    """
    if presenting():
        _for_projector(fig)
    config = {"toImageButtonOptions": {"format": "png", "filename": name or figure_name(key), "scale": 2},
              "displaylogo": False, "displayModeBar": "hover",
              "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d", "toggleSpikelines"]}
    return st.plotly_chart(fig, key=key, config=config, **kwargs)


def shapes_line(trace, model) -> str:
    """A sentence of live tensor shapes, e.g. '64 patches × 48 values → 65 tokens × 64 dimensions'."""
    n, v = trace["patches"].shape
    t, d = trace["hidden_states"].shape[-2:]
    return _("{n} patches × {v} values → {t} tokens × {d} dimensions").format(n=n, v=v, t=t, d=d)


def int_slider(label: str, low: int, high: int, value: int | None = None, *, key: str, where=None, **kwargs) -> int:
    """``st.slider`` for whole numbers that also copes with a range of one value (a one-block model,
    a single head): Streamlit refuses a slider whose min equals its max, so that case is a plain line."""
    where = where or st
    if high <= low:
        st.session_state[key] = low
        where.markdown(f"{label}: **{low}**")
        return low
    if value is None:
        return where.slider(label, low, high, key=key, **kwargs)
    return where.slider(label, low, high, value, key=key, **kwargs)


def query_int(name: str, default: int, low: int, high: int) -> int:
    """An integer from the URL (?layer=2), clamped to [low, high], for links that open a view."""
    try:
        value = int(st.query_params.get(name, default))
    except (TypeError, ValueError):
        value = default
    return min(max(value, low), high)


def sync_query(**values) -> None:
    """Write the current view into the URL so it can be shared."""
    for k, v in values.items():
        if st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


def apply_click(chart_key: str, targets: dict[str, tuple[int, int]]) -> None:
    """Turn a click on a figure (its point's customdata) into widget values, once per new click.

    ``targets`` maps a widget key to (position in customdata, offset added), e.g. a 0-based layer
    index in customdata[0] becomes the 1-based slider value with ``{"layer": (0, 1)}``.
    """
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    if not points:
        return
    marker = repr(points)
    if st.session_state.get(f"_clicked_{chart_key}") == marker:
        return
    st.session_state[f"_clicked_{chart_key}"] = marker
    data = points[0].get("customdata")
    if data is None:
        return
    if isinstance(data, dict):  # a 2-D customdata row can arrive as {"0": layer, "1": head}
        data = [data[k] for k in sorted(data, key=int)]
    data = data if isinstance(data, (list, tuple)) else [data]
    for widget, (pos, offset) in targets.items():
        if pos < len(data):
            st.session_state[widget] = int(data[pos]) + offset


def fragment(func):
    """``st.fragment`` that first restores the session's language. A fragment's rerun runs the function
    alone, in a new script thread, where the language the frame chose for the full run is not set: without
    this, a Korean page turns English after a click inside the fragment."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        choose_language()
        return func(*args, **kwargs)

    return st.fragment(run)


def clicked(chart_key: str) -> list | None:
    """The ``customdata`` of the point a new click on a figure chose, as a list, once per new click;
    None when there is no new click. For clicks that toggle something (a patch to hide): the page
    then draws the figure under a new key, so that a second click on the same point counts again
    (a Streamlit selection that does not change is no new click)."""
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    if not points:
        return None
    marker = repr(points)
    if st.session_state.get(f"_clicked_{chart_key}") == marker:
        return None
    st.session_state[f"_clicked_{chart_key}"] = marker
    data = points[0].get("customdata")
    if data is None:
        return None
    if isinstance(data, dict):  # a 2-D customdata row can arrive as {"0": layer, "1": head}
        data = [data[k] for k in sorted(data, key=int)]
    return list(data) if isinstance(data, (list, tuple)) else [data]


def percent(p: float, digits: int = 1) -> str:
    """A share as a percentage that never rounds to 100% (or 0%) unless it is exactly that: 0.9998 → '99.98%'."""
    p = float(p)
    text = f"{p:.{digits}%}"
    while digits < 6 and ((p < 1 and text == f"{1:.{digits}%}") or (p > 0 and text == f"{0:.{digits}%}")):
        digits += 1
        text = f"{p:.{digits}%}"
    return text


FLOW_COLOURS = {"plain": "#ffffff", "norm": "#eef3fb", "attention": "#fde8d7", "mlp": "#e3f4e1", "add": "#f4f4f4"}


def flow_diagram_html(steps: list[tuple[str, str, str]]) -> str:
    """A top-to-bottom diagram as HTML: boxes joined by arrows, each ``(text, kind, note)``.

    ``kind`` picks the colour (see ``FLOW_COLOURS``); ``note`` is small text beside the arrow into
    the box (e.g. "+ residual"). Plain HTML text, so it is as readable as the page's prose on a
    projector and a phone, unlike a scaled drawing. Every text is escaped.
    """
    import html

    parts = []
    for i, (text, kind, note) in enumerate(steps):
        if i:
            arrow = "↓" + (f" <span style='font-size:0.85em;color:#555'>{html.escape(note)}</span>" if note else "")
            parts.append(f"<div style='text-align:center;line-height:1.6'>{arrow}</div>")
        shape = "border-radius:50%;width:2.2em;margin:0 auto;padding:0.2em 0" if kind == "add" else \
            "border-radius:0.5em;padding:0.35em 0.6em"
        text_html = "<br>".join(html.escape(line) for line in text.split("\n"))
        parts.append(f"<div style='border:1px solid #8a94a6;background:{FLOW_COLOURS.get(kind, '#fff')};"
                     f"{shape};text-align:center;font-size:0.95em;color:#222'>{text_html}</div>")
    return "<div style='max-width:22em;margin:0 auto'>" + "".join(parts) + "</div>"
