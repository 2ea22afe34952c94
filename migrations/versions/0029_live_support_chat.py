"""live support chat: a ticket's channel, read marks per side, messages hidden by moderation

Revision ID: 0029
Revises: 0020
"""

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0029"
down_revision = "0020"
branch_labels = None
depends_on = None

_REFLECT = {"resolve_fks": False}
CHANNEL = "channel IN ('ticket', 'chat')"


@contextmanager
def _quiet_reflection():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        yield


def upgrade():
    with _quiet_reflection(), op.batch_alter_table(
        "support_tickets", reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=8), server_default="ticket", nullable=False)
        )
        batch_op.add_column(sa.Column("player_read_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("staff_read_id", sa.BigInteger(), nullable=True))
        batch_op.create_check_constraint(op.f("ck_support_tickets_channel"), sa.text(CHANNEL))
    with _quiet_reflection(), op.batch_alter_table(
        "support_messages", reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(
            sa.Column("hidden_at", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("hidden_by_id", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_support_messages_hidden_by_id_users"), "users", ["hidden_by_id"], ["id"]
        )
        batch_op.create_index(
            "ix_support_messages_author_created", ["author_id", "created_at"], unique=False
        )


def downgrade():
    with _quiet_reflection(), op.batch_alter_table(
        "support_messages", reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_index("ix_support_messages_author_created")
        batch_op.drop_constraint(
            op.f("fk_support_messages_hidden_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("hidden_by_id")
        batch_op.drop_column("hidden_at")
    with _quiet_reflection(), op.batch_alter_table(
        "support_tickets", reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_constraint(op.f("ck_support_tickets_channel"), type_="check")
        batch_op.drop_column("staff_read_id")
        batch_op.drop_column("player_read_id")
        batch_op.drop_column("channel")
