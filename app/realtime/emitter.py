"""Where events leave a process: the Redis message queue, or in-process in embedded mode.

Every process that publishes (gunicorn web workers, RQ workers, CLI commands) emits through a
*write-only* Socket.IO client manager on the Redis channel; every gunicorn worker's Socket.IO
server listens on that channel and delivers to the clients it holds. One path for all
publishers, so an event from a worker reaches a client exactly as one from a web request does.

python-socketio's ``RedisManager`` logs and drops a message when Redis is unreachable; the
outbox relay must know, so ``StrictRedisManager`` raises instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Protocol
from urllib.parse import urlparse

import socketio
from flask import Flask, current_app

from app.core.extensions import socketio as ext

log = logging.getLogger(__name__)


#: Messages held by ``batch()`` in this thread or greenlet (None: publish at once).
_held: ContextVar[list[str] | None] = ContextVar("jackpotx_emitter_held", default=None)


class StrictRedisManager(socketio.RedisManager):
    """A Redis client manager whose publish raises when Redis is unreachable."""

    connected: bool  # set by RedisManager.__init__ (python-socketio ships no types)

    def _publish(self, data: Any) -> Any:
        held = _held.get()
        if held is not None:
            held.append(self.json.dumps(data))
            return None
        return self._send([self.json.dumps(data)])

    def _send(self, messages: list[str]) -> Any:
        """PUBLISH each message, in order, in one round trip (a pipeline for several)."""
        from redis.exceptions import RedisError

        for attempt in (1, 2):
            try:
                if not self.connected:
                    self._redis_connect()
                if len(messages) == 1:
                    return self.redis.publish(self.channel, messages[0])
                pipe = self.redis.pipeline(transaction=False)
                for message in messages:
                    pipe.publish(self.channel, message)
                return pipe.execute()
            except RedisError:
                # A dropped connection is retried once on a fresh one; then the caller knows.
                self.connected = False
                if attempt == 2:
                    raise
        return None  # pragma: no cover - the loop returns or raises


def channel_for(app: Flask) -> str:
    """The pub/sub channel. Pub/sub ignores Redis db numbers, so the db is part of the name:
    two environments sharing one Redis server on different dbs never see each other's events.
    """
    configured = app.config.get("SOCKETIO_CHANNEL")
    if configured:
        return configured
    path = urlparse(app.config["REDIS_URL"]).path.strip("/") or "0"
    return f"jackpotx-socketio-{path}"


def redis_options() -> dict[str, Any]:
    return {"socket_timeout": 5, "socket_connect_timeout": 2}


class Emitter(Protocol):
    def emit(self, event: str, data: Any, room: str | None, namespace: str = "/") -> None: ...

    def disconnect(self, sids: list[str], namespace: str = "/") -> None: ...

    def batch(self) -> AbstractContextManager[None]: ...


class QueueEmitter:
    """Publishes on the Redis channel; raises ``redis.RedisError`` when Redis is down."""

    def __init__(self, url: str, channel: str) -> None:
        manager = StrictRedisManager(
            url, channel=channel, write_only=True, redis_options=redis_options()
        )
        # A server object only to reuse python-socketio's packet encoding; it never listens.
        self.server = socketio.Server(
            client_manager=manager, async_mode="threading", logger=False, engineio_logger=False
        )

    def emit(self, event: str, data: Any, room: str | None, namespace: str = "/") -> None:
        self.server.emit(event, data, to=room, namespace=namespace)

    def disconnect(self, sids: list[str], namespace: str = "/") -> None:
        for sid in sids:
            self.server.disconnect(sid, namespace=namespace)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold this thread's publishes until the end of the block, then send them in order in
        one round trip (raises ``redis.RedisError`` there: none or some may have gone out)."""
        held: list[str] = []
        token = _held.set(held)
        try:
            yield
        finally:
            _held.reset(token)
        if held:
            self.server.manager._send(held)


class LocalEmitter:
    """Embedded mode: the one process holds every client."""

    def emit(self, event: str, data: Any, room: str | None, namespace: str = "/") -> None:
        ext.server.emit(event, data, to=room, namespace=namespace)

    def disconnect(self, sids: list[str], namespace: str = "/") -> None:
        for sid in sids:
            ext.server.disconnect(sid, namespace=namespace)

    def batch(self) -> AbstractContextManager[None]:
        return nullcontext()


def make_emitter(app: Flask) -> Emitter:
    if app.config["REDIS_URL"]:
        return QueueEmitter(app.config["REDIS_URL"], channel_for(app))
    return LocalEmitter()


def emitter() -> Emitter:
    return current_app.extensions["jx_emitter"]


def batch() -> AbstractContextManager[None]:
    """``bus.batched()``'s part here: the current app's emitter holds its publishes."""
    return emitter().batch()
