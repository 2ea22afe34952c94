"""free spins grants, welcome-bonus identity checks, marketing consent column

Revision ID: 0005
Revises: 0002
"""

import json

import sqlalchemy as sa
from alembic import op

import app.models.base  # noqa: F401 - custom column types (UTCDateTime)

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def _move_consent_out_of_preferences():
    """``users.preferences.marketing_consent`` becomes the column (and leaves preferences).

    When the opt-in was given is not known: ``marketing_consent_at`` takes the account's last
    update, the latest moment the flag can have been set."""
    users = sa.table(
        "users",
        sa.column("id", sa.BigInteger),
        sa.column("preferences", sa.JSON),
        sa.column("updated_at", app.models.base.UTCDateTime(timezone=True)),
        sa.column("marketing_consent", sa.Boolean),
        sa.column("marketing_consent_at", app.models.base.UTCDateTime(timezone=True)),
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
    # Plain ADD COLUMN (no batch mode): SQLite supports it, and a batch rebuild of ``users``
    # would have to reflect its expression indexes, which SQLite cannot.
    op.add_column(
        "users",
        sa.Column("marketing_consent", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "users",
        sa.Column(
            "marketing_consent_at", app.models.base.UTCDateTime(timezone=True), nullable=True
        ),
    )
    op.add_column("users", sa.Column("registration_ip", sa.String(length=64), nullable=True))
    op.add_column("users", sa.Column("registration_device", sa.String(length=128), nullable=True))
    _move_consent_out_of_preferences()
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
    op.drop_index(
        op.f("ix_payment_transactions_instrument_fingerprint"), table_name="payment_transactions"
    )
    with op.batch_alter_table("payment_transactions", schema=None) as batch_op:
        batch_op.drop_column("instrument_fingerprint")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("registration_device")
        batch_op.drop_column("registration_ip")
        batch_op.drop_column("marketing_consent_at")
        batch_op.drop_column("marketing_consent")
