"""Affiliate jobs: plain arguments in, own transactions, idempotent."""

from __future__ import annotations

from typing import Any

from app.affiliates import commissions
from app.core.queues import job


@job
def pay_commissions(period_start: str | None = None) -> dict[str, Any]:
    """Pay agent commissions for the last closed period, or the period containing
    ``period_start`` (ISO date); a rerun pays nothing twice (periodic)."""
    from datetime import UTC, datetime

    start = None
    if period_start:
        start = datetime.fromisoformat(period_start)
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    return commissions.run(period_start=start)
