"""Server-side registry of back-office sessions (Redis).

Flask's session cookie is signed, not stored: on its own, a copied cookie would stay valid
after logout until it expires. Each console session therefore carries a random id that must
also exist here. Invariants:

* A new id is issued at every sign-in (the old session content is discarded), so a session
  fixed before login is worthless after it.
* The key expires after the idle timeout (``PERMANENT_SESSION_LIFETIME``) and every request
  slides it; logout deletes it.
* A session also has an absolute end, ``CONSOLE_SESSION_MAX_HOURS`` after sign-in (issue 21):
  the start time is stored with the id, sliding never moves the key's expiry past that end, and
  a session older than that is deleted at its next request however active it was.
"""

from __future__ import annotations

import secrets
import time

from flask import current_app

from app.core.extensions import redis_store

_KEY = "jx:console:session:"
_USER = "jx:console:user-sessions:"


def _idle_seconds() -> int:
    lifetime = current_app.permanent_session_lifetime
    return max(60, int(lifetime.total_seconds()))


def max_age_seconds() -> int:
    """The absolute lifetime of a console session."""
    return max(60, int(current_app.config.get("CONSOLE_SESSION_MAX_HOURS", 12) * 3600))


def expired(started_at: float | None, now: float | None = None) -> bool:
    """Did a session started at ``started_at`` (epoch seconds) outlive the absolute lifetime?"""
    if not started_at:
        return True
    return (now if now is not None else time.time()) - started_at >= max_age_seconds()


def _ttl(started_at: float, now: float) -> int:
    """The idle expiry, never beyond the absolute end."""
    return max(1, min(_idle_seconds(), int(started_at + max_age_seconds() - now)))


def open_session(user_id: int, started_at: float | None = None) -> str:
    sid = secrets.token_urlsafe(32)
    now = time.time()
    started_at = started_at or now
    pipe = redis_store.client().pipeline()
    pipe.set(_KEY + sid, f"{user_id}:{started_at:.3f}", ex=_ttl(started_at, now))
    pipe.sadd(_USER + str(user_id), sid)
    pipe.expire(_USER + str(user_id), 7 * 24 * 3600)
    pipe.execute()
    return sid


def touch(sid: str | None, user_id: int) -> bool:
    """Is ``sid`` a live session of ``user_id``? Slides its idle expiry when it is."""
    if not sid:
        return False
    client = redis_store.client()
    value = client.get(_KEY + sid)
    if value is None:
        return False
    owner, _, started = value.decode().partition(":")
    if owner != str(user_id):
        return False
    try:
        started_at = float(started)
    except ValueError:
        started_at = 0.0  # registered before sessions had an absolute end: treat as expired
    now = time.time()
    if expired(started_at, now):
        client.delete(_KEY + sid)
        return False
    client.expire(_KEY + sid, _ttl(started_at, now))
    return True


def close(sid: str | None) -> None:
    if sid:
        redis_store.client().delete(_KEY + sid)
