"""staff TOTP recovery codes (staff_recovery_codes)

Revision ID: 0021
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0021"
down_revision = "0023"
branch_labels = None
depends_on = None


def _id():
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade():
    op.create_table(
        "staff_recovery_codes",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_staff_recovery_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_staff_recovery_codes_code_hash")),
    )
    op.create_index(
        "ix_staff_recovery_codes_user", "staff_recovery_codes", ["user_id"], unique=False
    )


def downgrade():
    op.drop_index("ix_staff_recovery_codes_user", table_name="staff_recovery_codes")
    op.drop_table("staff_recovery_codes")
