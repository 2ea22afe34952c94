from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, false, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow

#: Fixed role ids (DESIGN.md): clients and the guide refer to them by number.
ADMIN, PLAYER, AGENT, MANAGER, SUPPORT = 1, 2, 3, 4, 5
STAFF_ROLES = frozenset({ADMIN, AGENT, MANAGER, SUPPORT})

USER_STATUSES = ("active", "suspended", "banned", "locked", "closed")


class Role(db.Model):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    #: Permission names (``players.read``, ``withdrawals.approve`` ...); ``*`` grants all.
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)

    def grants(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

    def as_json(self) -> dict:
        return {"id": self.id, "name": self.name, "description": self.description}


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'suspended', 'banned', 'locked', 'closed')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    username: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id"), default=PLAYER, index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(500))
    #: A suspension ends by itself at this time; ``None`` = until lifted.
    status_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(8), default="EUR")
    date_of_birth: Mapped[str | None] = mapped_column(String(10))
    language: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    gender: Mapped[str | None] = mapped_column(String(16))
    nationality: Mapped[str | None] = mapped_column(String(64))
    #: Free-form UI preferences the player app stores (theme, notifications ...).
    preferences: Mapped[dict | None] = mapped_column(JSON)
    #: Opt-in to marketing (CRM broadcasts, marketing e-mail); off unless the player said yes.
    #: Service messages (bonus granted, ticket answered ...) are not marketing and ignore it.
    marketing_consent: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: When the consent last changed (registration or profile), for the regulator's record.
    marketing_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Where the account was opened from (welcome-bonus duplicate checks, with login history).
    registration_ip: Mapped[str | None] = mapped_column(String(64))
    registration_device: Mapped[str | None] = mapped_column(String(128))

    #: Base32 TOTP secret, encrypted at rest (Fernet).
    totp_secret_enc: Mapped[str | None] = mapped_column(String(255))
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    #: Last accepted TOTP time step: a code is accepted once per step.
    totp_last_step: Mapped[int | None] = mapped_column()
    #: The player chose to skip 2FA enrolment (never possible for Admin and Manager).
    totp_skipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    #: Tokens issued before this instant are dead (logout-all, ban, password change).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(default=0)
    #: Start of the current failed-login window (``LOGIN_FAILURE_WINDOW``).
    failed_logins_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_ip: Mapped[str | None] = mapped_column(String(64))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    kyc_status: Mapped[str] = mapped_column(String(16), default="none")
    kyc_level: Mapped[int] = mapped_column(default=0)
    referral_code: Mapped[str | None] = mapped_column(String(32), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id"), index=True
    )
    agent_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    role: Mapped[Role] = relationship(lazy="joined")

    # Flask-Login protocol (the back office session).
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_staff(self) -> bool:
        return self.role_id in (ADMIN, MANAGER, SUPPORT, AGENT)

    def can(self, permission: str) -> bool:
        return self.role is not None and self.role.grants(permission)


# Case-insensitive uniqueness: "Alice" and "alice" are the same account.
Index("uq_users_username_lower", func.lower(User.username), unique=True)
Index("uq_users_email_lower", func.lower(User.email), unique=True)
