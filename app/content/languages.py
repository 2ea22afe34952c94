"""Language codes of content versions and the choice of the version a reader gets.

A code is a lower-case BCP 47 language tag of the common shape ``xx`` or ``xx-yy``
(``en``, ``pt-br``, ``es-419``). The reader asks with ``?lang=`` (exact, then its primary
language) or ``Accept-Language`` (werkzeug's parser and matcher: quality values, and a primary
tag standing in for a region); a missing version falls back to the operator setting
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
        best = accept.best_match(langs)
        if best is not None:
            return best.lower()
    back = fallback()
    if back in langs:
        return back
    return None
