"""Bonus jobs. Each opens its own transactions and is idempotent."""

from __future__ import annotations

from app.core.queues import job


@job
def expire_bonuses() -> int:
    """End bonuses past their validity: remaining bonus money forfeited (periodic)."""
    from app.bonus import promotions

    return promotions.expire_due()


@job
def pay_cashback() -> dict[str, int]:
    """Cashback for the last completed period of every active cashback promotion (periodic)."""
    from app.bonus import promotions

    return promotions.pay_cashback()
