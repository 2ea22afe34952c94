"""Periodic job: settle rounds a provider never finished (scheduled by the real-time layer)."""

from __future__ import annotations

import logging
from datetime import timedelta

from app.core.queues import job
from app.play import rounds

log = logging.getLogger(__name__)


@job
def settle_stale_rounds(older_than_seconds: int = 3600) -> dict:
    """Refund or close rounds idle for ``older_than_seconds`` (per provider policy), audited."""
    report = rounds.settle_stale(timedelta(seconds=older_than_seconds))
    log.info(
        "stale rounds settled: %s rounds, %s bets refunded", report.rounds, report.refunded_bets
    )
    return {
        "rounds": report.rounds,
        "refunded_bets": report.refunded_bets,
        "closed": report.closed,
        "cancelled": report.cancelled,
    }
