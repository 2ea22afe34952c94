"""promotions target a CRM segment

Revision ID: 0008
Revises: 0005
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN on SQLite (a batch rebuild would lose the voucher expression index);
    # the foreign key is declared inline there, as its own constraint elsewhere.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE promotions ADD COLUMN segment_id BIGINT REFERENCES crm_segments (id)"
        )
    else:
        op.add_column("promotions", sa.Column("segment_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            op.f("fk_promotions_segment_id_crm_segments"),
            "promotions",
            "crm_segments",
            ["segment_id"],
            ["id"],
        )


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        # A column with REFERENCES cannot be dropped natively: rebuild the table, then put back
        # the expression index the rebuild cannot copy (reflection skips it with a warning).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
            with op.batch_alter_table(
                "promotions", reflect_kwargs={"resolve_fks": False}
            ) as batch_op:
                batch_op.drop_column("segment_id")
        op.execute("DROP INDEX IF EXISTS uq_promotions_voucher_code")
        op.create_index(
            "uq_promotions_voucher_code",
            "promotions",
            [sa.literal_column("lower(voucher_code)")],
            unique=True,
            sqlite_where=sa.text("voucher_code IS NOT NULL"),
        )
        return
    op.drop_constraint(
        op.f("fk_promotions_segment_id_crm_segments"), "promotions", type_="foreignkey"
    )
    op.drop_column("promotions", "segment_id")
