from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class Setting(db.Model):
    """Operator settings that must be shared by every process (maintenance mode, limits)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: Any JSON value; readers validate their own key.
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
    updated_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
