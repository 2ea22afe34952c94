"""free spins grants, welcome-bonus identity checks, marketing consent column

Revision ID: 0005
Revises: 0004
"""

import json
import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import app.core.base  # custom column types (UTCDateTime)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OLD_TYPES = ("deposit_match", "reload", "no_deposit", "cashback")
_NEW_TYPES = (*_OLD_TYPES, "free_spins")
#: SQLite batch mode: don't follow foreign keys into ``users`` (its expression index cannot
#: be reflected).
_REFLECT = {"resolve_fks": False}


def _types_check(types):
    return "type IN (" + ", ".join(f"'{t}'" for t in types) + ")"


@contextmanager
def _rebuilding_promotions():
    """SQLite batch rebuild of ``promotions``: reflection skips (with a warning) the expression
    index, which ``_restore_voucher_index`` puts back afterwards."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        yield


def _restore_voucher_index():
    """A SQLite rebuild of ``promotions`` cannot copy its expression index."""
    op.execute("DROP INDEX IF EXISTS uq_promotions_voucher_code")
    op.create_index(
        "uq_promotions_voucher_code",
        "promotions",
        [sa.literal_column("lower(voucher_code)")],
        unique=True,
        sqlite_where=sa.text("voucher_code IS NOT NULL"),
    )


def _move_consent_out_of_preferences():
    """``users.preferences.marketing_consent`` becomes the column (and leaves preferences).

    When the opt-in was given is not known: ``marketing_consent_at`` takes the account's last
    update, the latest moment the flag can have been set."""
    users = sa.table(
        "users",
        sa.column("id", sa.BigInteger),
        sa.column("preferences", sa.JSON),
        sa.column("updated_at", app.core.base.UTCDateTime(timezone=True)),
        sa.column("marketing_consent", sa.Boolean),
        sa.column("marketing_consent_at", app.core.base.UTCDateTime(timezone=True)),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(users.c.id, users.c.preferences, users.c.updated_at).where(
            users.c.preferences.is_not(None)
        )
    ).all()
    for user_id, prefs, updated_at in rows:
        if isinstance(prefs, str):
            prefs = json.loads(prefs)
        if not isinstance(prefs, dict) or "marketing_consent" not in prefs:
            continue
        consent = prefs.pop("marketing_consent") is True
        conn.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(
                preferences=prefs,
                marketing_consent=consent,
                marketing_consent_at=updated_at if consent else None,
            )
        )


def upgrade():
    op.create_table(
        "originals_free_rounds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grant_ref", sa.String(length=40), nullable=False),
        sa.Column("player_ref", sa.String(length=100), nullable=False),
        sa.Column("game_code", sa.String(length=50), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("stake", sa.BigInteger(), nullable=False),
        sa.Column("spins_total", sa.Integer(), nullable=False),
        sa.Column("spins_played", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "spins_played >= 0 AND spins_played <= spins_total",
            name=op.f("ck_originals_free_rounds_spins"),
        ),
        sa.CheckConstraint("stake > 0", name=op.f("ck_originals_free_rounds_stake_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_originals_free_rounds")),
        sa.UniqueConstraint("grant_ref", name=op.f("uq_originals_free_rounds_grant_ref")),
    )
    op.create_index(
        "ix_originals_free_rounds_player",
        "originals_free_rounds",
        ["player_ref", "game_code", "status"],
        unique=False,
    )

    op.create_table(
        "free_spin_grants",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("bonus_id", sa.BigInteger(), nullable=False),
        sa.Column("promotion_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), nullable=False),
        sa.Column("game_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("spin_value_minor", sa.BigInteger(), nullable=False),
        sa.Column("spins_total", sa.Integer(), nullable=False),
        sa.Column("spins_used", sa.Integer(), nullable=False),
        sa.Column("won_minor", sa.BigInteger(), nullable=False),
        sa.Column("wagering_multiplier", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=100), nullable=True),
        sa.Column("expires_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'used', 'expired', 'forfeited')",
            name=op.f("ck_free_spin_grants_status"),
        ),
        sa.CheckConstraint(
            "spin_value_minor > 0", name=op.f("ck_free_spin_grants_spin_value_positive")
        ),
        sa.CheckConstraint(
            "spins_total > 0", name=op.f("ck_free_spin_grants_spins_total_positive")
        ),
        sa.CheckConstraint(
            "spins_used >= 0 AND spins_used <= spins_total",
            name=op.f("ck_free_spin_grants_spins_used_in_range"),
        ),
        sa.CheckConstraint(
            "wagering_multiplier >= 0", name=op.f("ck_free_spin_grants_wagering_multiplier")
        ),
        sa.CheckConstraint("won_minor >= 0", name=op.f("ck_free_spin_grants_won_non_negative")),
        sa.ForeignKeyConstraint(
            ["bonus_id"],
            ["player_bonuses.id"],
            name=op.f("fk_free_spin_grants_bonus_id_player_bonuses"),
        ),
        sa.ForeignKeyConstraint(
            ["game_id"], ["games.id"], name=op.f("fk_free_spin_grants_game_id_games")
        ),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
            name=op.f("fk_free_spin_grants_promotion_id_promotions"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["game_providers.id"],
            name=op.f("fk_free_spin_grants_provider_id_game_providers"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_free_spin_grants_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_free_spin_grants")),
        sa.UniqueConstraint("bonus_id", name=op.f("uq_free_spin_grants_bonus_id")),
        sa.UniqueConstraint("public_id", name=op.f("uq_free_spin_grants_public_id")),
    )
    op.create_index(
        "ix_free_spin_grants_status_expires",
        "free_spin_grants",
        ["status", "expires_at"],
        unique=False,
    )
    op.create_index(
        "ix_free_spin_grants_user_status", "free_spin_grants", ["user_id", "status"], unique=False
    )

    op.create_table(
        "free_spin_rounds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grant_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), nullable=False),
        sa.Column("external_round_id", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("bet_transaction_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("win_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("settled_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('played', 'settled', 'reversed')", name=op.f("ck_free_spin_rounds_status")
        ),
        sa.CheckConstraint("win_minor >= 0", name=op.f("ck_free_spin_rounds_win_non_negative")),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["free_spin_grants.id"],
            name=op.f("fk_free_spin_rounds_grant_id_free_spin_grants"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["game_providers.id"],
            name=op.f("fk_free_spin_rounds_provider_id_game_providers"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_free_spin_rounds_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_free_spin_rounds")),
    )
    op.create_index(
        "ix_free_spin_rounds_grant_status", "free_spin_rounds", ["grant_id", "status"], unique=False
    )
    op.create_index(
        "uq_free_spin_rounds_round",
        "free_spin_rounds",
        ["provider_id", "external_round_id"],
        unique=True,
    )

    # Plain ADD COLUMN (no batch mode): SQLite supports it, and a batch rebuild of ``users``
    # would have to reflect its expression indexes, which SQLite cannot.
    op.add_column(
        "users",
        sa.Column("marketing_consent", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "users",
        sa.Column(
            "marketing_consent_at", app.core.base.UTCDateTime(timezone=True), nullable=True
        ),
    )
    op.add_column("users", sa.Column("registration_ip", sa.String(length=64), nullable=True))
    op.add_column("users", sa.Column("registration_device", sa.String(length=128), nullable=True))
    _move_consent_out_of_preferences()
    op.add_column(
        "originals_rounds", sa.Column("free_round_ref", sa.String(length=40), nullable=True)
    )
    op.add_column(
        "promotions",
        sa.Column("free_spins_count", sa.Integer(), server_default="0", nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its REFERENCES clause, but no constraint afterwards.
        op.execute(
            "ALTER TABLE promotions ADD COLUMN free_spins_game_id BIGINT REFERENCES games (id)"
        )
    else:
        op.add_column("promotions", sa.Column("free_spins_game_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            op.f("fk_promotions_free_spins_game_id_games"),
            "promotions",
            "games",
            ["free_spins_game_id"],
            ["id"],
        )
    op.add_column(
        "promotions",
        sa.Column("free_spin_value_minor", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "promotions",
        sa.Column("free_spins_valid_days", sa.Integer(), server_default="7", nullable=False),
    )
    # The promotion type list gains ``free_spins``, and the new columns get their CHECKs.
    # SQLite changes a table's constraints only by rebuilding it.
    checks = (
        ("ck_promotions_fs_count", "free_spins_count >= 0 AND free_spins_count <= 1000"),
        ("ck_promotions_fs_value_non_negative", "free_spin_value_minor >= 0"),
        ("ck_promotions_fs_valid_days", "free_spins_valid_days > 0"),
    )
    if op.get_bind().dialect.name == "sqlite":
        with _rebuilding_promotions(), op.batch_alter_table(
            "promotions", recreate="always", reflect_kwargs=_REFLECT
        ) as batch_op:
            batch_op.drop_constraint(batch_op.f("ck_promotions_type"), type_="check")
            batch_op.create_check_constraint(
                batch_op.f("ck_promotions_type"), _types_check(_NEW_TYPES)
            )
            for name, condition in checks:
                batch_op.create_check_constraint(batch_op.f(name), condition)
        _restore_voucher_index()
    else:
        op.drop_constraint(op.f("ck_promotions_type"), "promotions", type_="check")
        op.create_check_constraint(
            op.f("ck_promotions_type"), "promotions", _types_check(_NEW_TYPES)
        )
        for name, condition in checks:
            op.create_check_constraint(op.f(name), "promotions", condition)
    op.add_column(
        "payment_transactions",
        sa.Column("instrument_fingerprint", sa.String(length=128), nullable=True),
    )
    op.create_index(
        op.f("ix_payment_transactions_instrument_fingerprint"),
        "payment_transactions",
        ["instrument_fingerprint"],
        unique=False,
    )


def downgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_table("free_spin_rounds")
    op.drop_table("free_spin_grants")
    op.drop_table("originals_free_rounds")
    op.drop_index(
        op.f("ix_payment_transactions_instrument_fingerprint"), table_name="payment_transactions"
    )
    for table, columns in (
        ("payment_transactions", ("instrument_fingerprint",)),
        ("originals_rounds", ("free_round_ref",)),
        ("users", ("registration_device", "registration_ip", "marketing_consent_at",
                   "marketing_consent")),
    ):  # fmt: skip
        for column in columns:
            if sqlite:
                # Native DROP COLUMN (SQLite 3.35+): a batch rebuild would lose the table's
                # expression indexes (lower(username) ...), which SQLite cannot reflect.
                op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
            else:
                op.drop_column(table, column)
    fs_columns = ("free_spins_valid_days", "free_spin_value_minor", "free_spins_game_id",
                  "free_spins_count")  # fmt: skip
    if sqlite:
        # A column with REFERENCES cannot be dropped natively: rebuild, then restore the
        # expression index the rebuild could not copy.
        with _rebuilding_promotions(), op.batch_alter_table(
            "promotions", schema=None, reflect_kwargs=_REFLECT
        ) as batch_op:
            for name in ("ck_promotions_fs_count", "ck_promotions_fs_value_non_negative",
                         "ck_promotions_fs_valid_days", "ck_promotions_type"):  # fmt: skip
                batch_op.drop_constraint(batch_op.f(name), type_="check")
            batch_op.create_check_constraint(
                batch_op.f("ck_promotions_type"), _types_check(_OLD_TYPES)
            )
            for column in fs_columns:
                batch_op.drop_column(column)
        _restore_voucher_index()
    else:
        # Fails while free-spins promotions exist: remove them before downgrading.
        op.drop_constraint(op.f("ck_promotions_type"), "promotions", type_="check")
        op.create_check_constraint(
            op.f("ck_promotions_type"), "promotions", _types_check(_OLD_TYPES)
        )
        op.drop_constraint(
            op.f("fk_promotions_free_spins_game_id_games"), "promotions", type_="foreignkey"
        )
        for column in fs_columns:
            op.drop_column("promotions", column)
