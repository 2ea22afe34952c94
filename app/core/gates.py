"""Per-key admission: at most N callers in flight per key in this process.

A wallet row lock serializes one player's money movements in PostgreSQL; every request
waiting for it holds a pooled connection. Without a gate, one hot or stuck wallet (a stuck
transaction, a provider hammering one player) takes the whole pool and every other player
stalls. Callers wait here for a slot, holding no connection, and give up after ``timeout``.
Works with threads and with gevent (``threading`` is patched into greenlet primitives).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager


class GateBusy(Exception):
    """No slot for this key within the timeout."""


class KeyedGate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: key -> (semaphore, callers holding or waiting for it)
        self._slots: dict[Hashable, tuple[threading.BoundedSemaphore, int]] = {}

    @contextmanager
    def admit(self, key: Hashable, *, limit: int, timeout: float) -> Iterator[None]:
        if limit <= 0:
            yield
            return
        with self._lock:
            semaphore, users = self._slots.get(key) or (threading.BoundedSemaphore(limit), 0)
            self._slots[key] = (semaphore, users + 1)
        try:
            if not semaphore.acquire(timeout=timeout):
                raise GateBusy(key)
            try:
                yield
            finally:
                semaphore.release()
        finally:
            with self._lock:
                semaphore, users = self._slots[key]
                if users <= 1:
                    del self._slots[key]
                else:
                    self._slots[key] = (semaphore, users - 1)
