"""sign-in through outside identities: identity_links, external_auth_flows

Revision ID: 0030
Revises: 0029
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def _id():
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade():
    op.create_table(
        "identity_links",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("display", sa.String(length=255), nullable=True),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_identity_links_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_links")),
        sa.UniqueConstraint(
            "provider", "subject", name=op.f("uq_identity_links_provider_subject")
        ),
        sa.UniqueConstraint("user_id", "provider", name=op.f("uq_identity_links_user_provider")),
    )
    op.create_table(
        "external_auth_flows",
        _id(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("nonce", sa.String(length=128), nullable=True),
        sa.Column("code_verifier", sa.String(length=128), nullable=True),
        sa.Column("return_to", sa.String(length=500), nullable=True),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('oidc_state', 'handoff')", name=op.f("ck_external_auth_flows_kind")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_external_auth_flows_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_auth_flows")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_external_auth_flows_secret_hash")),
    )


def downgrade():
    op.drop_table("external_auth_flows")
    op.drop_table("identity_links")
