"""Nonces of signed provider requests (Slotegrator-style ``X-Nonce``): each is accepted once.

Invariants:
* A nonce is claimed with ``INSERT ... ON CONFLICT DO NOTHING`` on the primary key
  ``(provider_id, nonce)``: of two requests racing with one nonce exactly one wins, whatever
  the number of processes.
* The claim commits in its own short transaction *before* the callback runs, so a nonce is
  spent even when the callback is then refused or rolled back: a provider's retry is a new
  request with a new nonce and timestamp (the money stays idempotent by transaction id).
* Rows live in PostgreSQL, not Redis: a nonce check that failed open while Redis is down (or
  lost its data) would let a captured request through, and Redis is not on the money path
  (docs/operations.md). The table holds only the clock-skew window; older rows are pruned
  (their timestamp alone now refuses them).
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete

from app.core.base import utcnow
from app.core.db import atomic, table_of
from app.core.extensions import db
from app.play.models import ProviderNonce
from app.wallet.ledger import hot_statement

#: How far a request's timestamp may be from our clock, either way.
SKEW_SECONDS = 300
#: Nonces are kept this long: a timestamp up to SKEW in the future stays acceptable until
#: 2 x SKEW from now, plus a margin.
KEEP = timedelta(seconds=3 * SKEW_SECONDS)
#: One claim in this many also deletes the expired rows (cheap with the ``seen_at`` index).
PRUNE_EVERY = 200

_t = table_of(ProviderNonce).c


def _build_claim(dialect_insert: Any) -> Any:
    return (
        dialect_insert(table_of(ProviderNonce))
        .values(
            provider_id=bindparam("provider_id"),
            nonce=bindparam("nonce"),
            seen_at=bindparam("seen_at"),
        )
        .on_conflict_do_nothing(index_elements=["provider_id", "nonce"])
        .returning(_t.provider_id)
    )


def claim(provider_id: int, nonce: str) -> bool:
    """Spend ``nonce`` for this provider: True the first time, False ever after (within the
    kept window). Commits on its own."""
    now = utcnow()
    with atomic():
        won = db.session.execute(
            hot_statement("nonce.claim", _build_claim),
            {"provider_id": provider_id, "nonce": nonce, "seen_at": now},
        ).scalar_one_or_none()
        if random.randrange(PRUNE_EVERY) == 0:
            db.session.execute(delete(ProviderNonce).where(_t.seen_at < now - KEEP))
    return won is not None
