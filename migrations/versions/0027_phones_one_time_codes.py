"""phone numbers (user_phones), one-time codes (one_time_codes) for SMS/e-mail OTP,
users.has_password (OTP sign-up without a password), users.sms_2fa_enabled,
notification_preferences

Revision ID: 0027
Revises: 0025
"""

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0027"
down_revision = "0025"
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


def _users():
    return op.batch_alter_table("users", schema=None, reflect_kwargs=_REFLECT)


def _id():
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _when(name, nullable=False):
    return sa.Column(name, app.core.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade():
    with _quiet_reflection(), _users() as batch_op:
        batch_op.add_column(
            sa.Column("has_password", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("sms_2fa_enabled", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "user_phones",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("is_primary", sa.Boolean(), server_default=sa.false(), nullable=False),
        _when("verified_at", nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_phones_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_phones")),
        sa.UniqueConstraint("user_id", "number", name="uq_user_phones_user_number"),
    )
    op.create_index(op.f("ix_user_phones_user_id"), "user_phones", ["user_id"], unique=False)
    op.create_index(
        "uq_user_phones_primary",
        "user_phones",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("is_primary"),
        sqlite_where=sa.text("is_primary"),
    )
    op.create_index(
        "uq_user_phones_verified_number",
        "user_phones",
        ["number"],
        unique=True,
        postgresql_where=sa.text("verified_at IS NOT NULL"),
        sqlite_where=sa.text("verified_at IS NOT NULL"),
    )
    op.create_table(
        "one_time_codes",
        _id(),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        _when("created_at"),
        _when("expires_at"),
        _when("used_at", nullable=True),
        sa.CheckConstraint(
            "purpose IN ('phone_verify', 'login_2fa', 'signup', 'signin')",
            name=op.f("ck_one_time_codes_purpose"),
        ),
        sa.CheckConstraint(
            "channel IN ('sms', 'email')", name=op.f("ck_one_time_codes_channel")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_one_time_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_one_time_codes")),
    )
    op.create_index(
        "ix_one_time_codes_destination", "one_time_codes", ["destination", "created_at"]
    )
    op.create_index("ix_one_time_codes_ip", "one_time_codes", ["ip", "created_at"])
    op.create_index(op.f("ix_one_time_codes_user_id"), "one_time_codes", ["user_id"])
    op.create_table(
        "notification_preferences",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_preferences_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_preferences")),
        sa.UniqueConstraint(
            "user_id", "category", "channel", name="uq_notification_preferences_user_key"
        ),
    )


def downgrade():
    op.drop_table("notification_preferences")
    op.drop_index(op.f("ix_one_time_codes_user_id"), table_name="one_time_codes")
    op.drop_index("ix_one_time_codes_ip", table_name="one_time_codes")
    op.drop_index("ix_one_time_codes_destination", table_name="one_time_codes")
    op.drop_table("one_time_codes")
    op.drop_index("uq_user_phones_verified_number", table_name="user_phones")
    op.drop_index("uq_user_phones_primary", table_name="user_phones")
    op.drop_index(op.f("ix_user_phones_user_id"), table_name="user_phones")
    op.drop_table("user_phones")
    with _quiet_reflection(), _users() as batch_op:
        batch_op.drop_column("sms_2fa_enabled")
        batch_op.drop_column("has_password")
