"""roles as data, audit log append-only guard

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    from app.core.models import AUDIT_APPEND_ONLY_SQL
    from app.identity.access import ROLES

    roles = sa.table(
        "roles",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("permissions", sa.JSON),
    )
    op.bulk_insert(
        roles,
        [
            {"id": rid, "name": name, "description": desc, "permissions": perms}
            for rid, (name, desc, perms) in ROLES.items()
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_APPEND_ONLY_SQL)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.execute("DELETE FROM roles")
