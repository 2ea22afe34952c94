from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model

#: Fixed role ids (DESIGN.md): clients and the guide refer to them by number.
ADMIN, PLAYER, AGENT, MANAGER, SUPPORT = 1, 2, 3, 4, 5
STAFF_ROLES = frozenset({ADMIN, AGENT, MANAGER, SUPPORT})

USER_STATUSES = ("active", "suspended", "banned", "locked", "closed")


class Role(Model):
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


class User(Model):
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
    #: Self-service closure (``POST /api/user/close``): when, and the player's reason.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closure_reason: Mapped[str | None] = mapped_column(String(500))

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
    #: Players only: a code texted to the primary verified phone is the second factor
    #: (TOTP, when enabled, takes precedence; staff always use TOTP).
    sms_2fa_enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
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
    #: When the player proved they read mail at ``email`` (``None``: not verified).
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the account was pseudonymised by a GDPR erasure (``None``: never).
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: False for an account opened with a one-time code and no password: its stored hash is
    #: of a random secret nobody knows, and the player may set a first password later.
    has_password: Mapped[bool] = mapped_column(default=True, server_default=true())

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


# Sessions (token families + refresh tokens), login history and password-reset tokens.
#
# * A login opens a ``TokenFamily``; every refresh token of that login belongs to it. The family
#   has an absolute expiry: rotation never extends a session beyond it.
# * A refresh token row is spent by one conditional UPDATE (``used_at IS NULL``): of two racing
#   refreshes exactly one changes the row. Presenting a spent token revokes the whole family.
# * Password-reset tokens are stored only as SHA-256 digests and spent the same way.


class TokenFamily(Model):
    """One login session: the chain of refresh tokens issued since a password login."""

    __tablename__ = "token_families"

    #: Random id carried by every token of the session as the ``fam`` claim.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    #: ``player`` (``/api/auth``) or ``staff`` (``/api/admin/auth``): refresh stays in its portal.
    portal: Mapped[str] = mapped_column(String(8), default="player")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Absolute end of the session, whatever the rotations.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    device_fingerprint: Mapped[str | None] = mapped_column(String(128))


class RefreshToken(Model):
    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("token_families.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Set once, by the refresh that spent it; never cleared.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    parent_jti: Mapped[str | None] = mapped_column(String(64))


class LoginEvent(Model):
    """Every login attempt, successful or not (player and staff portals)."""

    __tablename__ = "login_history"
    __table_args__ = (Index("ix_login_history_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: ``None`` when the login named no known account.
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    login: Mapped[str] = mapped_column(String(255))
    portal: Mapped[str] = mapped_column(String(8), default="player")
    success: Mapped[bool] = mapped_column(Boolean)
    #: Why it failed (``bad_credentials``, ``locked``, ``totp_invalid`` ...); ``None`` on success.
    reason: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    device_fingerprint: Mapped[str | None] = mapped_column(String(128))
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PlayerNote(Model):
    """A staff member's note on a player account (append-only; each addition is audited)."""

    __tablename__ = "player_notes"
    __table_args__ = (Index("ix_player_notes_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    author_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PasswordResetToken(Model):
    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    #: SHA-256 hex of the token mailed to the user; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: ``player`` (forgot-password) or ``staff`` (an admin reset it).
    origin: Mapped[str] = mapped_column(String(8), default="player")


class EmailVerification(Model):
    """One verification e-mail: a link token and a 6-digit code, either spends it (once).

    Both are stored only as SHA-256 digests (the code keyed with the row's token digest, so
    equal codes of two players never share a digest); ``attempts`` counts wrong codes."""

    __tablename__ = "email_verifications"
    __table_args__ = (Index("ix_email_verifications_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: The address the mail went to: a later change of e-mail makes this row useless.
    email: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserPhone(Model):
    """One of a player's phone numbers, in E.164 (``+35699123456``).

    At most one primary per player (partial unique index) and a number verified by one
    account cannot be verified by another (it may sign that account in by SMS)."""

    __tablename__ = "user_phones"
    __table_args__ = (
        UniqueConstraint("user_id", "number", name="uq_user_phones_user_number"),
        Index(
            "uq_user_phones_primary",
            "user_id",
            unique=True,
            postgresql_where=text("is_primary"),
            sqlite_where=text("is_primary"),
        ),
        Index(
            "uq_user_phones_verified_number",
            "number",
            unique=True,
            postgresql_where=text("verified_at IS NOT NULL"),
            sqlite_where=text("verified_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    #: E.164, as ``phonenumbers`` formats it: ``+`` and at most 15 digits.
    number: Mapped[str] = mapped_column(String(16))
    is_primary: Mapped[bool] = mapped_column(default=False, server_default=false())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserAddress(Model):
    """One of a player's postal addresses; at most one default per player (partial unique
    index). The profile's single ``users.address`` columns stay for KYC compatibility."""

    __tablename__ = "user_addresses"
    __table_args__ = (
        Index(
            "uq_user_addresses_default",
            "user_id",
            unique=True,
            postgresql_where=text("is_default"),
            sqlite_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    #: The player's own name for it ("Home", "Work").
    label: Mapped[str | None] = mapped_column(String(50))
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    #: ISO 3166-1 alpha-2, upper case.
    country: Mapped[str] = mapped_column(String(2))
    is_default: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


OTP_PURPOSES = ("phone_verify", "login_2fa", "signup", "signin")


class OneTimeCode(Model):
    """A 6-digit code sent by SMS or e-mail (phone verification, SMS 2FA, OTP sign-up).

    Only an HMAC of the code is stored (keyed with a server secret and the row's salt: a
    leaked table cannot be brute-forced offline in a million tries). ``attempts`` counts wrong
    codes; a row is spent by one conditional UPDATE (``used_at IS NULL``)."""

    __tablename__ = "one_time_codes"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('phone_verify', 'login_2fa', 'signup', 'signin')", name="purpose"
        ),
        CheckConstraint("channel IN ('sms', 'email')", name="channel"),
        Index("ix_one_time_codes_destination", "destination", "created_at"),
        Index("ix_one_time_codes_ip", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    #: E.164 number or lower-cased e-mail address the code went to.
    destination: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


ERASURE_STATUSES = ("pending", "completed", "rejected")


class ErasureRequest(Model):
    """A player's GDPR erasure request: staff approve (pseudonymise) or reject it."""

    __tablename__ = "erasure_requests"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'completed', 'rejected')", name="status"),
        Index("ix_erasure_requests_user_status", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(String(500))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    decision_note: Mapped[str | None] = mapped_column(String(500))


# Sign-in through an outside identity (OpenID Connect issuers, Telegram): app.identity.external.
#
# * ``IdentityLink``: (provider, subject) names one account; a subject links to one account and
#   an account has at most one link per provider.
# * ``ExternalAuthFlow``: a short-lived, single-use secret of a sign-in in progress, stored only
#   as a SHA-256 digest: the OIDC ``state`` (with its nonce and PKCE verifier) between the
#   redirect and the callback, and the ``handoff`` code the player app exchanges for tokens.

EXTERNAL_FLOW_KINDS = ("oidc_state", "handoff")


class IdentityLink(Model):
    __tablename__ = "identity_links"
    __table_args__ = (
        UniqueConstraint("provider", "subject", name="uq_identity_links_provider_subject"),
        UniqueConstraint("user_id", "provider", name="uq_identity_links_user_provider"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    provider: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(255))
    #: What the provider said at linking (the e-mail it verified; Telegram: the @username).
    display: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExternalAuthFlow(Model):
    __tablename__ = "external_auth_flows"
    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in EXTERNAL_FLOW_KINDS) + ")", name="kind"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    nonce: Mapped[str | None] = mapped_column(String(128))
    code_verifier: Mapped[str | None] = mapped_column(String(128))
    return_to: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffRecoveryCode(Model):
    """A one-time recovery code of a staff member (a lost authenticator): signs in once
    instead of a TOTP code. Stored only as a SHA-256 digest (the code is random, ~46 bits,
    behind the staff lockout); shown once when generated (app.identity.recovery)."""

    __tablename__ = "staff_recovery_codes"
    __table_args__ = (Index("ix_staff_recovery_codes_user", "user_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


ARCHIVE_STATUSES = ("queued", "ready", "downloaded", "failed", "expired")


class DataExportArchive(Model):
    """A player's GDPR data archive (art. 15/20): built by a job (``app.identity.archive``),
    kept as a file until it is downloaded once or expires. ``public_id`` names it in URLs
    (random, not enumerable)."""

    __tablename__ = "data_export_archives"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in ARCHIVE_STATUSES) + ")", name="status"
        ),
        Index("ix_data_export_archives_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    storage_name: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
