"""Every visible text of a console template is marked for translation.

The catalogue test (``test_i18n_catalogue.py``) checks that what is *marked* is translated;
this one checks that nothing visible is left *unmarked*. Each template under
``app/templates/console`` is lexed by Jinja: the text outside ``{{ }}``, ``{% %}`` and
``{% trans %}...{% endtrans %}`` is parsed as HTML, and any text node or visible attribute
(``title``, ``placeholder``, ``aria-label``, ``alt``, ``data-confirm``, ``hx-confirm``) that
still holds a word fails here, with its file and line. Codes and brand names that read the
same in every language are in ``ALLOWED``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment

ROOT = Path(__file__).resolve().parents[2] / "app" / "templates" / "console"

#: Visible attributes (a text the reader sees or hears).
VISIBLE_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "data-confirm", "hx-confirm"}

#: Texts that are the same in every language: codes, units, brand names, symbols.
ALLOWED = {
    "JX",
    "JackpotX",
    "GGR",
    "RTP",
    "NGR",
    "ID",
    "IP",
    "CSV",
    "UTC",
    "TOTP",
    "KYC",
    "SMS",
    "OK",
    "ClickHouse",
    "HTMX",
    "HTTP",
    "API",
    "EUR",
    "px",
    "KB",
}

#: A string literal in an expression that reads as an English text (a panel title, a
#: macro's label, a confirmation): it starts with a capitalised word.
SENTENCE = re.compile(r"[A-Z][a-z]+\b")
#: The calls that translate their first argument: _( gettext( ngettext( N_(
TRANSLATING = [[name, "("] for name in ("_", "gettext", "ngettext", "N_", "translate")]

#: Elements whose text is code, never translated.
SKIPPED = {"script", "style", "code", "pre", "kbd", "samp"}

#: Where a placeholder stands for Jinja code (an expression, a tag, a translated block).
HOLE = "\x00"
WORD = re.compile(r"[^\W\d_]{2,}")


class _Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIPPED:
            self._skip += 1
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value:
                self._check(value)

    def handle_endtag(self, tag):
        if tag in SKIPPED and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self._check(data)

    def _check(self, text: str) -> None:
        for piece in text.split(HOLE):
            words = [w for w in WORD.findall(piece) if w not in ALLOWED]
            if words:
                self.found.append((self.getpos()[0], " ".join(piece.split())))


def unmarked(source: str) -> list[tuple[int, str]]:
    """The visible English left outside translation calls in one template's source."""
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    parts: list[str] = []
    found: list[tuple[int, str]] = []
    previous: list[str] = ["", ""]
    depth = 0
    raw = False
    inside_tag = False
    for _lineno, token, value in env.lex(source):
        if token == "name" and value == "trans" and inside_tag:
            depth += 1
        elif token == "name" and value == "endtrans" and inside_tag:
            depth -= 1
        if token == "raw_begin":
            raw = True
        elif token == "raw_end":
            raw = False
        if token in ("block_begin", "variable_begin"):
            inside_tag = True
        elif token in ("block_end", "variable_end"):
            inside_tag = False
        if token == "string" and depth == 0 and previous[-2:] not in TRANSLATING:
            text = str(value)[1:-1]
            if SENTENCE.match(text) and text not in ALLOWED:
                found.append((_lineno, text))
        if token not in ("whitespace",):
            previous = [*previous[-1:], str(value)]
        if token == "data" and depth == 0 and not raw:
            parts.append(value)
        elif token in ("variable_begin", "block_begin", "comment_begin", "raw_begin"):
            # One placeholder per Jinja construct; keep the line count for the report.
            parts.append(HOLE)
        elif token == "data":
            parts.append(HOLE + "\n" * value.count("\n"))
        else:
            parts.append("\n" * str(value).count("\n"))
    text = "".join(parts)
    # A tag whose name is an expression (<{{ tag }} ...>) is still a tag.
    text = text.replace("<" + HOLE, "<jx-hole").replace("</" + HOLE, "</jx-hole")
    parser = _Texts()
    parser.feed(text)
    parser.close()
    return sorted(found + parser.found)


TEMPLATES = sorted(ROOT.rglob("*.html"))


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_visible_text_is_left_unmarked(path):
    found = unmarked(path.read_text(encoding="utf-8"))
    assert not found, "\n".join(f"{path.name}:{line}: {text!r}" for line, text in found)


def test_the_check_finds_an_unmarked_text_and_accepts_marked_ones():
    assert unmarked("<p>{{ _('Save') }}</p><p>{% trans %}Hello{% endtrans %}</p>") == []
    assert unmarked("<td>{{ row.name }}</td><b>GGR</b><span>€ 1</span>") == []
    assert [t for _, t in unmarked("<h1>Support inbox</h1>")] == ["Support inbox"]
    assert [t for _, t in unmarked('<a title="Open it" href="{{ u }}">x</a>')] == ["Open it"]
    assert [t for _, t in unmarked("<p>{{ n }} days left</p>")] == ["days left"]
    assert unmarked("<script>const shown = 'English';</script>") == []
