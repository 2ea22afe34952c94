"""Job functions the job tests enqueue (importable by an in-process RQ worker)."""

from __future__ import annotations


def explode(order_id: int) -> None:
    raise ValueError(f"payout gateway said no for order {order_id}")


def succeed(order_id: int) -> int:
    return order_id
