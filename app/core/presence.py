"""Who is connected where: one Redis hash per user, ``sid -> {"t": connected, "s": seen}``.

Shared by every gunicorn process so that a force-logout published anywhere can close the
user's sockets everywhere, the per-user connection cap holds across processes, and the
reality-check job knows who is in a session. Entries are refreshed by the holding process
(``touch``); an entry not seen for ``STALE_AFTER`` seconds belongs to a dead process and is
pruned.
"""

from __future__ import annotations

import json
import time

from app.core.extensions import redis_store

PREFIX = "jx:rt:presence:"
#: A hash disappears a day after its last refresh even if nobody prunes it.
KEY_TTL = 24 * 3600


def _key(user_id: int) -> str:
    return f"{PREFIX}{user_id}"


def stale_after() -> float:
    from flask import current_app

    return 3 * float(current_app.config.get("SOCKETIO_AUTH_RECHECK_SECONDS", 30)) + 10


def add(user_id: int, sid: str) -> None:
    now = time.time()
    client = redis_store.client()
    pipe = client.pipeline()
    pipe.hset(_key(user_id), sid, json.dumps({"t": now, "s": now}))
    pipe.expire(_key(user_id), KEY_TTL)
    pipe.execute()


def remove(user_id: int, sid: str) -> None:
    redis_store.client().hdel(_key(user_id), sid)


def touch(entries: dict[int, list[str]]) -> None:
    """Mark the given live sids as seen now (called by the process holding them)."""
    if not entries:
        return
    now = time.time()
    client = redis_store.client()
    keys = list(entries)
    pipe = client.pipeline()
    for user_id in keys:
        pipe.hmget(_key(user_id), entries[user_id])
    current = pipe.execute()
    pipe = client.pipeline()
    for user_id, values in zip(keys, current, strict=True):
        for sid, raw in zip(entries[user_id], values, strict=True):
            started = json.loads(raw)["t"] if raw else now
            pipe.hset(_key(user_id), sid, json.dumps({"t": started, "s": now}))
        pipe.expire(_key(user_id), KEY_TTL)
    pipe.execute()


def _live(raw: dict) -> dict[str, dict]:
    cutoff = time.time() - stale_after()
    out = {}
    for sid, value in raw.items():
        info = json.loads(value)
        if info["s"] >= cutoff:
            out[sid.decode() if isinstance(sid, bytes) else sid] = info
    return out


def sessions(user_id: int) -> dict[str, dict]:
    """Live sids of a user (stale entries of dead processes are pruned on the way)."""
    client = redis_store.client()
    raw = client.hgetall(_key(user_id))
    live = _live(raw)
    dead = [s for s in raw if (s.decode() if isinstance(s, bytes) else s) not in live]
    if dead:
        client.hdel(_key(user_id), *dead)
    return live


def sids(user_id: int) -> list[str]:
    return list(sessions(user_id))


def online_since(user_ids: list[int]) -> dict[int, float]:
    """For each user with a live connection: when their earliest live connection opened."""
    if not user_ids:
        return {}
    pipe = redis_store.client().pipeline()
    for user_id in user_ids:
        pipe.hgetall(_key(user_id))
    out = {}
    for user_id, raw in zip(user_ids, pipe.execute(), strict=True):
        live = _live(raw)
        if live:
            out[user_id] = min(info["t"] for info in live.values())
    return out
