"""The language of the page: from ``?lang=``, else the sidebar switch, else the browser's language.

It is kept in the session, written back into the URL (so a copied link keeps it) and set for the
thread that runs this session's script, where :func:`vit.i18n.gettext` finds it, figures included.
"""

from __future__ import annotations

import re

import streamlit as st

from vit import i18n
from vit.i18n import LANGUAGES, N_, gettext as _, ngettext  # noqa: F401  (re-exported for pages)

__all__ = ["LANGUAGES", "N_", "_", "ngettext", "choose_language", "language", "error_text", "md_escape", "number"]


def from_locale(locale: str | None) -> str:
    """'ko-KR' → 'ko'; anything we do not speak → English."""
    code = (locale or "").replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else i18n.DEFAULT_LANGUAGE


def _browser_locale() -> str | None:
    try:
        return st.context.locale
    except Exception:  # no browser behind this run (AppTest)
        return None


def choose_language() -> str:
    """Settle this run's language and make it active. The URL wins, so a shared link opens in its language."""
    ss = st.session_state
    wanted = st.query_params.get("lang")
    if wanted in LANGUAGES:
        ss["lang"] = wanted
    elif ss.get("lang") not in LANGUAGES:
        ss["lang"] = from_locale(_browser_locale())
    lang = i18n.set_language(ss["lang"])
    if st.query_params.get("lang") != lang:
        st.query_params["lang"] = lang
    return lang


def language() -> str:
    return i18n.language()


def set_from_switch(widget_key: str) -> None:
    """on_change of the sidebar switch: the new language, into the session and the URL."""
    lang = st.session_state.get(widget_key)
    if lang in LANGUAGES:
        st.session_state["lang"] = lang
        st.query_params["lang"] = lang
        i18n.set_language(lang)


def error_text(error: Exception) -> str:
    """A library error in the page's language: errors with a ``template`` and ``params`` are translated,
    others shown as their own (English) text."""
    template, params = getattr(error, "template", None), getattr(error, "params", None)
    if template and isinstance(params, dict):
        try:
            return _(template).format(**params)
        except (KeyError, IndexError, ValueError):
            return template.format(**params)
    return str(error)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$&:])")


def md_escape(text: object) -> str:
    """User-supplied text (a file name, a class name) made safe to put into Streamlit markdown or a caption:
    every markdown, LaTeX (``$``) and HTML character is backslash-escaped, and a bare web address is broken
    by an invisible zero-width space, so it shows as the text itself, never as a link, an image fetched
    from elsewhere, a formula or markup."""
    text = str(text).replace("\n", " ")
    # GitHub-flavoured markdown turns a bare "https://…" or "www.…" into a link even when escaped: a
    # zero-width space after "//" and "www" keeps it text (and invisible).
    text = re.sub(r"(?i)(://|\bwww)(?=\S)", lambda m: m.group(1) + "\u200b", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def number(value: float, digits: int = 0) -> str:
    """A number with thousands separators, the same in both languages (1,234.5)."""
    return f"{value:,.{digits}f}"
