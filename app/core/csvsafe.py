"""CSV files that a spreadsheet opens as data, never as formulas (CSV/formula injection).

A cell that starts with ``= + - @``, a tab or a carriage return can be run as a formula by
Excel, LibreOffice or Google Sheets; such a text cell is written with a leading apostrophe
(OWASP's advice), which spreadsheets show as text. A cell that is just a number (``-12.50``:
a negative amount in a report) is no formula and stays as it is, so figures stay figures.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import IO, Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def cell(value: Any) -> Any:
    """``value`` as written to a CSV: text that a spreadsheet could run gets an apostrophe."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose every cell goes through ``cell``."""

    def __init__(self, stream: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(stream: IO[str], **kwargs: Any) -> SafeWriter:
    """The one way the app writes CSV (``csv.writer``'s arguments)."""
    return SafeWriter(stream, **kwargs)
