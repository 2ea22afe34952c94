"""Core jobs: mail delivery (one per queued mail, plus a sweep that retries what is pending),
the outbox relay and stored notifications. Each takes plain values, opens its own transaction
and is idempotent."""

from __future__ import annotations

from typing import Any

from app.core import mail, notifications, outbox
from app.core.db import atomic
from app.core.queues import job


@job
def deliver_email(outbox_id: int) -> str:
    return mail.deliver(outbox_id)


@job
def deliver_pending() -> int:
    ids = mail.pending_ids()
    for outbox_id in ids:
        mail.deliver(outbox_id)
    return len(ids)


# Jobs of the real-time layer. Each takes plain values, opens its own transaction and is
# idempotent: running it twice has the effect of running it once.


@job
def relay_outbox() -> dict[str, Any]:
    """Drain the outbox to Redis (periodic; also the recovery path after an outage)."""
    report = outbox.drain()
    if report.error:
        # Failing makes RQ keep the job in the failed registry: staff see the outage.
        raise RuntimeError(f"outbox relay stopped: {report.error}")
    return {"delivered": report.delivered, "pending": report.pending, "skipped": report.skipped}


@job
def send_notification(
    user_id: int,
    type: str,
    title: str,
    message: str,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> int | None:
    """Store and push one notification; with a ``dedupe_key`` a rerun sends nothing."""
    with atomic():
        created = notifications.notify(
            user_id, type, title, message, data=data, dedupe_key=dedupe_key
        )
        return created.id if created else None
