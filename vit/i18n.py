"""The language the app's words are rendered in: gettext catalogues read with Babel.

Message ids are the English text itself, so the library speaks English unless a caller chooses
otherwise, and a message missing from a catalogue falls back to English rather than to nothing.
Catalogues are gettext ``.po`` files, one per part of the app (a gettext *domain*), under
``locales/<language>/LC_MESSAGES/``; they are compiled in memory with Babel the first time a
language is used, so there is no build step and no compiled file to go stale.

The active language is a :class:`contextvars.ContextVar`: each Streamlit session runs its script in
its own thread, so one student's choice of Korean never changes another's page.

>>> with use_language("ko"):
...     text = gettext("Patches")
"""

from __future__ import annotations

import functools
import gettext as _gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

__all__ = ["LANGUAGES", "LOCALE_DIR", "gettext", "ngettext", "N_", "language", "set_language", "use_language",
           "catalogue", "translations"]

LANGUAGES = {"en": "English", "ko": "한국어"}
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"

_language: ContextVar[str] = ContextVar("vit_language", default=DEFAULT_LANGUAGE)


def N_(message: str) -> str:
    """Mark a message for the catalogue without translating it now (it is translated where shown)."""
    return message


def catalogue(lang: str, locale_dir: Path = LOCALE_DIR):
    """Every message of ``lang`` as one Babel :class:`~babel.messages.catalog.Catalog`, all domains merged."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    merged = Catalog(locale=lang, fuzzy=False, charset="utf-8")
    for po in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as f:
            for message in read_po(f, locale=lang):
                if message.id and message.string and not message.fuzzy:
                    merged[message.id] = message
    return merged


@functools.cache
def translations(lang: str) -> _gettext.NullTranslations:
    """gettext translations for ``lang``, compiled once per process; English is the identity."""
    if lang == DEFAULT_LANGUAGE or lang not in LANGUAGES:
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo

    buf = io.BytesIO()
    write_mo(buf, catalogue(lang))
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def language() -> str:
    return _language.get()


def set_language(lang: str) -> str:
    """Make ``lang`` the language of this thread's (this session's) words; unknown codes mean English."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    _language.set(lang)
    return lang


@contextmanager
def use_language(lang: str) -> Iterator[str]:
    token = _language.set(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield _language.get()
    finally:
        _language.reset(token)


def gettext(message: str) -> str:
    """``message`` in the active language (the English text itself when there is no translation)."""
    return translations(_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_language.get()).ngettext(singular, plural, n)
