"""player protection and account lifecycle: the deposit-limit prompt answer (rg_settings),
a player's request to lift a self-exclusion (rg_exclusions), self-service closure (users)

Revision ID: 0031
Revises: 0027
"""

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0031"
down_revision = "0027"
branch_labels = None
depends_on = None

#: SQLite batch mode: don't follow foreign keys into ``users`` (its expression index cannot
#: be reflected).
_REFLECT = {"resolve_fks": False}


@contextmanager
def _quiet_reflection():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        yield


def _when(name):
    return sa.Column(name, app.core.base.UTCDateTime(timezone=True), nullable=True)


def upgrade():
    with _quiet_reflection(), op.batch_alter_table(
        "users", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(_when("closed_at"))
        batch_op.add_column(sa.Column("closure_reason", sa.String(length=500), nullable=True))
    with _quiet_reflection(), op.batch_alter_table(
        "rg_exclusions", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(_when("lift_requested_at"))
        batch_op.add_column(_when("lift_confirmable_at"))
    with _quiet_reflection(), op.batch_alter_table(
        "rg_settings", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(sa.Column("deposit_limit_prompt", sa.String(length=8), nullable=True))
        batch_op.add_column(_when("deposit_limit_prompt_at"))


def downgrade():
    with _quiet_reflection(), op.batch_alter_table(
        "rg_settings", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_column("deposit_limit_prompt_at")
        batch_op.drop_column("deposit_limit_prompt")
    with _quiet_reflection(), op.batch_alter_table(
        "rg_exclusions", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_column("lift_confirmable_at")
        batch_op.drop_column("lift_requested_at")
    with _quiet_reflection(), op.batch_alter_table(
        "users", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_column("closure_reason")
        batch_op.drop_column("closed_at")
