"""The event bus: services publish, after commit; the real-time layer delivers.

Services never import Socket.IO. They call ``publish()`` inside a transaction; the event is
handed to every subscriber only once the transaction has committed. The real-time layer
subscribes a Socket.IO emitter; tests subscribe a recorder.
"""

from __future__ import annotations

from typing import Any

from app.core import outbox
from app.core.bus import Event, deliver
from app.core.db import on_commit


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
    on_commit(lambda: deliver(event))


def user_room(user_id: int) -> str:
    return f"user:{user_id}"
