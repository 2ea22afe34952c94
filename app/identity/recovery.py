"""One-time recovery codes for staff TOTP (a lost or broken authenticator).

Invariants:
* ``COUNT`` codes per staff member, generated at TOTP enrolment and on demand
  (:func:`generate`, which voids every earlier code); each is shown once, to its owner, in the
  answer that generated it, and stored only as a SHA-256 digest (random codes of ~46 bits:
  the staff lockout, 5 failures, makes guessing hopeless; no slow hash needed).
* A code signs in once, instead of a TOTP code, at the console and the staff API
  (:func:`use`, called with the user row locked by the sign-in); every use and every
  generation is audited (``staff.recovery_code.used``, ``staff.recovery_codes.generated``).
* An Admin's "reset 2FA" (``staff_auth.reset_totp``) deletes them with the TOTP secret.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, func, select

from app.core import audit
from app.core.base import utcnow
from app.core.extensions import db
from app.identity.models import StaffRecoveryCode, User

COUNT = 10
#: No look-alikes (0/O, 1/I/L, 2/Z, 5/S, 8/B): read off paper and typed by a person.
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
LENGTH = 10  # 25^10 ≈ 2^46


def _normalize(code: str) -> str:
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


def _digest(user_id: int, code: str) -> str:
    return hashlib.sha256(f"jx-recovery:{user_id}:{_normalize(code)}".encode()).hexdigest()


def looks_like_code(code: str | None) -> bool:
    normalized = _normalize(code or "")
    return len(normalized) == LENGTH and all(ch in ALPHABET for ch in normalized)


def generate(user: User, actor: User | None = None) -> list[str]:
    """New codes for ``user`` (earlier ones stop working); returns them, formatted
    ``XXXXX-XXXXX``, for the one answer that shows them. In the caller's transaction."""
    db.session.execute(delete(StaffRecoveryCode).where(StaffRecoveryCode.user_id == user.id))
    codes = []
    for _ in range(COUNT):
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(StaffRecoveryCode(user_id=user.id, code_hash=_digest(user.id, raw)))
    audit.record(
        "staff.recovery_codes.generated",
        actor=actor or user,
        target_type="user",
        target_id=user.id,
        after={"count": COUNT},
    )
    return codes


def use(user: User, code: str | None) -> bool:
    """Spend ``code`` if it is one of ``user``'s unused codes (the caller holds the user row
    lock, so two sign-ins cannot spend it twice)."""
    if not looks_like_code(code):
        return False
    row = db.session.scalar(
        select(StaffRecoveryCode).where(
            StaffRecoveryCode.user_id == user.id,
            StaffRecoveryCode.code_hash == _digest(user.id, code or ""),
            StaffRecoveryCode.used_at.is_(None),
        )
    )
    if row is None:
        return False
    row.used_at = utcnow()
    db.session.flush()
    audit.record(
        "staff.recovery_code.used",
        actor=user,
        target_type="user",
        target_id=user.id,
        after={"remaining": remaining(user)},
    )
    return True


def remaining(user: User) -> int:
    return int(
        db.session.scalar(
            select(func.count()).where(
                StaffRecoveryCode.user_id == user.id, StaffRecoveryCode.used_at.is_(None)
            )
        )
        or 0
    )


def discard(user: User) -> None:
    db.session.execute(delete(StaffRecoveryCode).where(StaffRecoveryCode.user_id == user.id))
