"""Least-privilege PostgreSQL roles: an owner that migrates, an app role that cannot rewrite
history (docs/security.md, "Database roles").

Invariants (``tests/core/test_db_roles.py`` connects as the app role and proves them):
* the **owner** role owns every table, sequence and function of schema ``public``: only it
  (or a superuser) can ``ALTER``, ``DROP``, ``TRUNCATE`` or disable a trigger;
* the **app** role is no superuser and no member of the owner. It may ``SELECT, INSERT,
  UPDATE, DELETE`` every table except the append-only ones (:data:`APPEND_ONLY_TABLES`),
  where it may only ``SELECT, INSERT``; no ``TRUNCATE``, ``REFERENCES`` or ``TRIGGER``
  anywhere; ``USAGE, SELECT`` on sequences (``nextval`` of its inserts); ``SELECT`` only on
  ``alembic_version``;
* grants are explicit per table, never default privileges: a table a later migration adds is
  refused to the app until :func:`apply` runs again (fail closed, never silently writable).
  Deploys run ``flask jackpotx db roles`` after every ``flask db upgrade``; it is idempotent.
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa

#: Tables the app may only append to. Every exception to "the app writes what it needs" is
#: here and in docs/security.md; the app never UPDATEs or DELETEs these rows (grep-checked,
#: and the test suite's money paths run as the app role in the roles test).
APPEND_ONLY_TABLES: tuple[str, ...] = (
    "audit_log",
    "ledger_transactions",
    "ledger_entries",
    "provider_callbacks",
    "payment_webhooks",
)

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RoleError(ValueError):
    """A role name or the database cannot take these roles."""


def _ident(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise RoleError(f"role name {name!r}: use lower-case letters, digits and _ (max 63)")
    return f'"{name}"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def statements(
    owner: str,
    app: str,
    *,
    owner_password: str | None = None,
    app_password: str | None = None,
) -> list[str]:
    """The SQL that creates (if missing) and grants both roles in the current database; run
    by a superuser (or a role with CREATEROLE owning the database). Idempotent."""
    if owner == app:
        raise RoleError("the owner and the app role must differ")
    o, a = _ident(owner), _ident(app)
    sql = []
    for role, quoted in ((owner, o), (app, a)):
        sql.append(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"{_literal(role)}) THEN CREATE ROLE {quoted} LOGIN; END IF; END $$"
        )
    for quoted, password in ((o, owner_password), (a, app_password)):
        if password:
            sql.append(f"ALTER ROLE {quoted} PASSWORD {_literal(password)}")
    sql += [
        f"ALTER ROLE {o} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
        f"ALTER ROLE {a} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
        # Never able to become the owner (SET ROLE) or to inherit its rights.
        f"REVOKE {o} FROM {a}",
        # Before PostgreSQL 15 every role may CREATE in schema public.
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE, CREATE ON SCHEMA public TO {o}",
        f"REVOKE CREATE ON SCHEMA public FROM {a}",
        f"GRANT USAGE ON SCHEMA public TO {a}",
        # Hand every object of the schema to the owner (tables carry their sequences along).
        f"""DO $$ DECLARE r record; BEGIN
            FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
                  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
                  AND pg_get_userbyid(c.relowner) <> {_literal(owner)}
            LOOP EXECUTE format('ALTER TABLE public.%I OWNER TO {o}', r.relname); END LOOP;
            FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind = 'S'
                  AND pg_get_userbyid(c.relowner) <> {_literal(owner)}
                  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid
                                  AND d.deptype IN ('a', 'i'))
            LOOP EXECUTE format('ALTER SEQUENCE public.%I OWNER TO {o}', r.relname); END LOOP;
            FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> {_literal(owner)}
                  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
            LOOP EXECUTE format('ALTER FUNCTION %s OWNER TO {o}', r.sig); END LOOP;
            FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
                  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = t.oid AND e.deptype = 'e')
                  AND pg_get_userbyid(t.typowner) <> {_literal(owner)}
            LOOP EXECUTE format('ALTER TYPE public.%I OWNER TO {o}', r.typname); END LOOP;
        END $$""",  # noqa: S608 - names checked by _ident, quoted by _literal
        # The app: what it needs, nothing it could rewrite history with.
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, {a}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, {a}",
        # Our functions (the append-only triggers'); an extension's keep their grants.
        f"""DO $$ DECLARE r record; BEGIN
            FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
                  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
            LOOP EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, {a}', r.sig); END LOOP;
        END $$""",  # noqa: S608 - the role name is checked by _ident
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {a}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {a}",
        f"""DO $$ DECLARE t text; BEGIN
            FOREACH t IN ARRAY ARRAY[{", ".join(_literal(t) for t in APPEND_ONLY_TABLES)}] LOOP
                IF to_regclass('public.' || t) IS NOT NULL THEN
                    EXECUTE format('REVOKE UPDATE, DELETE ON public.%I FROM {a}', t);
                END IF;
            END LOOP;
            IF to_regclass('public.alembic_version') IS NOT NULL THEN
                EXECUTE 'REVOKE INSERT, UPDATE, DELETE ON public.alembic_version FROM {a}';
            END IF;
        END $$""",
    ]
    return sql


def apply(
    conn: sa.Connection,
    owner: str,
    app: str,
    *,
    owner_password: str | None = None,
    app_password: str | None = None,
) -> None:
    """Run :func:`statements` on ``conn`` (PostgreSQL only), in one transaction."""
    if conn.dialect.name != "postgresql":
        raise RoleError("database roles are a PostgreSQL feature (SQLite has none)")
    for stmt in statements(owner, app, owner_password=owner_password, app_password=app_password):
        conn.exec_driver_sql(stmt.replace("%", "%%"))


def drop(conn: sa.Connection, *roles: str) -> None:
    """Remove roles created by :func:`apply` from this database's point of view and the
    cluster (tests; a deployment keeps its roles): ownership back to the caller first."""
    for role in roles:
        quoted = _ident(role)
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
        ).scalar()
        if exists:
            conn.exec_driver_sql(f"REASSIGN OWNED BY {quoted} TO CURRENT_USER")
            conn.exec_driver_sql(f"DROP OWNED BY {quoted}")
            conn.exec_driver_sql(f"DROP ROLE {quoted}")


def login_warnings(conn: sa.Connection) -> list[str]:
    """What the current login can do that the app role must not (empty: least privilege).

    A superuser, or the owner of schema ``public`` or of one of its tables (or a member of
    such a role), can rewrite the ledger and disable the append-only triggers. One catalogue
    query; PostgreSQL only (SQLite has no roles: empty).
    """
    if conn.dialect.name != "postgresql":
        return []
    row = conn.execute(
        sa.text(
            "SELECT r.rolsuper,"
            " pg_has_role(current_user, n.nspowner, 'USAGE'),"
            " EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = n.oid"
            "         AND c.relkind IN ('r', 'p')"
            "         AND pg_has_role(current_user, c.relowner, 'USAGE'))"
            " FROM pg_roles r, pg_namespace n"
            " WHERE r.rolname = current_user AND n.nspname = 'public'"
        )
    ).one_or_none()
    if row is None:
        return []
    superuser, schema_owner, table_owner = row
    user = conn.execute(sa.text("SELECT current_user")).scalar()
    if superuser:
        return [f"DATABASE_URL logs in as {user}, a PostgreSQL superuser"]
    if schema_owner or table_owner:
        return [f"DATABASE_URL logs in as {user}, which owns the schema or its tables"]
    return []


def warn_if_privileged(engine: sa.Engine, log: logging.Logger | None = None) -> list[str]:
    """Log a WARNING per :func:`login_warnings` (once per process at start: gunicorn's
    ``post_worker_init`` in production; never on a request). A database that does not answer
    logs that the check could not run and never stops the start."""
    log = log or logging.getLogger("jackpotx.dbroles")
    try:
        with engine.connect() as conn:
            warnings = login_warnings(conn)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not check the database login's privileges: %s", type(exc).__name__)
        return []
    for warning in warnings:
        log.warning(
            "%s: it can rewrite the ledger and the audit trail; run the app as the app role "
            "(docs/security.md, 'Database roles')",
            warning,
        )
    return warnings
