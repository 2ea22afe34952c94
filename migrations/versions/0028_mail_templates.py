"""mail_templates: staff-edited e-mail templates per key and language

Revision ID: 0028
Revises: 0026
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0028"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mail_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_templates")),
        sa.UniqueConstraint("key", "language", name="uq_mail_templates_key_language"),
    )


def downgrade():
    op.drop_table("mail_templates")
