"""Outgoing e-mail through an outbox: queued in the business transaction, sent by a job.

Invariants:
* ``queue_email`` only writes a row and schedules delivery after commit: a rolled-back
  operation sends nothing, a committed one always has its mail on record.
* ``deliver`` locks the row, sends at most once per success and records failures for retry.
* Marketing mail (``MARKETING_TEMPLATES``) is queued only for a user whose
  ``marketing_consent`` column is true at queueing time; service mail ignores consent.
* A mail to a user is queued only if their notification preferences let e-mail carry its
  category (``TEMPLATE_CATEGORIES``, default ``account``; ``app.core.preferences``:
  security and account mail always go).
* The transport is chosen by ``MAIL_BACKEND``: ``file`` (development, tests: one ``.eml`` per
  mail in ``MAIL_DIR`` and a log line) or ``smtp`` (``SMTP_HOST`` ...).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from flask import current_app
from sqlalchemy import select

from app.core import preferences
from app.core.base import utcnow
from app.core.db import atomic, lock_one
from app.core.extensions import db
from app.core.models import OutboxEmail
from app.core.queues import enqueue_after_commit

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
#: Templates that are marketing: never sent to someone who did not opt in.
MARKETING_TEMPLATES = frozenset({"crm_broadcast"})
#: Template -> notification category (``app.core.preferences``); unlisted: ``account``.
TEMPLATE_CATEGORIES = {
    "crm_broadcast": "marketing",
    "password_reset": "security",
    "signup_code": "security",
    "signin_code": "security",
    "email_verification": "account",
}


class MailTransport(Protocol):
    def send(self, message: EmailMessage, outbox_id: int) -> None: ...


class FileTransport:
    """Writes the message to ``MAIL_DIR`` (development and tests have no mail server)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def send(self, message: EmailMessage, outbox_id: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{outbox_id:08d}.eml"
        path.write_bytes(bytes(message))
        log.info("mail written to %s: %s -> %s", path, message["Subject"], message["To"])


class SmtpTransport:
    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def send(self, message: EmailMessage, outbox_id: int) -> None:
        cfg = self.cfg
        with smtplib.SMTP(cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=15) as smtp:
            if cfg["SMTP_STARTTLS"]:
                smtp.starttls()
            if cfg["SMTP_USERNAME"]:
                smtp.login(cfg["SMTP_USERNAME"], cfg["SMTP_PASSWORD"])
            smtp.send_message(message)


def transport() -> MailTransport:
    cfg = current_app.config
    if cfg["MAIL_BACKEND"] == "smtp":
        return SmtpTransport(cfg)
    return FileTransport(cfg["MAIL_DIR"])


#: ``lookup(user_id) -> bool``: has this user opted in to marketing mail? Installed by
#: ``app.hooks`` (identity owns the answer); with none installed no marketing mail is queued.
ConsentLookup = Callable[[int], bool]
_consent_of: ConsentLookup | None = None


def set_marketing_consent_lookup(lookup: ConsentLookup | None) -> None:
    global _consent_of
    _consent_of = lookup


def queue_email(
    *,
    to: str,
    subject: str,
    body: str,
    template: str,
    user_id: int | None = None,
    category: str | None = None,
) -> OutboxEmail | None:
    """Add a mail to the outbox in the caller's transaction; delivery runs after commit.

    A marketing template for a user without marketing consent (or for no user), or a mail
    whose category the user turned off for e-mail, is not queued: answers ``None``."""
    category = category or TEMPLATE_CATEGORIES.get(template, "account")
    if not preferences.allowed(user_id, category, "email"):
        log.info("mail %r not queued: user %s turned %s e-mail off", template, user_id, category)
        return None
    if template in MARKETING_TEMPLATES:
        consent = user_id is not None and _consent_of is not None and _consent_of(user_id)
        if not consent:
            log.info("marketing mail %r not queued: user %s did not opt in", template, user_id)
            return None
    row = OutboxEmail(to_address=to, subject=subject, body=body, template=template, user_id=user_id)
    db.session.add(row)
    db.session.flush()  # the job is given the id
    enqueue_after_commit("app.core.jobs.deliver_email", row.id, queue_name="notifications")
    return row


def deliver(outbox_id: int) -> str:
    """Send one queued mail; returns its status afterwards."""
    with atomic():
        row = lock_one(OutboxEmail, OutboxEmail.id == outbox_id)
        if row is None or row.status != "pending":
            return row.status if row else "missing"
        message = EmailMessage()
        message["From"] = current_app.config["MAIL_FROM"]
        message["To"] = row.to_address
        message["Subject"] = row.subject
        message.set_content(row.body)
        row.attempts += 1
        try:
            transport().send(message, row.id)
        except (OSError, smtplib.SMTPException) as exc:
            row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            log.warning("mail %s not sent (attempt %s): %s", row.id, row.attempts, exc)
            return row.status
        row.status, row.sent_at, row.last_error = "sent", utcnow(), None
        return row.status


def pending_ids(limit: int = 100) -> list[int]:
    return list(
        db.session.scalars(
            select(OutboxEmail.id)
            .where(OutboxEmail.status == "pending")
            .order_by(OutboxEmail.id)
            .limit(limit)
        )
    )
