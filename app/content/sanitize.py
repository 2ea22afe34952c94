"""Rich text from staff, made safe for the player app before it is stored.

Invariants:
* A body is stored only as ``clean_html`` returned it: ammonia (``nh3``) keeps a fixed list of
  formatting tags and attributes and drops everything else — ``<script>``/``<style>`` with
  their content, every ``on*`` event handler, ``style``, ``<iframe>``/``<object>``/``<svg>``,
  forms — and keeps links only to ``http``, ``https`` and ``mailto`` (no ``javascript:``,
  ``data:`` or ``vbscript:``), with ``rel="noopener noreferrer nofollow"``.
* Titles are plain text: markup in a title is refused (a 400), not silently altered.
* NUL bytes are refused everywhere (PostgreSQL cannot store them, and they hide payloads).
"""

from __future__ import annotations

import re

import nh3

from app.core.errors import ValidationError

TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "mark", "ol", "p",
        "pre", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "th",
        "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "abbr": {"title"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_BODY = 100_000
MAX_TITLE = 200
_MARKUP = re.compile(r"[<>]")


def clean_html(raw: str, *, field: str = "body") -> str:
    if "\x00" in raw:
        raise ValidationError.field(field, "NUL bytes are not allowed")
    if len(raw) > MAX_BODY:
        raise ValidationError.field(field, f"At most {MAX_BODY} characters")
    return nh3.clean(
        raw,
        tags=set(TAGS),
        # ammonia drops these tags together with their content (not just the tags).
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


def clean_title(raw: str, *, field: str = "title") -> str:
    text = raw.strip()
    if "\x00" in text:
        raise ValidationError.field(field, "NUL bytes are not allowed")
    if not text:
        raise ValidationError.field(field, "A title is required")
    if len(text) > MAX_TITLE:
        raise ValidationError.field(field, f"At most {MAX_TITLE} characters")
    if _MARKUP.search(text):
        raise ValidationError.field(field, "Titles are plain text: no < or >")
    return text
