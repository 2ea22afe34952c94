"""Wallet jobs: plain values in, own transactions, idempotent."""

from __future__ import annotations

import logging

from app.core.audit import ChainBroken
from app.core.chain import CheckpointError
from app.core.queues import job
from app.wallet import integrity

log = logging.getLogger(__name__)


@job
def write_checkpoint() -> str:
    """Every 5 minutes: check what the audit chain and the ledger gained since the last
    checkpoint and anchor it in a new signed one outside the database. A chain that does not
    verify is logged at CRITICAL and fails the job (no checkpoint vouches for it)."""
    try:
        return str(integrity.checkpoint())
    except (ChainBroken, CheckpointError) as exc:
        log.critical("integrity checkpoint refused: %s", exc)
        raise
