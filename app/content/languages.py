"""Language codes of content versions and the choice of the version a reader gets.

A code is a lower-case BCP 47 language tag of the common shape ``xx`` or ``xx-yy``
(``en``, ``pt-br``, ``es-419``). The reader asks with ``?lang=`` (exact, then its primary
language) or ``Accept-Language`` (parsed by werkzeug; the tags in order of quality, each exact
then by its primary language); a missing version falls back to the operator setting
``content_fallback_language``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from werkzeug.datastructures import LanguageAccept

from app.core import opsettings
from app.core.errors import ValidationError

_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
DEFAULT_FALLBACK = "en"


def normalize(raw: str, *, field: str = "language") -> str:
    code = raw.strip().replace("_", "-").lower()
    if not _CODE.match(code):
        raise ValidationError.field(field, "A language code such as en, de or pt-br")
    return code


def fallback() -> str:
    """The operator's fallback language (an unusable stored value reads as ``en``)."""
    raw = opsettings.value("content_fallback_language") or DEFAULT_FALLBACK
    try:
        return normalize(str(raw))
    except ValidationError:
        return DEFAULT_FALLBACK


def choose(
    available: Iterable[str], requested: str | None, accept: LanguageAccept | None
) -> str | None:
    """The language of the version to serve among ``available``, or ``None`` (none fits and
    there is no version in the fallback language either)."""
    langs = list(available)
    if not langs:
        return None
    if requested:
        primary = requested.split("-", 1)[0]
        for wanted in (requested, primary):
            if wanted in langs:
                return wanted
    elif accept:
        # werkzeug parsed the header into (tag, quality), best first. Its ``best_match`` only
        # tries a region's primary language when nothing matches exactly, so "de-CH,
        # en;q=0.1" would give en although German is preferred: walk the tags in order.
        for tag, quality in accept:
            if quality <= 0 or tag == "*":
                continue
            code = tag.lower().replace("_", "-")
            for wanted in (code, code.split("-", 1)[0]):
                if wanted in langs:
                    return wanted
    back = fallback()
    if back in langs:
        return back
    return None
