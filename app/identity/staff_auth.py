"""Staff sign-in to the back office: password, TOTP, lockout, enrolment.

Invariants:
* One generic refusal for every failure (unknown login, bad password, bad code, locked,
  player, inactive): the answer never tells which factor was wrong.
* Every attempt is audited (``console.login``, ``console.login.failed``); failed password or
  code attempts count towards ``LOGIN_MAX_FAILURES`` within ``LOGIN_FAILURE_WINDOW_MINUTES``,
  after which the account is locked for ``LOGIN_LOCKOUT_MINUTES`` (``app.identity.lockout``).
  Each attempt runs in its own transaction with the user row locked, so the counter and the
  TOTP step cannot be raced.
* TOTP is mandatory for every staff role (``TOTP_REQUIRED_ROLES`` = all staff: Admin, Manager,
  Support, Agent; issue 21, ASVS 6.3.3). A code is accepted once per time step
  (``totp.verify_code``), so a replayed code is refused.
* A staff member without TOTP gets a pending secret (stored encrypted, ``totp_enabled`` false)
  and must confirm a code from it before the first session opens; the confirmation also
  generates their one-time recovery codes (``app.identity.recovery``), shown once.
* A recovery code signs in once instead of a TOTP code. An Admin may reset another staff
  member's second factor (:func:`reset_totp`: secret and codes gone, every session and token
  ended, enrolment again at the next sign-in); never their own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from app.core import audit
from app.core.base import utcnow
from app.core.db import atomic, lock_one
from app.core.errors import AccessDenied, NotFound, ValidationError
from app.identity import lockout, passwords, recovery, totp, users
from app.identity.models import ADMIN, STAFF_ROLES, User

#: Roles that may not open a console session without a second factor: every staff role.
TOTP_REQUIRED_ROLES = STAFF_ROLES

GENERIC_REFUSAL = (
    "Invalid username, password or authentication code, or the account is temporarily locked."
)


class Outcome(enum.Enum):
    SIGNED_IN = "signed_in"
    ENROL_TOTP = "enrol_totp"  # password right, second factor still to be set up
    REFUSED = "refused"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    user_id: int | None = None
    #: Only from a confirmed enrolment: the new recovery codes, to show once.
    recovery_codes: tuple[str, ...] = ()


def totp_required(user: User) -> bool:
    return user.totp_enabled or user.role_id in TOTP_REQUIRED_ROLES


def _refuse(user: User | None, login: str, reason: str, *, count: bool) -> Attempt:
    """Audit a refused attempt; ``count`` = a wrong secret that moves the lockout counter."""
    if user is not None and count:
        lockout.count_failure(user, action="console.login.locked")
    audit.record(
        "console.login.failed",
        target_type="user" if user is not None else None,
        target_id=user.id if user is not None else None,
        after={"login": login[:64], "reason": reason},
    )
    return Attempt(Outcome.REFUSED, user.id if user is not None else None)


def _signed_in(user: User, now: datetime) -> Attempt:
    lockout.clear(user)
    user.last_login_at = now
    audit.record("console.login", actor=user, target_type="user", target_id=user.id)
    return Attempt(Outcome.SIGNED_IN, user.id)


def authenticate(login: str, password: str, code: str | None) -> Attempt:
    """Check one sign-in attempt and record it (its own transaction)."""
    login = (login or "").strip()
    with atomic():
        found = users.find_by_login(login) if login else None
        user = lock_one(User, User.id == found.id) if found is not None else None
        now = utcnow()
        if user is None:
            passwords.burn_time(password or "")
            return _refuse(None, login, "unknown_login", count=False)
        if lockout.is_locked(user, now):
            passwords.burn_time(password or "")
            return _refuse(user, login, "locked", count=False)
        if not passwords.verify_password(user.password_hash, password or ""):
            return _refuse(user, login, "bad_password", count=True)
        if not user.is_staff:
            # A player's password is right, but the console is not theirs; do not lock them out.
            return _refuse(user, login, "not_staff", count=False)
        if user.status != "active":
            return _refuse(user, login, f"status_{user.status}", count=False)
        if user.totp_enabled:
            if not totp.verify_code(user, code) and not recovery.use(user, code):
                return _refuse(user, login, "bad_totp", count=True)
        elif totp_required(user):
            audit.record(
                "console.login.totp_enrolment_required",
                target_type="user",
                target_id=user.id,
            )
            return Attempt(Outcome.ENROL_TOTP, user.id)
        return _signed_in(user, now)


def pending_enrolment(user_id: int) -> tuple[User, str]:
    """The user and their pending TOTP secret, created (and stored encrypted) on first call."""
    with atomic():
        user = lock_one(User, User.id == user_id)
        if user is None or user.totp_enabled or not user.is_staff:
            raise LookupError("no enrolment pending for this account")
        secret = totp.secret_of(user)
        if secret is None:
            secret = totp.new_secret()
            totp.store_secret(user, secret)
    return user, secret


def confirm_enrolment(user_id: int, code: str | None) -> Attempt:
    """Enable TOTP if ``code`` matches the pending secret; this also completes the sign-in."""
    with atomic():
        user = lock_one(User, User.id == user_id)
        if user is None or user.totp_enabled or not user.is_staff or user.status != "active":
            return _refuse(user, "", "enrolment_not_pending", count=False)
        if lockout.is_locked(user):
            return _refuse(user, user.username, "locked", count=False)
        if not totp.verify_code(user, code):
            return _refuse(user, user.username, "bad_totp_enrolment", count=True)
        user.totp_enabled = True
        audit.record("staff.totp.enrol", actor=user, target_type="user", target_id=user.id)
        codes = recovery.generate(user)
        signed_in = _signed_in(user, utcnow())
        return Attempt(signed_in.outcome, signed_in.user_id, tuple(codes))


def regenerate_recovery_codes(user_id: int, code: str | None) -> list[str] | None:
    """New recovery codes for a signed-in staff member who proves their authenticator with a
    current TOTP code (a stolen session alone cannot mint a lasting way in); None: refused
    (a wrong code counts towards the lockout)."""
    with atomic():
        user = lock_one(User, User.id == user_id)
        if user is None or not user.is_staff or not user.totp_enabled:
            return None
        if lockout.is_locked(user) or not totp.verify_code(user, code):
            _refuse(user, user.username, "bad_totp_recovery_codes", count=True)
            return None
        return recovery.generate(user)


def reset_totp(target_id: int, actor: User) -> User:
    """An Admin resets another staff member's second factor (a lost device): the TOTP secret
    and recovery codes are deleted, every session and token of theirs ends now, and their
    next sign-in enrols a new authenticator. Audited ``staff.totp.reset``."""
    if actor.role_id != ADMIN:
        raise AccessDenied("Only an Admin can reset another staff member's two-factor")
    if actor.id == target_id:
        raise AccessDenied("You cannot reset your own two-factor authentication")
    with atomic():
        user = lock_one(User, User.id == target_id)
        if user is None or not user.is_staff:
            raise NotFound("Staff account not found")
        if not user.totp_enabled and user.totp_secret_enc is None:
            raise ValidationError("This account has no two-factor authentication to reset")
        now = utcnow()
        had = {"totp_enabled": user.totp_enabled, "recovery_codes": recovery.remaining(user)}
        user.totp_enabled = False
        user.totp_secret_enc = None
        user.totp_last_step = None
        user.tokens_valid_after = now
        recovery.discard(user)
        audit.record(
            "staff.totp.reset",
            actor=actor,
            target_type="user",
            target_id=user.id,
            before=had,
            after={
                "totp_enabled": False,
                "recovery_codes": 0,
                "sessions_ended_at": now.isoformat(),
            },
        )
    return user


def record_logout(user: User) -> None:
    with atomic():
        audit.record("console.logout", actor=user, target_type="user", target_id=user.id)
