"""prizes: provider-reported jackpot wins, must-drop by time, contribution reversal,
tournament entry fees and bonus prizes

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa

import app.core.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OLD_TYPES = (
    "deposit", "withdrawal", "withdrawal_hold", "withdrawal_release", "bet", "win", "refund",
    "rollback", "bonus_grant", "bonus_convert", "bonus_forfeit", "adjustment", "jackpot_win",
    "tournament_prize", "commission",
)  # fmt: skip
_NEW_TYPES = (*_OLD_TYPES[:-1], "tournament_fee", "commission")
#: SQLite batch mode reflects the table; following its foreign keys would reflect ``users``,
#: whose expression index SQLAlchemy cannot reflect (a warning, an error under pytest).
_REFLECT = {"resolve_fks": False}
_OLD_TRIGGERS = ("random", "must_drop", "manual")
_NEW_TRIGGERS = ("random", "must_drop", "drop_time", "manual", "provider")


def _in(column, values):
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade():
    with op.batch_alter_table("jackpot_pools", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.add_column(
            sa.Column("carry_amount", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("provider_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("drop_window_seconds", sa.Integer(), nullable=True))
        for name in ("cycle_started_at", "drop_deadline", "drop_at"):
            batch_op.add_column(
                sa.Column(name, app.core.base.UTCDateTime(timezone=True), nullable=True)
            )
        batch_op.add_column(sa.Column("drop_at_salt", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("drop_at_commitment", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_jackpot_pools_provider_id_game_providers"),
            "game_providers",
            ["provider_id"],
            ["id"],
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_jackpot_pools_carry_non_negative"), "carry_amount >= 0"
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_jackpot_pools_drop_window_positive"),
            "drop_window_seconds IS NULL OR drop_window_seconds > 0",
        )
    with op.batch_alter_table("jackpot_pools", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.alter_column("carry_amount", server_default=None)

    with op.batch_alter_table(
        "jackpot_contributions", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(sa.Column("reversal_of_id", sa.BigInteger(), nullable=True))
        batch_op.drop_constraint(
            batch_op.f("ck_jackpot_contributions_amount_positive"), type_="check"
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_jackpot_contributions_amount_non_zero"), "amount <> 0"
        )

    with op.batch_alter_table("jackpot_wins", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.add_column(sa.Column("game_round_id", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_jackpot_wins_game_round_id_game_rounds"),
            "game_rounds",
            ["game_round_id"],
            ["id"],
        )
        batch_op.drop_constraint(batch_op.f("ck_jackpot_wins_trigger"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_jackpot_wins_trigger"), _in("trigger", _NEW_TRIGGERS)
        )

    with op.batch_alter_table("tournaments", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.add_column(
            sa.Column("entry_fee", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("bonus_promotion_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("cancelled_reason", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tournaments_bonus_promotion_id_promotions"),
            "promotions",
            ["bonus_promotion_id"],
            ["id"],
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_tournaments_entry_fee_non_negative"), "entry_fee >= 0"
        )
    with op.batch_alter_table("tournaments", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.alter_column("entry_fee", server_default=None)

    with op.batch_alter_table(
        "tournament_participants", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(sa.Column("prize_type", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("prize_status", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("bonus_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("fee_paid", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("fee_transaction_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("fee_refund_transaction_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table(
        "tournament_participants", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.alter_column("fee_paid", server_default=None)

    with op.batch_alter_table(
        "ledger_transactions", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_ledger_transactions_type"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_ledger_transactions_type"), _in("type", _NEW_TYPES)
        )


def downgrade():
    with op.batch_alter_table(
        "ledger_transactions", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_ledger_transactions_type"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_ledger_transactions_type"), _in("type", _OLD_TYPES)
        )
    with op.batch_alter_table(
        "tournament_participants", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        for name in (
            "fee_refund_transaction_id", "fee_transaction_id", "fee_paid", "bonus_id",
            "prize_status", "prize_type",
        ):  # fmt: skip
            batch_op.drop_column(name)
    with op.batch_alter_table("tournaments", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_tournaments_entry_fee_non_negative"), type_="check")
        batch_op.drop_constraint("fk_tournaments_bonus_promotion_id_promotions", type_="foreignkey")
        for name in ("cancelled_reason", "bonus_promotion_id", "entry_fee"):
            batch_op.drop_column(name)
    with op.batch_alter_table("jackpot_wins", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jackpot_wins_trigger"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_jackpot_wins_trigger"), _in("trigger", _OLD_TRIGGERS)
        )
        batch_op.drop_constraint(
            batch_op.f("fk_jackpot_wins_game_round_id_game_rounds"), type_="foreignkey"
        )
        batch_op.drop_column("game_round_id")
    with op.batch_alter_table(
        "jackpot_contributions", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("ck_jackpot_contributions_amount_non_zero"), type_="check"
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_jackpot_contributions_amount_positive"), "amount > 0"
        )
        batch_op.drop_column("reversal_of_id")
    with op.batch_alter_table("jackpot_pools", schema=None, reflect_kwargs=_REFLECT) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jackpot_pools_drop_window_positive"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_jackpot_pools_carry_non_negative"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_jackpot_pools_provider_id_game_providers"), type_="foreignkey"
        )
        for name in (
            "drop_at_commitment", "drop_at_salt", "drop_at", "drop_deadline", "cycle_started_at",
            "drop_window_seconds", "provider_id", "carry_amount",
        ):  # fmt: skip
            batch_op.drop_column(name)
