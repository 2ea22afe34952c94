"""Compliance jobs: plain values in, own transaction, idempotent."""

from __future__ import annotations

from app.compliance import reality_check
from app.core.queues import job


@job
def send_reality_checks() -> int:
    """Reality-check reminders that are due (periodic; dedupe keys make reruns harmless)."""
    return reality_check.send_due()
