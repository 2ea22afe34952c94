"""keyed audit chain (audit_log.key_id), signed ledger transactions (mac), and the ledger's
append-only triggers (0001 created the tables without them; create_all() always had them)

Revision ID: 0016
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_REFLECT = {"resolve_fks": False}
_LEDGER = ("ledger_transactions", "ledger_entries")


def upgrade():
    with op.batch_alter_table("audit_log", reflect_kwargs=_REFLECT) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    with op.batch_alter_table("ledger_transactions", reflect_kwargs=_REFLECT) as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(length=80), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        from app.wallet.models import LEDGER_APPEND_ONLY_SQL

        op.execute(LEDGER_APPEND_ONLY_SQL)
        for table in _LEDGER:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in _LEDGER:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    with op.batch_alter_table("ledger_transactions", reflect_kwargs=_REFLECT) as batch_op:
        batch_op.drop_column("mac")
    with op.batch_alter_table("audit_log", reflect_kwargs=_REFLECT) as batch_op:
        batch_op.drop_column("key_id")
