"""loyalty redemption catalogue; redemption and referral loyalty events; redeemed points

Revision ID: 0019
Revises: 0018
"""

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0019"
down_revision = "0018"
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


def _batch(table):
    return op.batch_alter_table(table, schema=None, reflect_kwargs=_REFLECT)


def upgrade():
    op.create_table(
        "loyalty_rewards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("promotion_id", sa.BigInteger(), nullable=False),
        sa.Column("bonus_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_loyalty_rewards_points_positive")),
        sa.CheckConstraint(
            "bonus_amount_minor IS NULL OR bonus_amount_minor > 0",
            name=op.f("ck_loyalty_rewards_bonus_amount_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
            name=op.f("fk_loyalty_rewards_promotion_id_promotions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_rewards")),
        sa.UniqueConstraint("code", name=op.f("uq_loyalty_rewards_code")),
    )
    with _quiet_reflection(), _batch("loyalty_accounts") as batch_op:
        batch_op.add_column(
            sa.Column("redeemed_points", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_loyalty_accounts_redeemed_points_non_negative"), "redeemed_points >= 0"
        )
    with _quiet_reflection(), _batch("loyalty_events") as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_loyalty_events_kind"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_loyalty_events_kind"),
            "kind IN ('wager', 'reversal', 'redemption', 'referral')",
        )
        batch_op.alter_column(
            "provider_transaction_id", existing_type=sa.BigInteger(), nullable=True
        )
        batch_op.add_column(sa.Column("reference", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_loyalty_events_reference"), ["reference"])


def downgrade():
    with _quiet_reflection(), _batch("loyalty_events") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_loyalty_events_reference"), type_="unique")
        batch_op.drop_column("reference")
        batch_op.alter_column(
            "provider_transaction_id", existing_type=sa.BigInteger(), nullable=False
        )
        batch_op.drop_constraint(batch_op.f("ck_loyalty_events_kind"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_loyalty_events_kind"), "kind IN ('wager', 'reversal')"
        )
    with _quiet_reflection(), _batch("loyalty_accounts") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("ck_loyalty_accounts_redeemed_points_non_negative"), type_="check"
        )
        batch_op.drop_column("redeemed_points")
    op.drop_table("loyalty_rewards")
