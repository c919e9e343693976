"""The catalogues are complete and used: every message in the code has Korean with the same
placeholders, no catalogue entry is unused, and the language machinery keeps sessions apart."""

from __future__ import annotations

import string
import threading
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po

from vit import i18n

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
SOURCES = ["app.py", "app_pages", "ui", "vit"]


def code_messages() -> dict[str, str]:
    """msgid → 'file:line' of every message marked in the code (plural forms count as two ids)."""
    out: dict[str, str] = {}
    for src in SOURCES:
        path = ROOT / src
        found = (extract_from_dir(path, method_map=[("**.py", "python")], keywords=KEYWORDS)
                 if path.is_dir() else ((str(path),) + m for m in extract_from_file("python", path, keywords=KEYWORDS)))
        for item in found:
            filename, lineno, message = item[0], item[1], item[2]
            for text in (message if isinstance(message, tuple) else (message,)):
                if text:
                    out.setdefault(text, f"{src}/{filename}:{lineno}" if path.is_dir() else f"{src}:{lineno}")
    return out


def po_entries() -> dict[str, list[tuple[str, object]]]:
    """msgid → [(catalogue file, Korean)] over every Korean catalogue."""
    out: dict[str, list] = {}
    for po in sorted((ROOT / "locales" / "ko" / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as f:
            for m in read_po(f, locale="ko"):
                if m.id:
                    ids = m.id if isinstance(m.id, tuple) else (m.id,)
                    for i in ids:  # a fuzzy entry is not used by the app: it counts as no translation
                        out.setdefault(i, []).append((po.name, "" if m.fuzzy else m.string))
    return out


def fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def test_every_message_in_the_code_has_korean():
    code, po = code_messages(), po_entries()
    missing = {m: where for m, where in code.items() if not any(s for _f, s in po.get(m, []))}
    assert not missing, f"{len(missing)} messages without Korean, e.g. " + "; ".join(
        f"{where}: {m[:60]!r}" for m, where in list(missing.items())[:8])


def test_no_catalogue_entry_is_unused_or_duplicated():
    code, po = code_messages(), po_entries()
    unused = [m for m in po if m not in code]
    assert not unused, f"{len(unused)} catalogue entries no code uses, e.g. {unused[:5]}"
    twice = {m: [f for f, _s in entries] for m, entries in po.items() if len(entries) > 1}
    assert not twice, f"messages in more than one catalogue: {list(twice.items())[:5]}"


def test_korean_keeps_every_placeholder():
    bad = []
    for m, entries in po_entries().items():
        for _f, s in entries:
            for text in (s if isinstance(s, tuple) else (s,)):
                if text and fields(text) != fields(m):
                    bad.append((m[:50], text[:50]))
    assert not bad, f"placeholders differ: {bad[:5]}"


def test_korean_is_written_in_hangul():
    """A translation that is the English again is not a translation (short technical labels aside)."""
    same = [m for m, entries in po_entries().items() for _f, s in entries
            if s == m and len(m) > 12 and not any("\uac00" <= ch <= "\ud7a3" for ch in m)]
    assert not same, f"untranslated: {same[:5]}"


def test_gettext_follows_the_language_of_each_thread():
    message = "Patches"
    assert i18n.gettext(message) == message  # English by default: the library speaks English
    seen = {}

    def worker(lang):
        i18n.set_language(lang)
        seen[lang] = i18n.gettext(message)

    threads = [threading.Thread(target=worker, args=(lang,)) for lang in ("ko", "en")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["en"] == message and seen["ko"] != message and any("\uac00" <= ch <= "\ud7a3" for ch in seen["ko"])
    assert i18n.gettext(message) == message  # other threads' choices never reach this one
    with i18n.use_language("ko"):
        assert i18n.gettext(message) == seen["ko"]
    assert i18n.language() == "en"


@pytest.mark.parametrize("locale, expected", [("ko-KR", "ko"), ("ko", "ko"), ("en-US", "en"), ("de-DE", "en"), (None, "en")])
def test_browser_locale_picks_the_language(locale, expected):
    from ui.i18n import from_locale
    assert from_locale(locale) == expected


def test_unknown_language_falls_back_to_english():
    with i18n.use_language("xx"):
        assert i18n.language() == "en" and i18n.gettext("Patches") == "Patches"
