from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DDL, JSON, BigInteger, String, event
from sqlalchemy.orm import Mapped, mapped_column

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class AuditLog(db.Model):
    """Append-only record of every decision: who did what to what, from where.

    Each row carries the SHA-256 of its content chained to the previous row's hash, so a
    changed or deleted row breaks ``flask jackpotx audit verify``. On PostgreSQL a trigger
    refuses UPDATE and DELETE outright.
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
    hash: Mapped[str] = mapped_column(String(64), unique=True)


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
