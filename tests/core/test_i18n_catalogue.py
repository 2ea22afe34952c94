"""The German catalogue is complete: every text the code can show has a reviewed translation.

The texts are extracted in-process with the same configuration as ``make messages``
(``babel.cfg`` + ``app.core.i18n_extract``), so a new ``_("...")`` in a console template, a
new ``ValidationError("...")`` or a new e-mail text fails here until it is translated in
``app/translations/de/LC_MESSAGES/messages.po``.
"""

from __future__ import annotations

import io
import re
import textwrap

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from app.core import i18n_extract
from app.core.i18n import TRANSLATIONS_DIR

#: %(name)s / %(num)d, a literal %%, and Jinja text shown to staff ({{ name }}, {% if %}).
PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%%|\{\{.*?\}\}|\{%.*?%\}")


def _placeholders(text: str) -> list[str]:
    return sorted(m.group(0) for m in PLACEHOLDER.finditer(text))


def _german() -> Catalog:
    with (TRANSLATIONS_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle)


def _forms(value) -> list[str]:
    return list(value) if isinstance(value, list | tuple) else [value]


def problems(code: Catalog, translations: Catalog) -> list[str]:
    """What is wrong with ``translations`` for the texts of ``code`` (empty: complete)."""
    out = []
    for message in code:
        if not message.id:
            continue
        found = translations.get(message.id)
        name = _forms(message.id)[0]
        if found is None:
            out.append(f"missing: {name!r}")
            continue
        strings = _forms(found.string)
        if not all(s and s.strip() for s in strings):
            out.append(f"untranslated: {name!r}")
            continue
        if found.fuzzy:
            out.append(f"fuzzy (review it): {name!r}")
            continue
        wanted = _placeholders(_forms(message.id)[-1])
        for string in strings:
            if _placeholders(string) != wanted:
                out.append(f"placeholders differ: {name!r} -> {string!r}")
    return out


@pytest.fixture(scope="module")
def code_texts() -> Catalog:
    return i18n_extract.extract_catalog()


def test_every_text_of_the_code_has_a_reviewed_german_translation(code_texts):
    assert len(code_texts) > 500  # the extraction itself works (console, mail, API errors)
    assert problems(code_texts, _german()) == []


def test_the_german_catalogue_passes_babels_checks_and_compiles():
    catalog = _german()
    errors = [(m.id, [str(e) for e in errs]) for m, errs in catalog.check() if errs]
    assert errors == []
    assert catalog.fuzzy is False  # pybabel compile refuses a catalogue marked fuzzy
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    assert buffer.getvalue()


def test_a_new_untranslated_text_is_reported(code_texts):
    code = Catalog()
    for message in code_texts:
        if message.id:
            code.add(message.id)
    code.add("A brand new error nobody translated yet")
    code.add("Hello %(name)s")
    german = _german()
    german.add("Hello %(name)s", "Hallo %(nom)s")  # a renamed placeholder breaks the page
    assert problems(code, german) == [
        "missing: 'A brand new error nobody translated yet'",
        "placeholders differ: 'Hello %(name)s' -> 'Hallo %(nom)s'",
    ]


def test_a_fuzzy_or_empty_entry_is_not_a_translation(code_texts):
    code = Catalog()
    code.add("Ticket not found")
    code.add("Token has expired")
    german = _german()
    german.get("Ticket not found").flags.add("fuzzy")
    german.get("Token has expired").string = ""
    assert problems(code, german) == [
        "fuzzy (review it): 'Ticket not found'",
        "untranslated: 'Token has expired'",
    ]


def test_the_extractor_reads_error_messages_and_skips_what_is_built_at_run_time(tmp_path):
    source = textwrap.dedent(
        """
        UNKNOWN = "No such widget"

        class WidgetBusy(Conflict):
            status, code, message = 409, "WIDGET_BUSY", "The widget is busy"

        class WidgetGone(AppError):
            message = "The widget is gone"

        def f(name, items):
            raise NotFound(UNKNOWN)
            raise ValidationError.field("size", "Too big")
            raise ValidationError(f"Widget {name} is broken")
            raise Conflict(f"Widget {name} is used " "by an order")
            raise ValidationError.field("kind", ", ".join(items))
            flash(_("Saved %(name)s", name=name))
            return ngettext("%(num)d widget", "%(num)d widgets", 2)
        """
    )
    found = [
        message
        for _line, _func, message, _comments in i18n_extract.extract(
            io.BytesIO(source.encode()), i18n_extract.KEYWORDS, (), {}
        )
    ]
    assert sorted(map(str, found)) == sorted(
        [
            "No such widget",
            "Too big",
            "Saved %(name)s",
            "('%(num)d widget', '%(num)d widgets')",
            "The widget is busy",
            "The widget is gone",
        ]
    )


def test_every_template_text_survives_jinjas_percent_formatting(code_texts):
    """Jinja's newstyle ``_()`` always applies ``% variables``: a lone ``%`` in a template
    text (``_("RTP %")``) would be a 500 on the page; it must be written ``%%``."""
    german = _german()
    broken = []
    for message in code_texts:
        if not message.id or not any(path.endswith(".html") for path, _ in message.locations):
            continue
        for text in [*_forms(message.id), *_forms(german.get(message.id).string)]:
            names = dict.fromkeys(re.findall(r"%\((\w+)\)", text), 1)
            try:
                text % names
            except (ValueError, TypeError, KeyError) as exc:
                broken.append(f"{text!r}: {exc}")
    assert broken == []
