"""e-mail verification (users.email_verified_at, email_verifications); GDPR erasure requests

Revision ID: 0020
Revises: 0019
"""

import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0020"
down_revision = "0019"
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


def _id():
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade():
    with _quiet_reflection(), op.batch_alter_table(
        "users", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.add_column(
            sa.Column("email_verified_at", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("erased_at", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "email_verifications",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_verifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_verifications")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_verifications_token_hash")),
    )
    op.create_index(
        "ix_email_verifications_user_created",
        "email_verifications",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "erasure_requests",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("requested_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.BigInteger(), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'rejected')",
            name=op.f("ck_erasure_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_erasure_requests_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["users.id"], name=op.f("fk_erasure_requests_decided_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
    )
    op.create_index(
        "ix_erasure_requests_user_status", "erasure_requests", ["user_id", "status"], unique=False
    )


def downgrade():
    op.drop_index("ix_erasure_requests_user_status", table_name="erasure_requests")
    op.drop_table("erasure_requests")
    op.drop_index("ix_email_verifications_user_created", table_name="email_verifications")
    op.drop_table("email_verifications")
    with _quiet_reflection(), op.batch_alter_table(
        "users", schema=None, reflect_kwargs=_REFLECT
    ) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("email_verified_at")
