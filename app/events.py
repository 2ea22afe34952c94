"""The event bus: services publish, after commit; the real-time layer delivers.

Services never import Socket.IO. They call ``publish()`` inside a transaction; the event is
handed to every subscriber only once the transaction has committed. The real-time layer
subscribes a Socket.IO emitter; tests subscribe a recorder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.db import on_commit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    room: str | None = None
    namespace: str = "/"
    meta: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    _subscribers.append(subscriber)
    return lambda: _subscribers.remove(subscriber) if subscriber in _subscribers else None


def deliver(event: Event, *, strict: bool = False) -> None:
    """Hand ``event`` to every subscriber; ``strict`` re-raises a failure (the outbox relay
    must know whether Redis took the event)."""
    for subscriber in list(_subscribers):
        try:
            subscriber(event)
        except Exception:
            if strict:
                raise
            log.exception("event subscriber failed for %s", event.name)


def publish(
    name: str, data: dict[str, Any], *, room: str | None = None, durable: bool = False
) -> None:
    """Queue ``name`` for delivery after the current transaction commits.

    ``durable=True`` writes the event to the PostgreSQL outbox in the current transaction
    instead: it is delivered even if Redis is down at commit time (relayed once it is back).
    """
    if durable:
        from app.services import outbox

        outbox.add_event(name, data, room=room)
        return
    event = Event(name=name, data=data, room=room)
    on_commit(lambda: deliver(event))


def user_room(user_id: int) -> str:
    return f"user:{user_id}"
