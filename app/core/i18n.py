"""Languages: which one a request, a staff page or an e-mail speaks, and the catalogues.

Flask-Babel translates the console, the e-mails and the API's error ``message`` (the
``code`` never changes). The catalogues are ``app/translations/<lang>/LC_MESSAGES/
messages.po`` in the repository; the ``.mo`` files are build output (``make``/Dockerfile run
``pybabel compile``; ``compile_catalogues`` does it at start outside production when a
``.mo`` is missing or older than its ``.po``, so a clean clone runs as is).

Invariants:
* The languages players and staff may get are the operator setting ``languages_enabled``
  (``app.core.opsettings``), restricted to the catalogues shipped (``AVAILABLE``); the first
  enabled language is the fallback. English is the source language: an untranslated text
  shows in English, never as an empty string.
* API (``/api/...``): ``?lang=`` first, then the signed-in player's stored ``language``,
  then ``Accept-Language``, then the fallback. Console: the staff member's stored choice
  (the language switcher), then ``Accept-Language`` (the login page), then the fallback.
  E-mail: the recipient's stored language, rendered under ``force_locale``.
* ``translate_message`` looks an error message up by its English text (a gettext msgid): a
  message built at run time (with figures in it) has no entry and stays as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale, gettext
from flask_babel import force_locale as force_locale  # re-exported for the mail templates
from flask_login import current_user

from app.core import errors, opsettings

log = logging.getLogger(__name__)

babel = Babel()

#: The languages a catalogue ships for (English is the source: it has none).
AVAILABLE: dict[str, str] = {"en": "English", "de": "Deutsch"}
SOURCE_LANGUAGE = "en"
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark ``message`` for extraction without translating it now (translated where shown)."""
    return message


class Msg:
    """A text written in English now and shown later in someone else's language: the
    recipient's (a notification, an SMS), not the request's. ``Msg("Rank %(rank)s", rank=2)``
    is extracted like ``_()``; :meth:`render` translates it in the locale in force
    (``force_locale``) and fills in the values."""

    __slots__ = ("params", "text")

    def __init__(self, text: str, **params: Any) -> None:
        self.text = text
        self.params = params

    def render(self) -> str:
        return gettext(self.text, **self.params) if self.params else gettext(self.text)

    def __repr__(self) -> str:
        return f"Msg({self.text!r}, **{self.params!r})"


#: ``user id -> stored language`` (``app.hooks`` installs identity's lookup; core never
#: imports the user model).
_stored_language_of: Callable[[int], str | None] | None = None


def set_user_language_lookup(lookup: Callable[[int], str | None] | None) -> None:
    global _stored_language_of
    _stored_language_of = lookup


def language_of_user(user_id: int | None) -> str:
    """The language to write to this user in: their stored one if enabled, else the
    fallback (the first enabled language)."""
    stored = (
        _stored_language_of(user_id)
        if user_id is not None and _stored_language_of is not None
        else None
    )
    return language_for(stored)


def in_language(language: str, *texts: str | Msg) -> list[str]:
    """Each text in ``language``: a :class:`Msg` translated and filled in, a plain string
    (a name, staff-written text) as it is."""
    with force_locale(language):
        return [t.render() if isinstance(t, Msg) else t for t in texts]


def enabled_languages() -> list[str]:
    """The operator's enabled languages that have a catalogue, fallback first."""
    try:
        chosen = opsettings.value("languages_enabled") or []
    except Exception:  # no database yet (a CLI before migrations): the built-in default
        log.debug("languages_enabled unreadable; using the built-in default", exc_info=True)
        chosen = list(AVAILABLE)
    languages = [code for code in chosen if code in AVAILABLE]
    return languages or [SOURCE_LANGUAGE]


def normalise(code: str | None) -> str | None:
    """``"de-AT"`` / ``"DE_de"`` → ``"de"`` if that language is enabled, else ``None``."""
    if not code or not isinstance(code, str):
        return None
    base = code.strip().replace("_", "-").split("-")[0].lower()[:8]
    return base if base in enabled_languages() else None


def language_for(stored: str | None) -> str:
    """The language a mail to someone who stored ``stored`` is written in."""
    return normalise(stored) or enabled_languages()[0]


def _best_of_header(languages: list[str]) -> str | None:
    return request.accept_languages.best_match(languages) if request.accept_languages else None


def select_locale() -> str:
    """Flask-Babel's locale selector (see the module docstring for the order)."""
    languages = enabled_languages()
    if not has_request_context():
        return languages[0]
    if request.path.startswith("/api"):
        chosen = normalise(request.args.get("lang"))
        if chosen is None:
            user = g.get("user")
            chosen = normalise(getattr(user, "language", None))
    else:
        chosen = None
        try:
            if current_user and current_user.is_authenticated:
                chosen = normalise(current_user.language)
        except Exception:  # no login manager on this app (a bare test app)
            chosen = None
    return chosen or _best_of_header(languages) or languages[0]


def current_language() -> str:
    locale = get_locale()
    return locale.language if locale is not None else SOURCE_LANGUAGE


def translate_message(message: Any) -> Any:
    """An error message in the request's language when the catalogue has it, else as is."""
    if not isinstance(message, str) or not message:
        return message
    try:
        return gettext(message)
    except Exception:  # a catalogue must never turn an error answer into a 500
        log.warning("translation of %r failed", message, exc_info=True)
        return message


def translate_errors(errors: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
    if not errors:
        return errors
    return [{**item, "message": translate_message(item.get("message"))} for item in errors]


def catalogue_paths(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    return sorted(directory.glob("*/LC_MESSAGES/messages.po"))


def compile_catalogues(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Write each ``.mo`` that is missing or older than its ``.po``; fuzzy entries are left
    out (as ``pybabel compile`` does). Returns the files written."""
    written = []
    for po in catalogue_paths(directory):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as handle:
            catalog = read_po(handle)
        tmp = mo.with_suffix(".mo.tmp")
        with tmp.open("wb") as handle:
            write_mo(handle, catalog, use_fuzzy=False)
        tmp.replace(mo)  # atomic: a concurrent start never reads half a file
        written.append(mo)
    return written


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", SOURCE_LANGUAGE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    if app.config.get("ENV") != "production":
        try:
            compile_catalogues()
        except OSError:  # a read-only checkout: the build must have compiled them
            log.warning("could not compile the message catalogues", exc_info=True)
    babel.init_app(app, locale_selector=select_locale)
    # Whitespace inside {% trans %} is normalised, as the extraction (babel.cfg) does.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    errors.set_message_translator(translate_message)

    @app.context_processor
    def _languages() -> dict[str, Any]:
        return {
            "current_language": current_language,
            "enabled_languages": lambda: [(c, AVAILABLE[c]) for c in enabled_languages()],
        }


#: What marshmallow/webargs and the API's own handlers say in a validation error's
#: ``errors[].message``: listed here so that they are extracted and translated like the rest.
LIBRARY_MESSAGES = (
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Unknown field."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Not a valid decimal."),
    N_("Not a valid string."),
    N_("Not a valid boolean."),
    N_("Not a valid datetime."),
    N_("Not a valid date."),
    N_("Not a valid list."),
    N_("Not a valid mapping type."),
    N_("Not a valid email address."),
    N_("Not a valid URL."),
    N_("Not a valid UUID."),
    N_("Invalid input type."),
    N_("Invalid value."),
    N_("Invalid JSON body."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("Validation failed"),
    N_("Method Not Allowed"),
    N_("The method is not allowed for the requested URL."),
    N_(
        "The requested URL was not found on the server. If you entered the URL manually please "
        "check your spelling and try again."
    ),
    N_("Not Found"),
    N_("Unsupported Media Type"),
    N_("An unexpected error occurred"),
)
