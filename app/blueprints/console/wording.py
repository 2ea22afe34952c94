"""Validation messages in staff wording.

marshmallow, WTForms and the services speak to developers ("Missing data for required field.",
"Not a valid integer.", "date_to is before date_from"). The console shows every message next
to its field, so the field's name is already on screen: ``human(message, label)`` rewrites the
library phrasings into short sentences and replaces any snake_case field name left in a text
with the label the form shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_FIXED: dict[str, str] = {
    "Missing data for required field.": "{label} is required.",
    "This field is required.": "{label} is required.",
    "Field may not be null.": "{label} is required.",
    "Not a valid integer.": "Enter a whole number, e.g. 10.",
    "Not a valid number.": "Enter a number, e.g. 12.50.",
    "Not a valid decimal.": "Enter a number, e.g. 12.50.",
    "Not a valid datetime.": "Enter a date and time (UTC).",
    "Not a valid date.": "Enter a date.",
    "Not a valid boolean.": "Tick or untick the box.",
    "Not a valid string.": "Enter text.",
    "Not a valid list.": "Enter values separated by commas.",
    "Not a valid mapping type.": "Write one key=value per line.",
    "Unknown field.": "This field is not accepted here.",
    "Not a valid choice.": "Choose one of the options.",
    "Invalid value.": "Enter a valid value.",
}

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Must be one of: .*\.$"), "Choose one of the options."),
    (
        re.compile(r"^Must be greater than or equal to (.+) and less than or equal to (.+)\.$"),
        r"Enter a value from \1 to \2.",
    ),
    (re.compile(r"^Must be greater than or equal to (.+)\.$"), r"Must be at least \1."),
    (re.compile(r"^Must be less than or equal to (.+)\.$"), r"Must be at most \1."),
    (re.compile(r"^Must be greater than (.+)\.$"), r"Must be more than \1."),
    (re.compile(r"^Shorter than minimum length (\d+)\.$"), r"Enter at least \1 characters."),
    (re.compile(r"^Longer than maximum length (\d+)\.$"), r"Enter at most \1 characters."),
    (
        re.compile(r"^Field must be at least (\d+) characters? long\.$"),
        r"Enter at least \1 characters.",
    ),
    (
        re.compile(r"^Field cannot be longer than (\d+) characters?\.$"),
        r"Enter at most \1 characters.",
    ),
    (
        re.compile(r"^Field must be between (\d+) and (\d+) characters long\.$"),
        r"Enter \1 to \2 characters.",
    ),
]

_SNAKE = re.compile(r"\b[A-Za-z]+(?:_[a-z0-9]+)+\b")


def clean_label(label: str) -> str:
    """``"Sales close at (UTC) *"`` → ``"Sales close at"``."""
    return re.sub(r"\s*(\(UTC\))?\s*\*?\s*$", "", label).strip()


def human(message: str, label: str = "This field", labels: Mapping[str, str] | None = None) -> str:
    """One validation message in staff wording; ``labels`` maps field names to labels."""
    text = (message or "").strip()
    label = clean_label(label) or "This field"
    if text in _FIXED:
        return _FIXED[text].format(label=label)
    for pattern, replacement in _PATTERNS:
        if pattern.match(text):
            return pattern.sub(replacement, text)

    def name_to_label(match: re.Match[str]) -> str:
        word = match.group(0)
        known = (labels or {}).get(word.lower())
        shown = clean_label(known) if known else word.replace("_", " ").lower()
        return f"“{shown}”"

    text = _SNAKE.sub(name_to_label, text)
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    if text and text[-1] not in ".!?":
        text += "."
    return text
