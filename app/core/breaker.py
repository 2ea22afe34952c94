"""A circuit breaker for Redis on request paths: after a failure, skip Redis for a while.

A dead Redis answers "connection refused" at once, but a hung one costs every caller its
socket timeout; post-commit side effects (socket events, the outbox fast path) would add
that to every committed request. While the breaker is open they skip Redis (events are
parked in the outbox, which the periodic relay delivers once Redis is back).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Breaker:
    def __init__(self, name: str, cooldown: float = 5.0) -> None:
        self.name = name
        self.cooldown = cooldown
        self._open_until = 0.0

    def allows(self) -> bool:
        """True when calls may go to the dependency (closed, or the cool-down is over)."""
        return time.monotonic() >= self._open_until

    def failed(self, exc: BaseException) -> None:
        if self.allows():
            log.warning(
                "%s unavailable (%s): skipping it for %.0f s", self.name, exc, self.cooldown
            )
        self._open_until = time.monotonic() + self.cooldown

    def succeeded(self) -> None:
        self._open_until = 0.0


#: Shared by every post-commit Redis call of this process.
redis_breaker = Breaker("redis")
