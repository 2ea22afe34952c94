"""CRM jobs. Each opens its own transactions and is idempotent."""

from __future__ import annotations

from app.core.queues import job
from app.messaging import crm


@job
def fan_out_broadcast(broadcast_id: int) -> dict[str, int]:
    """Notify (and e-mail) the segment's consenting, non-excluded players."""
    return crm.fan_out(broadcast_id)
