"""Staff account lockout (PCI DSS 8.3.4): failed secrets within a window lock the account.

* ``LOGIN_MAX_FAILURES`` (5) failed secrets (password or TOTP code) within
  ``LOGIN_FAILURE_WINDOW_MINUTES`` (30) lock the account for ``LOGIN_LOCKOUT_MINUTES``
  (30; production refuses less). A failure older than the window is forgotten: the count
  starts again from the first failure after it.
* Staff accounts only: players are throttled per account and address instead
  (``app.identity.throttle``), so nobody can lock a player out of the casino.
* The caller holds the user row locked, so the count is exact under concurrent attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app

from app.core import audit
from app.core.base import utcnow
from app.identity.models import User


def is_locked(user: User, now: datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def count_failure(user: User, *, action: str = "auth.lockout") -> bool:
    """Count one failed secret; True when this failure locked the account (audited)."""
    cfg = current_app.config
    now = utcnow()
    window = timedelta(minutes=cfg["LOGIN_FAILURE_WINDOW_MINUTES"])
    if user.failed_logins_since is None or now - user.failed_logins_since > window:
        user.failed_logins_since, user.failed_logins = now, 0
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins < cfg["LOGIN_MAX_FAILURES"]:
        return False
    user.locked_until = now + timedelta(minutes=cfg["LOGIN_LOCKOUT_MINUTES"])
    audit.record(
        action,
        target_type="user",
        target_id=user.id,
        after={"failures": user.failed_logins, "locked_until": user.locked_until.isoformat()},
    )
    user.failed_logins, user.failed_logins_since = 0, None
    return True


def clear(user: User) -> None:
    """A successful sign-in (or a reset) forgets the failures and lifts the lock."""
    user.failed_logins, user.failed_logins_since, user.locked_until = 0, None, None
