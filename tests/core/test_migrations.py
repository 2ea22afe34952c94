"""Migrations build exactly the schema the models declare, on PostgreSQL and SQLite."""

from __future__ import annotations

import os
import re
import tempfile
import warnings

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from app import create_app
from app.core.extensions import db
from tests.conftest import _worker_suffix

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "migrations")


def _upgrade_and_diff(url: str) -> list:
    app = create_app({"ENV": "testing", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            with warnings.catch_warnings():
                # SQLite cannot reflect expression indexes (lower(email)); nothing to compare.
                warnings.simplefilter("ignore", sa.exc.SAWarning)
                warnings.filterwarnings("ignore", "autogenerate skipping", UserWarning)
                diff = compare_metadata(ctx, db.metadata)
            diff += _check_differences(conn)
            roles = conn.execute(sa.text("SELECT count(*) FROM roles")).scalar()
        db.engine.dispose()
    assert roles == 5
    return diff


def _check_differences(conn) -> list:
    """Alembic does not compare CHECK constraints: compare names and quoted literals (the
    ``IN (...)`` lists that grow with new types) of every model CHECK with the database's."""
    inspector = sa.inspect(conn)
    out = []
    for table in db.metadata.sorted_tables:
        live = {c["name"]: c["sqltext"] for c in inspector.get_check_constraints(table.name)}
        for check in table.constraints:
            if not isinstance(check, sa.CheckConstraint):
                continue
            name = str(check.name)
            if name not in live:
                out.append(("missing check", table.name, name))
                continue
            want = set(re.findall(r"'([^']*)'", str(check.sqltext)))
            have = set(re.findall(r"'([^']*)'", live[name]))
            if want != have:
                out.append(("check differs", name, sorted(want ^ have)))
    return out


def test_migrations_match_models_on_sqlite():
    path = os.path.join(tempfile.mkdtemp(), "m.sqlite3")
    assert _upgrade_and_diff(f"sqlite:///{path}") == []


def test_migrations_match_models_on_postgres(requires_postgres, database_url):
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    name = f"jackpotx_migrations_check_{_worker_suffix()}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        assert _upgrade_and_diff(url) == []
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
