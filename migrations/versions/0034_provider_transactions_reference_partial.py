"""provider_transactions: the reference index only for rows that name a reference

Bets (half the callbacks) name no reference, so they no longer add an entry to the index,
and the lookup of a claim by its transaction id cannot pick this index (it used to, on a
small table, and the callback's prepared generic plan then kept scanning every claim of the
provider as the table grew). Every query that uses the index compares the reference with a
value, which implies the predicate. On PostgreSQL the index is rebuilt concurrently, so
callbacks keep writing while it builds.

Revision ID: 0034
Revises: 0032
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0032"
branch_labels = None
depends_on = None

NAME = "ix_provider_transactions_reference"
PARTIAL = sa.text("reference_external_id IS NOT NULL")


def _rebuild(where):
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("provider_transactions") as batch_op:
            batch_op.drop_index(NAME)
            batch_op.create_index(
                NAME, ["provider_id", "reference_external_id"], sqlite_where=where
            )
        return
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}_new")
        op.create_index(
            f"{NAME}_new",
            "provider_transactions",
            ["provider_id", "reference_external_id"],
            postgresql_where=where,
            postgresql_concurrently=True,
        )
        op.execute(f"DROP INDEX CONCURRENTLY {NAME}")
        op.execute(f"ALTER INDEX {NAME}_new RENAME TO {NAME}")


def upgrade():
    _rebuild(PARTIAL)


def downgrade():
    _rebuild(None)
