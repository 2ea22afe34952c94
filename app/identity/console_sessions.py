"""Server-side registry of back-office sessions (Redis).

Flask's session cookie is signed, not stored: on its own, a copied cookie would stay valid
after logout until it expires. Each console session therefore carries a random id that must
also exist here. Invariants:

* A new id is issued at every sign-in (the old session content is discarded), so a session
  fixed before login is worthless after it.
* The key expires after the idle timeout (``PERMANENT_SESSION_LIFETIME``) and every request
  slides it; logout deletes it.
"""

from __future__ import annotations

import secrets

from flask import current_app

from app.core.extensions import redis_store

_KEY = "jx:console:session:"
_USER = "jx:console:user-sessions:"


def _idle_seconds() -> int:
    lifetime = current_app.permanent_session_lifetime
    return max(60, int(lifetime.total_seconds()))


def open_session(user_id: int) -> str:
    sid = secrets.token_urlsafe(32)
    ttl = _idle_seconds()
    pipe = redis_store.client().pipeline()
    pipe.set(_KEY + sid, str(user_id), ex=ttl)
    pipe.sadd(_USER + str(user_id), sid)
    pipe.expire(_USER + str(user_id), 7 * 24 * 3600)
    pipe.execute()
    return sid


def touch(sid: str | None, user_id: int) -> bool:
    """Is ``sid`` a live session of ``user_id``? Slides its idle expiry when it is."""
    if not sid:
        return False
    client = redis_store.client()
    owner = client.get(_KEY + sid)
    if owner is None or owner.decode() != str(user_id):
        return False
    client.expire(_KEY + sid, _idle_seconds())
    return True


def close(sid: str | None) -> None:
    if sid:
        redis_store.client().delete(_KEY + sid)
