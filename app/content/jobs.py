"""Content jobs. Each opens its own transactions and is idempotent."""

from __future__ import annotations

from app.content import editing
from app.core.queues import job


@job
def push_due_announcements() -> int:
    """Announcements published ahead of their window, pushed once it opens."""
    return editing.push_due_announcements()
