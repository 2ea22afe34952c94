"""Bonus jobs. Each opens its own transactions and is idempotent."""

from __future__ import annotations

from app.bonus import free_spins, loyalty, promotions
from app.core.queues import job


@job
def expire_bonuses() -> int:
    """End bonuses past their validity: remaining bonus money forfeited (periodic)."""
    return promotions.expire_due()


@job
def pay_cashback() -> dict[str, int]:
    """Cashback for the last completed period of every active cashback promotion (periodic)."""
    return promotions.pay_cashback()


@job
def sweep_loyalty() -> int:
    """Loyalty points of recent stakes and refunds the after-commit step did not reach (a
    process that died between commit and it); idempotent (periodic)."""
    return loyalty.sweep()


@job
def issue_free_round(grant_id: int) -> str | None:
    """A claim's grant issued through the aggregator's API, off the player's request (queued
    after the claim committed); still pending afterwards, ``issue_free_rounds`` retries it."""
    return free_spins.issue_remote(grant_id)


@job
def cancel_free_round(grant_id: int) -> None:
    """An issued grant whose bonus ended withdrawn at the aggregator (best effort)."""
    free_spins.cancel_remote(grant_id)


@job
def issue_free_rounds() -> dict[str, int]:
    """Free rounds still pending at an aggregator (its API did not answer): sent again with
    the same issue id (periodic)."""
    return free_spins.retry_pending()
