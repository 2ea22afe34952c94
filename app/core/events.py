"""The event bus: services publish, after commit; the real-time layer delivers.

Services never import Socket.IO. They call ``publish()`` inside a transaction; the event is
handed to every subscriber only once the transaction has committed. The real-time layer
subscribes a Socket.IO emitter; tests subscribe a recorder.

In a web worker of the production profile (``EVENTS_AFTER_COMMIT=background``) the request
does not wait for Redis: committed events go to a per-process publisher that sends them in
order, many per Redis round trip, and parks them in the outbox when Redis is down (the relay
delivers them later). Elsewhere they are delivered before ``atomic()`` returns.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from flask import Flask, current_app, has_request_context
from redis.exceptions import RedisError

from app.core import bus, outbox
from app.core.batchqueue import BatchQueue, PerApp
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
    on_commit(lambda: _committed(event))


#: Set while the callback lane serves a request (an app context, no request context).
serving: ContextVar[bool] = ContextVar("jackpotx_events_serving", default=False)


def _committed(event: Event) -> None:
    """Deliver a committed event: from this process's publisher (``EVENTS_AFTER_COMMIT`` is
    ``background`` and a request is being served: the answer does not wait for Redis), else
    at once (tests, the embedded mode, jobs and commands: an RQ work-horse exits right after
    its job, so nothing may wait in a queue)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config.get("EVENTS_AFTER_COMMIT") == "background" and (
        has_request_context() or serving.get()
    ):
        _publisher(app).submit(event)
    else:
        _deliver_or_park(event)


def _deliver_or_park(event: Event) -> None:
    """Deliver now; if Redis is down (or was a moment ago), park the event in the outbox in
    its own transaction, so the relay delivers it when Redis is back. The business change
    has committed either way: nothing here may fail the request."""
    _deliver_batch([event])


def _deliver_batch(events: list[Event]) -> None:
    """Deliver ``events`` in order, in one Redis round trip; if Redis is down (or was a moment
    ago), park them all in the outbox in one transaction, so the relay delivers them when Redis
    is back (a subscriber may then see some twice: at least once, never none). A subscriber's
    own failure is logged and skips only its event."""
    if redis_breaker.allows():
        try:
            with bus.batched():
                for event in events:
                    try:
                        deliver(event, strict=True)
                    except RedisError:
                        raise
                    except Exception:
                        log.exception("event subscriber failed for %s", event.name)
        except RedisError as exc:
            redis_breaker.failed(exc)
        else:
            redis_breaker.succeeded()
            return
    try:
        with atomic():
            for event in events:
                outbox.add_event(event.name, event.data, room=event.room)
    except Exception:
        log.exception("%d events lost: Redis down and the outbox not writable", len(events))


#: Per process and app: committed events sent in commit order, up to 500 a Redis round trip;
#: past 20,000 waiting, an event is delivered by its own request.
_publishers: PerApp[Event] = PerApp(
    lambda app: BatchQueue(
        app, _deliver_batch, name="jx-events", batch=500, limit=20_000, overflow=_deliver_or_park
    )
)


def _publisher(app: Flask) -> BatchQueue[Event]:
    return _publishers.get(app)


def drain(timeout: float = 5.0) -> bool:
    """Wait (at most ``timeout`` seconds) until this process's publishers sent what they hold:
    for a worker about to exit. True when drained; what is left is lost to live clients only
    (events that must arrive are ``durable``, in the outbox)."""
    return _publishers.drain(timeout)


def user_room(user_id: int) -> str:
    return f"user:{user_id}"
