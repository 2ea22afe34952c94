"""Where a statement of ``db.session`` runs: the primary, or the read replica inside a
``app.core.replica.reads`` block.

Invariants:
* Only a plain ``SELECT`` (no ``FOR UPDATE``) is routed to the replica, and only while a
  replica engine is set for the current context (thread, greenlet): flushes, ``INSERT``,
  ``UPDATE``, ``DELETE``, ``text()`` and locking reads always run on the primary, so a write
  made inside a replica block still lands where it belongs.
* Inside ``atomic()`` every statement runs on the primary, replica block or not: a
  transaction reads its own writes and what it decides on (an audit chain's last hash, a
  balance) is never a replica's older copy.
* Nothing here opens a connection or reads the configuration: ``app.core.replica`` decides
  whether the replica is usable and sets the engine; this module only routes.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy.sql.selectable import Select

#: ``Session.info`` key of ``app.core.db.atomic``'s nesting depth (0 or absent: no transaction).
ATOMIC_DEPTH = "jx_atomic_depth"

#: The replica engine SELECTs of this context go to (``None``: the primary).
replica_engine: ContextVar[sa.Engine | None] = ContextVar("jx_replica_engine", default=None)


def routed_to_replica(clause: Any) -> bool:
    """Whether ``clause`` may run on the replica: a SELECT that locks nothing."""
    return isinstance(clause, Select) and clause._for_update_arg is None


class RoutingSession(FlaskSession):
    """Flask-SQLAlchemy's session, with reads of a replica block sent to the replica."""

    def get_bind(
        self,
        mapper: Any | None = None,
        clause: Any | None = None,
        bind: sa.Engine | sa.Connection | None = None,
        **kwargs: Any,
    ) -> sa.Engine | sa.Connection:
        engine = replica_engine.get()
        if (
            engine is not None
            and bind is None
            and not self.info.get(ATOMIC_DEPTH)
            and routed_to_replica(clause)
        ):
            return engine
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
