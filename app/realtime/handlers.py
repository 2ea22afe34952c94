"""Socket.IO handlers: authenticated connect, rooms, client events, live-session re-checks.

Invariants:
* No socket is connected without a verified principal (JWT access token or staff session).
* Every client sits in ``user:<id>`` and ``global``; staff also in ``admin``. Other rooms
  (``game:<id>``, ``tournament:<id>``) are joined on request, bounded per connection.
* Client events are rate limited per connection (token bucket); over the limit the event
  is dropped with a ``rate_limited`` error.
* A background task in each server process re-checks its live connections: an expired token
  gets ``token_expired`` and a disconnect; a revoked token or closed account gets
  ``session.logout`` and a disconnect (in case the pushed logout was lost).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request
from flask_socketio import emit, join_room, leave_room
from redis.exceptions import RedisError

from app.core import metrics, presence
from app.core.errors import AppError, outage_kind, rollback_quietly
from app.core.events import user_room
from app.core.extensions import db, redis_store, socketio
from app.identity.auth import DENYLIST_PREFIX
from app.identity.models import User
from app.messaging import chat, support
from app.realtime.auth import Principal, Refused, authenticate, error_payload, principal_from_token

log = logging.getLogger(__name__)

GLOBAL_ROOM = "global"
ADMIN_ROOM = "admin"
#: Rooms a client may join on request, and how many of them at once.
JOINABLE = {"game": "game_id", "tournament": "tournament_id"}
MAX_JOINED_ROOMS = 20


@dataclass(slots=True)
class LiveSession:
    principal: Principal
    rooms: set[str] = field(default_factory=set)
    tokens: float = 0.0
    refilled_at: float = field(default_factory=time.monotonic)


#: sid -> LiveSession, for the connections this process holds.
_live: dict[str, LiveSession] = {}
_recheck_started: set[int] = set()
_recheck_lock = threading.Lock()


def live_sessions() -> dict[str, LiveSession]:
    return _live


def _rate() -> tuple[float, float]:
    """(burst, per second) from ``SOCKETIO_EVENT_RATE`` = ``"<events>/<seconds>"``."""
    events, seconds = current_app.config.get("SOCKETIO_EVENT_RATE", "20/10").split("/")
    return float(events), float(events) / float(seconds)


def _allow(session: LiveSession) -> bool:
    burst, per_second = _rate()
    now = time.monotonic()
    session.tokens = min(burst, session.tokens + (now - session.refilled_at) * per_second)
    session.refilled_at = now
    if session.tokens < 1:
        return False
    session.tokens -= 1
    return True


def _reply_error(code: str, message: str) -> dict[str, Any]:
    payload = error_payload(code, message)
    emit("error", payload)
    return payload


def _guarded(name: str):
    """Rate limit + error payloads for a client event handler; the ack is its return value."""

    def decorator(fn):
        def handler(data=None):
            session = _live.get(request.sid)
            if session is None:
                return _reply_error("unauthorized", "Not connected")
            if not _allow(session):
                return _reply_error("rate_limited", "Too many events, slow down")
            try:
                return fn(session, data if data is not None else {})
            except _BadPayload as exc:
                return _reply_error("invalid_payload", str(exc))

        handler.__name__ = f"on_{name.replace(':', '_')}"
        socketio.on(name)(handler)
        return fn

    return decorator


class _BadPayload(Exception):
    pass


def _positive_id(data: Any, key: str) -> int:
    raw = data.get(key) if isinstance(data, dict) else None
    if raw is None or isinstance(raw, bool):  # int(None) would raise TypeError: same answer
        raise _BadPayload(f"{key} must be a positive integer")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _BadPayload(f"{key} must be a positive integer") from None
    if value <= 0 or str(raw).strip() not in {str(value)}:
        raise _BadPayload(f"{key} must be a positive integer")
    return value


def _admit(auth: Any, sid: str) -> Principal:
    """Who is connecting, refused over the per-account cap; registers the socket's presence."""
    try:
        principal = _authenticate(auth)
        cap = int(current_app.config.get("SOCKETIO_MAX_CONNECTIONS_PER_USER", 10))
        if len(presence.sessions(principal.user_id)) >= cap:
            raise Refused("too_many_connections", "Too many open connections for this account")
        presence.add(principal.user_id, sid)
    except RedisError as exc:
        log.warning("socket connect refused: redis unavailable (%s)", exc)
        raise Refused("service_unavailable", "Real-time service unavailable, retry later") from None
    return principal


def _off_the_reader(fn, *args):
    """Run ``fn`` in a short-lived greenlet under the same request (gevent only).

    The connect handler runs on the socket's reader greenlet, which lives as long as the
    connection; every page of Python frame stack a greenlet touches stays resident until it
    ends. The connect checks (JWT, SQLAlchemy, Redis) run dozens of frames deep, so they run in
    a greenlet of their own and the reader keeps only its shallow read loop
    (docs/realtime.md, "Memory per connection")."""
    if current_app.config["SOCKETIO_ASYNC_MODE"] != "gevent":
        return fn(*args)
    import gevent

    app, environ = current_app._get_current_object(), request.environ

    def run():
        with app.request_context(environ):
            return fn(*args)

    return gevent.spawn(run).get()


@socketio.on("connect")
def on_connect(auth=None):
    principal = _off_the_reader(_admit, auth, request.sid)
    burst, _ = _rate()
    session = LiveSession(principal=principal, tokens=burst)
    _live[request.sid] = session
    metrics.socket_opened()
    rooms = [user_room(principal.user_id), GLOBAL_ROOM]
    if principal.is_staff:
        rooms.append(ADMIN_ROOM)
    for room in rooms:
        join_room(room)
    _ensure_recheck_task(current_app._get_current_object())
    return True


def _authenticate(auth: Any) -> Principal:
    try:
        return authenticate(auth)
    finally:
        # Handlers run outside a request's teardown: never keep a DB connection checked out.
        db.session.remove()


@socketio.on("disconnect")
def on_disconnect(reason=None):
    session = _live.pop(request.sid, None)
    if session is not None:
        metrics.socket_closed()
        try:
            presence.remove(session.principal.user_id, request.sid)
        except RedisError:
            log.warning("presence cleanup skipped: redis unavailable")


def _room_for(kind: str, data: Any) -> str:
    return f"{kind}:{_positive_id(data, JOINABLE[kind])}"


def _join(session: LiveSession, room: str) -> dict[str, Any]:
    if room not in session.rooms and len(session.rooms) >= MAX_JOINED_ROOMS:
        raise _BadPayload(f"At most {MAX_JOINED_ROOMS} rooms per connection")
    join_room(room)
    session.rooms.add(room)
    return {"success": True, "room": room}


def _leave(session: LiveSession, room: str) -> dict[str, Any]:
    if room in session.rooms:
        leave_room(room)
        session.rooms.discard(room)
    return {"success": True, "room": room}


@_guarded("join_game")
def join_game(session: LiveSession, data: Any):
    return _join(session, _room_for("game", data))


@_guarded("leave_game")
def leave_game(session: LiveSession, data: Any):
    return _leave(session, _room_for("game", data))


@_guarded("join_tournament")
def join_tournament(session: LiveSession, data: Any):
    return _join(session, _room_for("tournament", data))


@_guarded("leave_tournament")
def leave_tournament(session: LiveSession, data: Any):
    return _leave(session, _room_for("tournament", data))


def _payment_subscription(session: LiveSession, data: Any) -> dict[str, Any]:
    """UserState clients announce ``{username}``; payment updates go to ``user:<id>``.

    The connection already sits in its own user room, so this only confirms it and refuses
    anyone asking for another account's payments.
    """
    if not isinstance(data, dict):
        raise _BadPayload("Expected an object")
    asked_id = data.get("user_id")
    asked_name = data.get("username")
    if asked_id is not None and str(asked_id) != str(session.principal.user_id):
        return _reply_error("access_denied", "You can only follow your own payments")
    if asked_name is not None:
        try:
            user = db.session.get(User, session.principal.user_id)
            if user is None or str(asked_name).lower() != user.username.lower():
                return _reply_error("access_denied", "You can only follow your own payments")
        finally:
            db.session.remove()
    return {"success": True, "room": user_room(session.principal.user_id)}


@_guarded("subscribe:payment")
def subscribe_payment(session: LiveSession, data: Any):
    return _payment_subscription(session, data)


@_guarded("unsubscribe:payment")
def unsubscribe_payment(session: LiveSession, data: Any):
    # Leaving the personal room would also drop balance and logout events: acknowledge only.
    return {"success": True}


@_guarded("authenticate")
def reauthenticate(session: LiveSession, data: Any):
    """Swap in a fresh access token (after a refresh) without reconnecting."""
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise _BadPayload("token is required")
    try:
        fresh = principal_from_token(token.removeprefix("Bearer ").strip())
    except Refused as exc:
        return _reply_error(exc.error_args["code"], exc.error_args["message"])
    finally:
        db.session.remove()
    if fresh.user_id != session.principal.user_id:
        return _reply_error("access_denied", "The token belongs to another account")
    session.principal = fresh
    return {"success": True, "expires_at": fresh.exp}


# --- live support chat (app.messaging.chat) ------------------------------------------------


def _chat(session: LiveSession, work) -> dict[str, Any]:
    """Run a chat rule for the connected player; its refusals become error payloads."""
    if session.principal.is_staff:
        return _reply_error("access_denied", "Staff answer chats from the console")
    try:
        user = db.session.get(User, session.principal.user_id)
        if user is None or user.status != "active":
            return _reply_error("access_denied", "This account cannot chat")
        return {"success": True, **work(user)}
    except AppError as exc:
        fields = {e.get("field"): e.get("message") for e in exc.errors or []}
        message = fields.get("message") or exc.message
        code = {429: "rate_limited", 404: "not_found", 409: "conflict"}.get(
            exc.status, "invalid_payload"
        )
        return _reply_error(code, message)
    except Exception as exc:
        if outage_kind(exc) is None:
            raise
        rollback_quietly()
        log.warning("chat event refused: %s unavailable", outage_kind(exc))
        return _reply_error("service_unavailable", "Chat is unavailable, retry later")
    finally:
        db.session.remove()


def _optional_id(data: Any, key: str) -> int | None:
    if isinstance(data, dict) and data.get(key) is not None:
        return _positive_id(data, key)
    return None


@_guarded("chat:send")
def chat_send(session: LiveSession, data: Any):
    """``{message, ticket_id?}``: a line into the player's conversation (opened if none)."""
    if not isinstance(data, dict):
        raise _BadPayload("Expected an object")
    ticket_id = _optional_id(data, "ticket_id")

    def work(user: User) -> dict[str, Any]:
        msg = chat.send(user, data.get("message"), ticket_id=ticket_id)
        return {"message": support.message_json(msg, for_player=True)}

    return _chat(session, work)


@_guarded("chat:history")
def chat_history(session: LiveSession, data: Any):
    """``{ticket_id?}``: the conversation with its messages (none open: ``null``)."""
    ticket_id = _optional_id(data, "ticket_id")

    def work(user: User) -> dict[str, Any]:
        ticket = chat.history(user, ticket_id)
        return {"conversation": None if ticket is None else chat.conversation_json(ticket)}

    return _chat(session, work)


@_guarded("chat:read")
def chat_read(session: LiveSession, data: Any):
    """``{ticket_id, message_id}``: the player has read up to ``message_id``."""
    ticket_id = _positive_id(data, "ticket_id")
    message_id = _positive_id(data, "message_id")

    def work(user: User) -> dict[str, Any]:
        ticket = chat.mark_read(user, ticket_id, message_id, side="player")
        return {"unread": chat.conversation_json(ticket)["unread"]}

    return _chat(session, work)


# --- live-session re-check ------------------------------------------------------------------


def _ensure_recheck_task(app) -> None:
    pid = os.getpid()
    if pid in _recheck_started:
        return
    with _recheck_lock:
        if pid in _recheck_started:
            return
        _recheck_started.add(pid)
    socketio.start_background_task(_recheck_loop, app)


def _recheck_loop(app) -> None:
    interval = float(app.config.get("SOCKETIO_AUTH_RECHECK_SECONDS", 30))
    while True:
        socketio.sleep(interval)
        try:
            with app.app_context():
                recheck_live_sessions()
        except Exception:
            log.exception("live session re-check failed")


def recheck_live_sessions(now: float | None = None) -> dict[str, str]:
    """Close the connections whose token expired or was revoked; return ``{sid: verdict}``."""
    from sqlalchemy import select

    now = time.time() if now is None else now
    snapshot = dict(_live)
    verdicts: dict[str, str] = {}
    for sid, session in snapshot.items():
        if session.principal.exp is not None and session.principal.exp <= now:
            verdicts[sid] = "expired"
    remaining = {sid: s for sid, s in snapshot.items() if sid not in verdicts}
    user_ids = sorted({s.principal.user_id for s in remaining.values()})
    if user_ids:
        try:
            rows = db.session.execute(
                select(User.id, User.status, User.tokens_valid_after, User.role_id).where(
                    User.id.in_(user_ids)
                )
            ).all()
        finally:
            db.session.remove()
        users = {row.id: row for row in rows}
        with_jti = [(sid, jti) for sid, s in remaining.items() if (jti := s.principal.jti)]
        client = redis_store.client()
        denied: set[str] = set()
        if with_jti:
            pipe = client.pipeline()
            for _sid, jti in with_jti:
                pipe.exists(DENYLIST_PREFIX + jti)
            denied = {sid for (sid, _jti), hit in zip(with_jti, pipe.execute(), strict=True) if hit}
        for sid, session in remaining.items():
            row = users.get(session.principal.user_id)
            cutoff = row.tokens_valid_after if row is not None else None
            if row is None or row.status in {"suspended", "banned", "closed"}:
                verdicts[sid] = "closed"
            elif sid in denied or (
                cutoff is not None
                and session.principal.iat is not None
                and session.principal.iat < int(cutoff.timestamp())
            ):
                verdicts[sid] = "revoked"
        alive: dict[int, list[str]] = {}
        for sid, session in remaining.items():
            if sid not in verdicts:
                alive.setdefault(session.principal.user_id, []).append(sid)
        presence.touch(alive)
    for sid, verdict in verdicts.items():
        if verdict == "expired":
            socketio.emit("error", error_payload("token_expired", "Token has expired"), to=sid)
        else:
            socketio.emit("session.logout", {"reason": "Session invalidated"}, to=sid)
        socketio.server.disconnect(sid, namespace="/")
    return verdicts
