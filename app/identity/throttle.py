"""Player login throttling: progressive delays per (login name + client address).

Why not a lock: locking an account after N wrong passwords lets anyone lock a player out of
the casino by typing their name, and its distinct answer tells which accounts exist. Here
the failures of one login name *from one address* are counted; past
``LOGIN_THROTTLE_FREE_FAILURES`` each further failure makes that address wait
``LOGIN_THROTTLE_BASE_SECONDS`` doubled per failure, up to ``LOGIN_THROTTLE_MAX_SECONDS``.
The player, signing in from their own address, is not slowed down by an attacker elsewhere.

* An unknown login name is counted exactly like a known one: the throttle reveals nothing.
* The count is forgotten ``LOGIN_THROTTLE_WINDOW_MINUTES`` after the last failure, and on a
  successful sign-in from that address.
* Kept in Redis (the store of the rate limits); while Redis fails, each process counts in
  memory (the same rule), as the rate limiter does.
* Many addresses against one name (a botnet, each address under the free failures): the
  failures of a login name are also counted **across all addresses**; once
  ``LOGIN_NAME_CHALLENGE_AFTER`` of them fall within ``LOGIN_NAME_WINDOW_MINUTES`` (counted
  from the last one), every sign-in with that name must carry a solved captcha
  (``app.identity.captcha``) before its password is even checked. No lock: the right password
  with a solved challenge signs in. Unknown names are counted and challenged exactly alike.
  A successful sign-in does not forget the name's count (the attack may still be running);
  the window does. Staff accounts also lock (``app.identity.lockout``).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict

from flask import current_app
from redis.exceptions import RedisError

from app.core.breaker import redis_breaker
from app.core.extensions import redis_store

PREFIX = "jx:login:throttle:"
NAME_PREFIX = "jx:login:name:"
#: Entries the in-memory fallback keeps per process (oldest forgotten first).
_MEMORY_CAP = 10_000


def key_of(login: str, ip: str | None) -> str:
    """The throttle's key for a login name from an address (hashed: no names in Redis)."""
    raw = f"{(login or '').strip().lower()}|{ip or '-'}"
    return PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def name_key(login: str) -> str:
    """The key of a login name's failures across all addresses (hashed)."""
    raw = (login or "").strip().lower()
    return NAME_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def _settings() -> tuple[int, int, int, int]:
    cfg = current_app.config
    return (
        int(cfg["LOGIN_THROTTLE_FREE_FAILURES"]),
        int(cfg["LOGIN_THROTTLE_BASE_SECONDS"]),
        int(cfg["LOGIN_THROTTLE_MAX_SECONDS"]),
        int(cfg["LOGIN_THROTTLE_WINDOW_MINUTES"]) * 60,
    )


def delay_after(failures: int) -> int:
    """Seconds to wait after ``failures`` consecutive failures (0 while they are free)."""
    free, base, cap, _window = _settings()
    if failures < free:
        return 0
    return int(min(cap, base * 2 ** min(failures - free, 32)))


class _Memory:
    """The fallback store: {key: (failures, blocked until, forget at)} per process."""

    def __init__(self) -> None:
        self._rows: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> tuple[int, float]:
        with self._lock:
            row = self._rows.get(key)
            if row is None or row[2] <= now:
                self._rows.pop(key, None)
                return 0, 0.0
            return row[0], row[1]

    def fail(self, key: str, now: float, window: int) -> int:
        with self._lock:
            row = self._rows.pop(key, None)
            failures = (row[0] if row is not None and row[2] > now else 0) + 1
            self._rows[key] = (failures, 0.0, now + window)
            while len(self._rows) > _MEMORY_CAP:
                self._rows.popitem(last=False)
            return failures

    def block(self, key: str, until: float) -> None:
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows[key] = (row[0], until, max(row[2], until))

    def clear(self, key: str) -> None:
        with self._lock:
            self._rows.pop(key, None)


_memory = _Memory()


def retry_after(key: str) -> int:
    """Seconds this login name must still wait from this address (0: it may try now)."""
    now = time.time()
    until = 0.0
    if redis_breaker.allows():
        try:
            raw = redis_store.client().hget(key, "until")
            until = float(raw) if raw else 0.0
        except RedisError as exc:
            redis_breaker.failed(exc)
            until = _memory.get(key, now)[1]
    else:
        until = _memory.get(key, now)[1]
    return max(0, math.ceil(until - now))


def failed(key: str) -> int:
    """Count a failed attempt; returns the seconds to wait before the next one (0: none)."""
    now = time.time()
    window = _settings()[3]
    failures = 0
    stored = False
    if redis_breaker.allows():
        try:
            client = redis_store.client()
            pipe = client.pipeline()
            pipe.hincrby(key, "failures", 1)
            pipe.expire(key, window)
            failures = int(pipe.execute()[0])
            stored = True
        except RedisError as exc:
            redis_breaker.failed(exc)
    if not stored:
        failures = _memory.fail(key, now, window)
    wait = delay_after(failures)
    if wait:
        until = now + wait
        if stored:
            try:
                client = redis_store.client()
                client.hset(key, "until", repr(until))
                client.expire(key, max(window, wait))
            except RedisError as exc:
                redis_breaker.failed(exc)
                _memory.fail(key, now, window)
                _memory.block(key, until)
        else:
            _memory.block(key, until)
    return wait


def succeeded(key: str) -> None:
    """A successful sign-in from this address forgets its failures."""
    _memory.clear(key)
    if redis_breaker.allows():
        try:
            redis_store.client().delete(key)
        except RedisError as exc:
            redis_breaker.failed(exc)


_names = _Memory()


def _name_settings() -> tuple[int, int]:
    cfg = current_app.config
    return int(cfg["LOGIN_NAME_CHALLENGE_AFTER"]), int(cfg["LOGIN_NAME_WINDOW_MINUTES"]) * 60


def name_failures(key: str) -> int:
    """Failures of this login name from every address within the window."""
    if redis_breaker.allows():
        try:
            raw = redis_store.client().get(key)
            return int(raw) if raw else 0
        except RedisError as exc:
            redis_breaker.failed(exc)
    return _names.get(key, time.time())[0]


def name_failed(key: str) -> int:
    """Count a failure of this login name (any address); returns the name's count."""
    window = _name_settings()[1]
    if redis_breaker.allows():
        try:
            pipe = redis_store.client().pipeline()
            pipe.incr(key)
            pipe.expire(key, window)
            return int(pipe.execute()[0])
        except RedisError as exc:
            redis_breaker.failed(exc)
    return _names.fail(key, time.time(), window)


def challenge_required(key: str) -> bool:
    """Whether a sign-in with this name must carry a solved captcha (0 turns it off)."""
    after = _name_settings()[0]
    return after > 0 and name_failures(key) >= after
