from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model


class AuditLog(Model):
    """Append-only record of every decision: who did what to what, from where.

    Each row carries an HMAC of its content chained to the previous row's hash, keyed with
    ``AUDIT_CHAIN_KEY`` (which the database never holds), so a changed, deleted or recomputed
    row breaks ``flask jackpotx audit verify``. On PostgreSQL a trigger refuses UPDATE and
    DELETE outright, and the app role may only INSERT (docs/security.md).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), index=True)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(1000))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: HMAC-SHA256 (key ``key_id``, app.core.chain) of ``prev_hash`` + the row's content;
    #: ``key_id`` NULL: a row written before the chain was keyed (plain SHA-256).
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str | None] = mapped_column(String(16))


AUDIT_APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"""

# Tests build the schema with create_all(); the migration runs the same statement.
event.listen(
    AuditLog.__table__,
    "after_create",
    DDL(AUDIT_APPEND_ONLY_SQL).execute_if(dialect="postgresql"),
)


class Setting(Model):
    """Operator settings that must be shared by every process (maintenance mode, limits)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: Any JSON value; readers validate their own key.
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
    updated_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class OutboxEmail(Model):
    """An e-mail to send: written in the business transaction, delivered by a job afterwards.

    The row exists iff the change that caused it committed; the job marks it sent (or failed
    with the error) so a crashed delivery is retried and never sent twice after success.
    """

    __tablename__ = "email_outbox"
    __table_args__ = (CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    to_address: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    #: What kind of mail (``password_reset``...), for support and metrics.
    template: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MailTemplate(Model):
    """A staff-edited e-mail template for one template key and language.

    Rendered in a sandbox (``app.core.mail_templates``); with no row for a key and language,
    the file template ``app/templates/mail/<key>/`` (translated through the catalogue) is used.
    """

    __tablename__ = "mail_templates"
    __table_args__ = (UniqueConstraint("key", "language", name="uq_mail_templates_key_language"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Notifications, the transactional outbox and per-player reality-check settings.


class Notification(Model):
    """A message to one user, kept for the inbox and pushed live as ``notification``."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: ``promotion``, ``reality_check``, ``withdrawal``, ``system`` ... (free text, indexed use).
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(String(2000))
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    #: Producers that may run twice (jobs, retries) pass a key: the unique index makes the
    #: second insert a no-op, so a notification is never sent twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationPreference(Model):
    """A user's choice for one (category, channel) that differs from the default (on).

    Rows exist only for choices made; mandatory categories (``app.core.preferences``) are
    never stored off."""

    __tablename__ = "notification_preferences"
    __table_args__ = (
        UniqueConstraint(
            "user_id", "category", "channel", name="uq_notification_preferences_user_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    category: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Model):
    """An event or job written in the business transaction, relayed to Redis afterwards.

    A row exists iff the business change committed; ``delivered_at`` is set once Redis took
    it. Rows are relayed in id order, so events for one user keep their order.
    """

    __tablename__ = "outbox"
    __table_args__ = (CheckConstraint("kind IN ('event', 'job')", name="kind"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    #: Event name (``balance.update``) or job function path (``app.<domain>.jobs.f``).
    name: Mapped[str] = mapped_column(String(200))
    #: Socket.IO room for events; RQ queue name for jobs.
    target: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The relay reads only undelivered rows; keep that index small.
Index(
    "ix_outbox_pending",
    OutboxMessage.id,
    postgresql_where=OutboxMessage.delivered_at.is_(None),
    sqlite_where=OutboxMessage.delivered_at.is_(None),
)


class IdempotencyKey(Model):
    """One caller's ``Idempotency-Key``: the request it named and, once done, the answer.

    ``(user_id, key)`` is unique: claiming a key is an INSERT, so two requests with the same key
    never both run. The answer (2xx or 4xx) is written in the transaction of the business change
    it reports, so a key is never done without its movement, nor a movement left without its
    key. A row whose ``expires_at`` has passed is free: the next claim replaces it.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),
        # Only final, non-retryable answers are stored; a 5xx is never replayed.
        CheckConstraint(
            "response_status IS NULL OR (response_status >= 200 AND response_status < 500)",
            name="response_status",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: The caller (player or staff user): keys are scoped per caller.
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(150))
    #: The endpoint's operation name (``withdrawal.request``): alias paths share it.
    operation: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of the operation, the path parameters and the canonical JSON body.
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: The path of the first request (for support; the fingerprint decides).
    path: Mapped[str] = mapped_column(String(255))
    #: ``None`` while the request runs (only endpoints that commit before their gateway call
    #: leave such a row visible); then the HTTP status and the exact JSON body of the answer.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    #: The running request's lease (two-phase endpoints): past it, a retry takes the key over.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Which run holds the lease; the answer is stored only by that run.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
