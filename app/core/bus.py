"""The in-process event bus: subscribers get every event once its transaction has committed.

``app.core.events.publish`` (after commit) and ``app.core.outbox`` (the durable relay) hand
events to ``deliver``; the real-time layer subscribes a Socket.IO emitter, tests a recorder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

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


#: Subscribers' batch contexts: inside ``batched()`` a subscriber may hold what it sends and
#: send it all at the end (one Redis round trip for many events), raising there instead.
_batchers: list[Callable[[], AbstractContextManager[Any]]] = []


def add_batcher(batcher: Callable[[], AbstractContextManager[Any]]) -> None:
    if batcher not in _batchers:
        _batchers.append(batcher)


@contextmanager
def batched() -> Iterator[None]:
    """Deliver the events of the block together; a failure to send them raises at its end."""
    with ExitStack() as stack:
        for batcher in list(_batchers):
            stack.enter_context(batcher())
        yield
