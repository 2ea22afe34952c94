"""Content jobs. Each opens its own transactions and is idempotent."""

from __future__ import annotations

from app.content import editing
from app.core.queues import job


@job
def push_due_announcements() -> int:
    """Announcements published ahead of their window, pushed once it opens."""
    return editing.push_due_announcements()


@job
def fan_out_announcement(version_id: int, published_at: str) -> int:
    """A segment or VIP announcement, one event per targeted player."""
    return editing.fan_out_announcement(version_id, published_at)
