"""Read what the development SMS backend wrote (``SMS_DIR``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask import current_app


def messages_to(number: str) -> list[dict]:
    directory = Path(current_app.config["SMS_DIR"])
    if not directory.exists():
        return []
    found = []
    for path in sorted(directory.glob("*.json")):
        message = json.loads(path.read_text())
        if message["to"] == number:
            found.append(message)
    return found


def last_code(number: str) -> str:
    messages = messages_to(number)
    assert messages, f"no SMS was written for {number}"
    match = re.search(r"\b(\d{6})\b", messages[-1]["body"])
    assert match, messages[-1]["body"]
    return match.group(1)
