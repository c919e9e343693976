"""Errors and notes a person reads, in English for the library and translatable for the app.

A :class:`UserError` carries a stable ``code`` ("too_many_pixels"), the English ``template`` with
``{placeholders}`` (marked with ``N_`` where it is written, so the catalogue extractor sees it) and
its ``params``. ``str(error)`` is the English sentence, exactly ``template.format(**params)``; the
app shows ``gettext(template).format(**params)`` instead (``ui.i18n.error_text``).

A parameter that is itself a sentence fragment needing translation (a "(white)", "it looks like a
PDF document", one of several problems) is a :class:`Message`, or a :class:`Joined` list of them:
formatted into a template it renders in the active language, while ``str()`` and the error's own
English text always use the English. A parameter that is the user's own text (a file name, a colour
they typed) stays a plain string and is never pasted into a template.

>>> e = UserError("empty_file", "The file is empty ({n} bytes).", n=0)
>>> str(e), e.code, e.params
('The file is empty (0 bytes).', 'empty_file', {'n': 0})
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .i18n import gettext

__all__ = ["UserError", "Message", "Joined", "english", "reason"]


def english(value: Any) -> Any:
    """``value`` with any :class:`Message`/:class:`Joined` rendered in English (others unchanged)."""
    return value.english() if isinstance(value, (Message, Joined)) else value


def _english_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: english(v) for k, v in params.items()}


class Message:
    """A template and its params: English by ``str()``, the active language when formatted into text."""

    __slots__ = ("template", "params")

    def __init__(self, template: str, /, **params: Any) -> None:
        self.template = template
        self.params = params

    def english(self) -> str:
        return self.template.format(**_english_params(self.params))

    def text(self) -> str:
        """The message in the active language (:func:`vit.i18n.gettext`)."""
        return gettext(self.template).format(**self.params)

    def __format__(self, spec: str) -> str:
        return format(self.text(), spec)

    def __str__(self) -> str:
        return self.english()

    def __repr__(self) -> str:
        return f"Message({self.template!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.template, self.params) == (other.template, other.params)

    def __hash__(self) -> int:
        return hash(self.template)

    def __getstate__(self):
        return self.template, self.params

    def __setstate__(self, state) -> None:
        self.template, self.params = state


class Joined:
    """Several messages (or plain strings) joined by ``sep``, each rendered like a :class:`Message`."""

    __slots__ = ("items", "sep")

    def __init__(self, items: Iterable[Any], sep: str = "; ") -> None:
        self.items = list(items)
        self.sep = sep

    def english(self) -> str:
        return self.sep.join(str(english(i)) for i in self.items)

    def __format__(self, spec: str) -> str:
        return format(self.sep.join(format(i, "") for i in self.items), spec)

    def __str__(self) -> str:
        return self.english()

    def __repr__(self) -> str:
        return f"Joined({self.items!r}, sep={self.sep!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Joined) and (self.items, self.sep) == (other.items, other.sep)

    def __hash__(self) -> int:
        return hash(self.sep)

    def __getstate__(self):
        return self.items, self.sep

    def __setstate__(self, state) -> None:
        self.items, self.sep = state


class UserError(Exception):
    """An error whose message is meant for a person: ``code``, ``template`` and ``params``.

    ``UserError(code, template, **params)``; ``str(e)`` is ``template.format(**params)`` in English.
    Subclasses mix it with a built-in error (``class ImageError(UserError, ValueError)``). A single
    argument is taken as a plain, already written message (code ``"error"``), so older callers and
    unpickling keep working.
    """

    code: str
    template: str
    params: dict[str, Any]

    def __init__(self, code: str, template: str | None = None, /, **params: Any) -> None:
        if template is None:  # a plain message: its braces are literal text
            message = str(code)
            code, template, params = "error", message.replace("{", "{{").replace("}", "}}"), {}
        self.code = code
        self.template = template
        self.params = params
        super().__init__(Message(template, **params).english())

    @property
    def message(self) -> Message:
        """The error as a :class:`Message`, to nest inside another error's template."""
        return Message(self.template, **self.params)

    def text(self) -> str:
        """The message in the active language."""
        return self.message.text()


def reason(error: BaseException) -> Any:
    """What to put in a "({reason})" param for ``error``: its :class:`Message` when it has one
    (a :class:`UserError`, or an exception raised with a Message), else its own text."""
    if isinstance(error, UserError):
        return error.message
    if len(error.args) == 1 and isinstance(error.args[0], (Message, Joined)):
        return error.args[0]
    return str(error)
