"""Payments jobs: plain values in, own transactions, idempotent."""

from __future__ import annotations

from app.core.queues import job
from app.payments import deposits


@job
def expire_pending_deposits() -> int:
    """Expire deposits left unpaid past ``DEPOSIT_PENDING_TTL_MINUTES`` (periodic; a rerun
    finds nothing left to expire)."""
    return deposits.expire_stale()
