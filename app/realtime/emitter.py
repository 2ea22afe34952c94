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
from typing import Any, Protocol
from urllib.parse import urlparse

import socketio
from flask import Flask, current_app

from app.core.extensions import socketio as ext

log = logging.getLogger(__name__)


class StrictRedisManager(socketio.RedisManager):
    """A Redis client manager whose publish raises when Redis is unreachable."""

    connected: bool  # set by RedisManager.__init__ (python-socketio ships no types)

    def _publish(self, data: Any) -> Any:
        from redis.exceptions import RedisError

        for attempt in (1, 2):
            try:
                if not self.connected:
                    self._redis_connect()
                return self.redis.publish(self.channel, self.json.dumps(data))
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


class LocalEmitter:
    """Embedded mode: the one process holds every client."""

    def emit(self, event: str, data: Any, room: str | None, namespace: str = "/") -> None:
        ext.server.emit(event, data, to=room, namespace=namespace)

    def disconnect(self, sids: list[str], namespace: str = "/") -> None:
        for sid in sids:
            ext.server.disconnect(sid, namespace=namespace)


def make_emitter(app: Flask) -> Emitter:
    if app.config["REDIS_URL"]:
        return QueueEmitter(app.config["REDIS_URL"], channel_for(app))
    return LocalEmitter()


def emitter() -> Emitter:
    return current_app.extensions["jx_emitter"]
