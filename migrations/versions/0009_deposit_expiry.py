"""payments: an unpaid deposit expires (status 'expired')

Revision ID: 0009
Revises: 0008
"""

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_OLD = ("pending", "approved", "processing", "completed", "failed", "rejected", "cancelled")
_NEW = (*_OLD, "expired")
#: SQLite batch mode: don't follow foreign keys into ``users`` (its expression index cannot
#: be reflected).
_REFLECT = {"resolve_fks": False}


def _status_check(statuses):
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


@contextmanager
def _quiet_reflection():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        yield


def _replace_status_check(statuses):
    if op.get_bind().dialect.name == "sqlite":
        with (
            _quiet_reflection(),
            op.batch_alter_table(
                "payment_transactions", recreate="always", reflect_kwargs=_REFLECT
            ) as batch_op,
        ):
            batch_op.drop_constraint(batch_op.f("ck_payment_transactions_status"), type_="check")
            batch_op.create_check_constraint(
                batch_op.f("ck_payment_transactions_status"), _status_check(statuses)
            )
        return
    op.drop_constraint(op.f("ck_payment_transactions_status"), "payment_transactions", "check")
    op.create_check_constraint(
        op.f("ck_payment_transactions_status"), "payment_transactions", _status_check(statuses)
    )


def upgrade():
    _replace_status_check(_NEW)


def downgrade():
    # The old schema has no 'expired': an expired deposit was never paid, 'failed' is the
    # closest status it knew.
    op.execute(
        "UPDATE payment_transactions SET status = 'failed' "
        "WHERE status = 'expired' AND type = 'deposit'"
    )
    _replace_status_check(_OLD)
