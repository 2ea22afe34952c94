"""Moderation of what players write to support (tickets and live chat), before it is stored.

Control characters, an empty or over-long message and the operator's blocked words
(setting ``chat_blocked_words``, whole words, any case) are a 400 on field ``message``;
more than ``chat_messages_per_minute`` player messages in a minute (every connection and the
HTTP API together) is a 429. Nothing is stored when a message is refused.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from app.core import opsettings
from app.core.base import utcnow
from app.core.errors import RateLimited, ValidationError
from app.core.extensions import db
from app.messaging.models import SupportMessage

#: A ticket's message; a chat line is shorter (``app.messaging.chat.MAX_CHAT_MESSAGE``).
MAX_BODY = 5000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def moderate(text: Any, *, limit: int = MAX_BODY) -> str:
    """The message as stored, or a ``ValidationError`` on field ``message``."""
    if not isinstance(text, str):
        raise ValidationError.field("message", "Write a message")
    if _CONTROL.search(text):
        raise ValidationError.field("message", "The message contains control characters")
    body = text.strip()
    if not body:
        raise ValidationError.field("message", "Write a message")
    if len(body) > limit:
        raise ValidationError.field("message", f"At most {limit} characters")
    lowered = body.lower()
    for word in opsettings.value("chat_blocked_words") or []:
        if re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", lowered):
            raise ValidationError.field(
                "message", "The message contains a word that is not allowed here"
            )
    return body


def throttle(user_id: int) -> None:
    """At most ``chat_messages_per_minute`` player messages in the last minute."""
    limit = opsettings.value("chat_messages_per_minute")
    since = utcnow() - timedelta(minutes=1)
    sent = db.session.scalar(
        select(func.count(SupportMessage.id)).where(
            SupportMessage.author_id == user_id,
            SupportMessage.author_kind == "player",
            SupportMessage.created_at > since,
        )
    )
    if (sent or 0) >= limit:
        raise RateLimited(f"At most {limit} messages a minute; wait a moment")
