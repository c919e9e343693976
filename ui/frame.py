"""The frame around every page: page config, language, projector mode, navigation, the sidebar and
the guided path ("previous stage", "next stage"). ``app.py`` calls :func:`run` and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from ui.compute import current_trace, trace_npz
from ui.i18n import LANGUAGES, N_, _, choose_language, set_from_switch
from ui.models import configure_torch, freeze_startup_objects, start_image_decoder
from ui.state import current_image, current_model, image_label
from ui.widgets import device_text, display_image, presenting

ROOT = Path(__file__).resolve().parent.parent
PAGES_DIR = ROOT / "app_pages"

# url path: (file, title, short title, icon). The stages, in the order the image goes through them.
STAGES = {
    "patches": ("patches.py", N_("1. Patches"), N_("Patches"), ":material/grid_on:"),
    "embeddings": ("embeddings.py", N_("2. Embeddings"), N_("Embedding"), ":material/linear_scale:"),
    "positions": ("positions.py", N_("3. Position embeddings"), N_("Positions"), ":material/pin_drop:"),
    "attention": ("attention.py", N_("4. Attention"), N_("Attention"), ":material/visibility:"),
    "encoder": ("encoder.py", N_("5. Encoder & prediction"), N_("Prediction"), ":material/account_tree:"),
    "whatif": ("whatif.py", N_("6. What if…?"), N_("What if"), ":material/science:"),
}
START = ("start.py", N_("Start"), ":material/home:")

_CSS = """
<style>
/* Long labels wrap instead of being cut to "a…". */
.stButton button p, [data-testid="stPageLink"] p { white-space: normal; overflow-wrap: anywhere; }
/* So do metrics ("Sequence length N+1" in four columns of projector mode), labels and values. */
[data-testid="stMetricLabel"] [data-testid="stMarkdownContainer"], [data-testid="stMetricLabel"] p,
[data-testid="stMetricValue"] div, [data-testid="stMetricValue"] p { white-space: normal; overflow-wrap: anywhere; }
/* Equations scroll sideways inside their box on narrow screens instead of running off it. */
.katex-display { overflow-x: auto; overflow-y: hidden; padding: 0.2em 0; }
/* Plotly's toolbar only on hover, above the plot, never over a title. */
.js-plotly-plot .modebar-container { top: -6px !important; }
</style>
"""
_PRESENT_CSS = """
<style>
html { font-size: 20px; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.1rem; }
[data-testid="stCaptionContainer"] { font-size: 0.95rem; }
</style>
"""


def _choose_presenting() -> bool:
    """Projector mode from ``?present=1`` or the sidebar switch; written back into the URL."""
    ss = st.session_state
    wanted = st.query_params.get("present")
    if wanted in ("0", "1"):
        ss["present"] = wanted == "1"
    ss.setdefault("present", False)
    if ss["present"] and st.query_params.get("present") != "1":
        st.query_params["present"] = "1"
    elif not ss["present"] and "present" in st.query_params:
        del st.query_params["present"]
    return ss["present"]


def _set_present() -> None:
    st.session_state["present"] = bool(st.session_state.get("present_switch"))
    if st.session_state["present"]:
        st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]


def pages() -> dict[str, st.Page]:
    """The navigation's pages by url path ("" for the start page), titled in the page's language."""
    out = {"": st.Page(str(PAGES_DIR / START[0]), title=_(START[1]), icon=START[2], default=True)}
    for key, (file, title, _short, icon) in STAGES.items():
        out[key] = st.Page(str(PAGES_DIR / file), title=_(title), icon=icon, url_path=key)
    return out


def run() -> None:
    """Page config, language, navigation, the chosen page, the guided path, then the sidebar."""
    present = "present" in st.session_state and st.session_state["present"] or st.query_params.get("present") == "1"
    st.set_page_config(page_title="ViT Explorer", page_icon=str(ROOT / "assets" / "icon.png"), layout="wide",
                       initial_sidebar_state="collapsed" if present else "auto")
    configure_torch()
    start_image_decoder()
    freeze_startup_objects()
    choose_language()
    _choose_presenting()
    st.html(_CSS + (_PRESENT_CSS if presenting() else ""))
    by_key = pages()
    nav = st.navigation(list(by_key.values()))
    key = next((k for k, p in by_key.items() if p.url_path == nav.url_path), "")
    # An unexpected error never shows a student a traceback (the shipped config hides Streamlit's own
    # details too): a short apology and a way to start over; the server log keeps the whole story.
    if not _guarded(nav.run, f"page {key or 'start'}"):
        return
    if key in STAGES:
        guided_path(key, by_key)
    _guarded(sidebar, "sidebar")  # after the page, so it shows what the page just chose


_LOG = logging.getLogger("vit_explorer")


def _guarded(part, where: str) -> bool:
    """Run a part of the page; on an unexpected error log it and show the apology. True if it ran."""
    try:
        part()
        return True
    except Exception:  # st.stop and st.rerun are BaseExceptions and pass through
        _LOG.exception("unexpected error in %s", where)
        apology()
        return False


def _start_over() -> None:
    keep = {k: st.session_state[k] for k in ("lang", "present") if k in st.session_state}
    for k in list(st.session_state.keys()):
        del st.session_state[k]
    st.session_state.update(keep)
    st.query_params.clear()
    st.query_params.update({"lang": keep.get("lang", "en"), **({"present": "1"} if keep.get("present") else {})})


def apology() -> None:
    st.error(_("Sorry, something went wrong on this page. Starting over with the default image usually helps; "
               "if it happens again, tell your teacher what you did just before."),
             icon=":material/sentiment_dissatisfied:")
    st.button(_("Start over"), key="start_over", on_click=_start_over, type="primary")


def keep_params() -> dict[str, str]:
    """The query parameters a link to another page carries: the language and projector mode."""
    params = {"lang": st.session_state.get("lang", "en")}
    if presenting():
        params["present"] = "1"
    return params


def guided_path(key: str, by_key: dict[str, st.Page]) -> None:
    """'← previous stage' and 'next stage →' at the end of a stage page."""
    keys = list(STAGES)
    i = keys.index(key)
    st.divider()
    left, right = st.columns(2)
    with left:
        prev_key = keys[i - 1] if i else ""
        label = _(STAGES[prev_key][1]) if prev_key else _("Start: choose an image and a model")
        st.page_link(by_key[prev_key], label=_("Previous: {title}").format(title=label), icon=":material/arrow_back:",
                     query_params=keep_params())
    with right:
        if i + 1 < len(keys):
            st.page_link(by_key[keys[i + 1]], label=_("Next: {title}").format(title=_(STAGES[keys[i + 1]][1])),
                         icon=":material/arrow_forward:", query_params=keep_params())
        else:
            st.page_link(by_key[""], label=_("Back to the start: try another image or model"), icon=":material/home:",
                         query_params=keep_params())


def sidebar() -> None:
    """Language, projector mode, then the current image, model and device, on every page."""
    image, choice = current_image(), current_model()
    ss = st.session_state
    with st.sidebar:
        ss["lang_switch"] = ss.get("lang", "en")
        st.segmented_control(_("Language"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang_switch",
                             on_change=set_from_switch, args=("lang_switch",), selection_mode="single")
        ss["present_switch"] = presenting()
        st.toggle(_("Projector mode"), key="present_switch", on_change=_set_present,
                  help=_("Larger type, one figure per row and the sidebar folded away, for a class watching a "
                         "projector. A link with ?present=1 opens in this mode."))
        st.image(display_image(image.image), caption=image_label(image), width=160)
        model = choice.model
        cfg = model.config
        trained = _("untrained") if model.meta.get("untrained") else _("trained")
        st.markdown(f"**{_('Model')}:** {choice.label}  \n{trained} · {cfg.image_size}px · P={cfg.patch_size} · "
                    f"D={cfg.dim} · L={cfg.depth} · H={cfg.heads}")
        st.caption(_("Device: {device}").format(device=device_text(model)))
        trace = current_trace()
        st.download_button(_("Download the trace (.npz)"), data=lambda: trace_npz(trace), file_name="vit-trace.npz",
                           mime="application/octet-stream", key="download_trace", on_click="ignore",
                           help=_("Every stage for this image and model as numpy arrays. Figures have a camera "
                                  "button in their toolbar for a PNG."))
        st.caption(_("Your image and choices live only in this browser tab: reloading the page starts a new "
                     "session, with the default image and model."))
