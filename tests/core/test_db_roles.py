"""Least-privilege roles: migrations run as the owner, the app role cannot rewrite history
(issue 21). PostgreSQL only: a database of its own, built by the migrations as the owner."""

from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.core import dbroles
from app.core.db import atomic
from app.core.extensions import db
from app.identity.access import ensure_roles
from tests.conftest import Factory
from tests.moneykit import open_table

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "migrations")
SUFFIX = re.sub(r"[^a-z0-9_]", "_", os.environ.get("JX_TEST_DB_SUFFIX", "main").lower())
OWNER, APP_ROLE = f"jx_owner_{SUFFIX}"[:63], f"jx_app_{SUFFIX}"[:63]


@pytest.fixture
def roles_db(requires_postgres, database_url):
    """A fresh database: roles granted, schema migrated as the owner, grants applied again."""
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    name = f"jackpotx_roles_{SUFFIX}"

    def drop_all() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            dbroles.drop(conn, APP_ROLE, OWNER)

    drop_all()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    superuser_url = admin.url.set(database=name)
    urls = {
        "superuser": superuser_url.render_as_string(hide_password=False),
        "owner": superuser_url.set(username=OWNER, password=None).render_as_string(False),
        "app": superuser_url.set(username=APP_ROLE, password=None).render_as_string(False),
    }
    try:
        yield urls
    finally:
        drop_all()
        admin.dispose()


def _refused(conn: sa.Connection, sql: str, match: str) -> None:
    if conn.in_transaction():
        conn.rollback()
    tx = conn.begin()
    try:
        with pytest.raises(sa.exc.ProgrammingError, match=match):
            conn.execute(sa.text(sql))
    finally:
        tx.rollback()


def test_app_role_plays_but_cannot_rewrite_history(roles_db, committed_db, tmp_path):
    su = sa.create_engine(roles_db["superuser"], poolclass=sa.pool.NullPool)
    with su.begin() as conn:
        dbroles.apply(conn, OWNER, APP_ROLE)  # roles first: the schema is empty
    app = create_app(
        {
            "ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": roles_db["app"],
            "MIGRATION_DATABASE_URL": roles_db["owner"],
            "SERVER_NAME": "localhost",
            "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        }
    )
    with app.app_context():
        upgrade(directory=MIGRATIONS)  # as the owner: the app role could not
        result = app.test_cli_runner().invoke(
            args=[
                *("jackpotx", "db", "roles", "--owner", OWNER, "--app", APP_ROLE),
                *("--url", roles_db["superuser"]),
            ]
        )
        assert result.exit_code == 0, result.output
        with su.connect() as conn:
            owners = set(
                conn.execute(
                    sa.text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname='public'")
                ).scalars()
            )
        assert owners == {OWNER}

        # Normal play, every write as the app role: a player, a deposit, a bet callback.
        with atomic():
            ensure_roles()
        table = open_table(app.test_client(), Factory(), cash=50_00)
        answer = table.bet("tx-role-1", "2.50")
        assert answer["status"] == "ok", answer
        assert table.balances()[0] == 47_50
        # The app role checkpoints and verifies both chains (it reads; it never rewrites).
        cli = app.test_cli_runner()
        for args in (("audit", "checkpoint"), ("audit", "verify"), ("wallets", "verify")):
            out = cli.invoke(args=["jackpotx", *args])
            assert out.exit_code == 0, (args, out.output)

        # The start-time check (gunicorn's post_worker_init in production) is quiet for the
        # app role and warns for the owner and the superuser.
        owner_engine = sa.create_engine(roles_db["owner"], poolclass=sa.pool.NullPool)
        app_engine = sa.create_engine(roles_db["app"], poolclass=sa.pool.NullPool)
        assert dbroles.warn_if_privileged(app_engine) == []
        assert "owns the schema" in dbroles.warn_if_privileged(owner_engine)[0]
        assert "superuser" in dbroles.warn_if_privileged(su)[0]
        owner_engine.dispose()
        with app_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar() == APP_ROLE
            assert conn.execute(sa.text("SELECT count(*) FROM ledger_entries")).scalar() >= 4
            for sql in (
                "UPDATE ledger_entries SET amount = amount + 100000",
                "DELETE FROM ledger_entries",
                "UPDATE ledger_transactions SET cash_delta = 0",
                "DELETE FROM ledger_transactions",
                "UPDATE audit_log SET reason = 'x'",
                "DELETE FROM audit_log",
                "UPDATE provider_callbacks SET verdict = 'ok'",
                "DELETE FROM provider_callbacks",
                "UPDATE payment_webhooks SET verdict = 'applied'",
                "TRUNCATE ledger_entries",
                "TRUNCATE users CASCADE",
                "UPDATE alembic_version SET version_num = '0001'",
            ):
                _refused(conn, sql, "permission denied")
            for sql in (
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete",
                "ALTER TABLE ledger_entries DISABLE TRIGGER USER",
                "ALTER TABLE ledger_transactions ADD COLUMN forged integer",
                "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
                "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS "
                "$$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql",
            ):
                _refused(conn, sql, "must be owner|permission denied")
            _refused(conn, "CREATE TABLE forged (id integer)", "permission denied for schema")
            _refused(conn, f'SET ROLE "{OWNER}"', "permission denied")
            _refused(conn, "SET session_replication_role = replica", "permission denied")
            # What the app does need stays allowed.
            conn.rollback()
            tx = conn.begin()
            conn.execute(sa.text("UPDATE wallets SET updated_at = updated_at"))
            conn.execute(sa.text("DELETE FROM provider_nonces"))
            tx.rollback()
        app_engine.dispose()
        db.session.remove()
        db.engine.dispose()
    su.dispose()


def test_print_sql_and_bad_names(runner):
    out = runner.invoke(
        args=["jackpotx", "db", "roles", "--owner", "jx_owner", "--app", "jx_app", "--print-sql"]
    )
    assert out.exit_code == 0, out.output
    assert 'REVOKE "jx_owner" FROM "jx_app"' in out.output
    assert "REVOKE UPDATE, DELETE ON public.%I" in out.output
    bad = runner.invoke(args=["jackpotx", "db", "roles", "--owner", "x; drop", "--app", "a"])
    assert bad.exit_code == 2
    same = runner.invoke(args=["jackpotx", "db", "roles", "--owner", "a", "--app", "a"])
    assert same.exit_code == 2


def test_roles_refuse_sqlite():
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn, pytest.raises(dbroles.RoleError, match="PostgreSQL"):
        dbroles.apply(conn, "o", "a")
