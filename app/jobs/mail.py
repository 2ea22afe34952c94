"""Mail delivery jobs: one per queued mail, plus a sweep that retries what is still pending."""

from __future__ import annotations

from app.jobs.context import job


@job
def deliver_email(outbox_id: int) -> str:
    from app.services import mail

    return mail.deliver(outbox_id)


@job
def deliver_pending() -> int:
    from app.services import mail

    ids = mail.pending_ids()
    for outbox_id in ids:
        mail.deliver(outbox_id)
    return len(ids)
