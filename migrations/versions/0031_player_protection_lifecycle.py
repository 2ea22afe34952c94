"""player protection and account lifecycle: the deposit-limit prompt answer (rg_settings),
a player's request to lift a self-exclusion (rg_exclusions), self-service closure (users),
postal addresses (user_addresses)

Revision ID: 0031
Revises: 0033
"""

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0031"
down_revision = "0033"
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
    op.create_table(
        "user_addresses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(length=50), nullable=True),
        sa.Column("line1", sa.String(length=200), nullable=False),
        sa.Column("line2", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_addresses_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_addresses")),
    )
    op.create_index(
        op.f("ix_user_addresses_user_id"), "user_addresses", ["user_id"], unique=False
    )
    op.create_index(
        "uq_user_addresses_default",
        "user_addresses",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )


def downgrade():
    op.drop_index("uq_user_addresses_default", table_name="user_addresses")
    op.drop_index(op.f("ix_user_addresses_user_id"), table_name="user_addresses")
    op.drop_table("user_addresses")
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
