"""The event bus: services publish, after commit; the real-time layer delivers.

Services never import Socket.IO. They call ``publish()`` inside a transaction; the event is
handed to every subscriber only once the transaction has committed. The real-time layer
subscribes a Socket.IO emitter; tests subscribe a recorder.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from app.core import outbox
from app.core.breaker import redis_breaker
from app.core.bus import Event, deliver
from app.core.db import atomic, on_commit

log = logging.getLogger(__name__)


def publish(
    name: str, data: dict[str, Any], *, room: str | None = None, durable: bool = False
) -> None:
    """Queue ``name`` for delivery after the current transaction commits.

    ``durable=True`` writes the event to the PostgreSQL outbox in the current transaction
    instead: it is delivered even if Redis is down at commit time (relayed once it is back).
    """
    if durable:
        outbox.add_event(name, data, room=room)
        return
    event = Event(name=name, data=data, room=room)
    on_commit(lambda: _deliver_or_park(event))


def _deliver_or_park(event: Event) -> None:
    """Deliver now; if Redis is down (or was a moment ago), park the event in the outbox in
    its own transaction, so the relay delivers it when Redis is back. The business change
    has committed either way: nothing here may fail the request."""
    if redis_breaker.allows():
        try:
            deliver(event, strict=True)
        except RedisError as exc:
            redis_breaker.failed(exc)
        except Exception:
            log.exception("event subscriber failed for %s", event.name)
            return
        else:
            redis_breaker.succeeded()
            return
    try:
        with atomic():
            outbox.add_event(event.name, event.data, room=event.room)
    except Exception:
        log.exception("event %s lost: Redis down and the outbox not writable", event.name)


def user_room(user_id: int) -> str:
    return f"user:{user_id}"
