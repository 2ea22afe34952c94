"""Per-process queues of committed work, applied in order and in batches by one thread.

Used for what a request leaves to do once its transaction committed and its answer is out:
the after-commit play listeners (``app.play.events``) and the live events
(``app.core.events``). One queue per process and app; its thread (a greenlet under gevent)
takes what is waiting, up to ``batch`` items, and hands them to ``handle`` inside an app
context, in the order they were submitted.

Invariants:
* Bounded: past ``limit`` waiting items, ``overflow`` gets the item (the owner decides: run it
  now, or leave it to a sweep) and ``dropped`` counts it.
* ``handle`` failing never stops the thread (it is logged; the owner's sweep or outbox is the
  safety net).
* ``drain()`` (gunicorn's ``worker_exit``) waits until every queue is empty and idle.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from flask import Flask

from app.core.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchQueue(Generic[T]):
    def __init__(
        self,
        app: Flask | None,
        handle: Callable[[list[T]], None],
        *,
        name: str,
        batch: int,
        limit: int,
        overflow: Callable[[T], None] | None = None,
        linger: float = 0.0,
        start: bool = True,
    ) -> None:
        self.app = app
        self.handle = handle
        self.name = name
        self.batch = batch
        #: Seconds the thread waits after an item for more (fewer, larger batches; that lag).
        self.linger = linger
        self.overflow = overflow
        self.dropped = 0
        self.busy = False
        self.queue: queue.Queue[T] = queue.Queue(maxsize=limit)
        if start:
            threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, item: T) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("%s: queue full (%d): %d overflowed so far", self.name,
                            self.queue.maxsize, self.dropped)  # fmt: skip
            if self.overflow is not None:
                self.overflow(item)

    def _run(self) -> None:
        while True:
            items = [self.queue.get()]
            self.busy = True
            if self.linger and self.queue.qsize() < self.batch:
                time.sleep(self.linger)  # under gevent: yields to the requests
            while len(items) < self.batch:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            assert self.app is not None  # a started queue has its app
            with self.app.app_context():
                try:
                    self.handle(items)
                except Exception:  # never let the thread die
                    log.exception("%s: a batch of %d failed", self.name, len(items))
                finally:
                    db.session.remove()
                    self.busy = not self.queue.empty()

    def idle(self) -> bool:
        return not self.busy and self.queue.empty()


class PerApp(Generic[T]):
    """One ``BatchQueue`` per app in this process, made on first use by ``factory``."""

    def __init__(self, factory: Callable[[Flask], BatchQueue[T]]) -> None:
        self.factory = factory
        self.queues: dict[int, BatchQueue[T]] = {}
        self._lock = threading.Lock()

    def get(self, app: Flask) -> BatchQueue[T]:
        found = self.queues.get(id(app))
        if found is None:
            with self._lock:
                found = self.queues.get(id(app))
                if found is None:
                    found = self.queues[id(app)] = self.factory(app)
        return found

    def values(self) -> list[BatchQueue[T]]:
        return list(self.queues.values())

    def drain(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every queue is empty and idle; False when
        something was still waiting or running at the deadline."""
        deadline = time.monotonic() + timeout
        while not all(q.idle() for q in self.values()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # under gevent: yields to the queues' greenlets
        return True
