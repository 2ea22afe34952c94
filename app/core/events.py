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
import queue
import threading
import time
from contextvars import ContextVar
from typing import Any

from flask import Flask, current_app, has_request_context
from redis.exceptions import RedisError

from app.core import bus, outbox
from app.core.breaker import redis_breaker
from app.core.bus import Event, deliver
from app.core.db import atomic, on_commit
from app.core.extensions import db

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


def _deliver_batch(events: list[Event]) -> None:
    """``_deliver_or_park`` for several events in order, sent in one Redis round trip. If Redis
    fails, every event of the batch is parked: a subscriber may see some twice (at least
    once), never none."""
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


class _Publisher:
    """One per process and app: committed events in a queue, and the thread (a greenlet under
    gevent) that sends them in batches, in commit order."""

    BATCH = 500
    #: Events waiting at most (memory bound); past it an event is delivered by its request.
    LIMIT = 20_000

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.busy = False
        self.queue: queue.Queue[Event] = queue.Queue(maxsize=self.LIMIT)
        self.thread = threading.Thread(target=self._run, name="jx-events", daemon=True)
        self.thread.start()

    def submit(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            _deliver_or_park(event)

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            self.busy = True
            while len(batch) < self.BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            with self.app.app_context():
                try:
                    _deliver_batch(batch)
                except Exception:  # never let the thread die
                    log.exception("event batch failed")
                finally:
                    db.session.remove()
                    self.busy = not self.queue.empty()

    def idle(self) -> bool:
        return not self.busy and self.queue.empty()


_publishers: dict[int, _Publisher] = {}
_publishers_lock = threading.Lock()


def _publisher(app: Flask) -> _Publisher:
    publisher = _publishers.get(id(app))
    if publisher is None:
        with _publishers_lock:
            publisher = _publishers.get(id(app))
            if publisher is None:
                publisher = _publishers[id(app)] = _Publisher(app)
    return publisher


def drain(timeout: float = 5.0) -> bool:
    """Wait (at most ``timeout`` seconds) until this process's publishers sent what they hold:
    for a worker about to exit. True when drained; what is left is lost to live clients only
    (events that must arrive are ``durable``, in the outbox)."""
    deadline = time.monotonic() + timeout
    while not all(p.idle() for p in list(_publishers.values())):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)  # under gevent: yields to the publisher greenlet
    return True


def user_room(user_id: int) -> str:
    return f"user:{user_id}"
