"""Test fixtures: real PostgreSQL and Redis when they answer (always in CI), else SQLite.

* The session creates its own database (``jackpotx_test_<worker>``) from scratch.
* Each test runs inside an outer transaction and sees ``db.session`` as a session that turns
  every commit into a SAVEPOINT release; the outer transaction is rolled back afterwards.
* Tests that need real commits on several connections (concurrency) use ``committed_db``,
  which truncates every table afterwards.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import freezegun
import pytest
import sqlalchemy as sa
from flask import g, has_app_context
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from sqlalchemy.orm import scoped_session, sessionmaker

from app import create_app
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import ADMIN, AGENT, MANAGER, PLAYER, SUPPORT, User

# freeze_time scans every loaded module's attributes: clickhouse-connect's options module
# resolves pandas lazily on that scan, and importing pandas under frozen time segfaults.
freezegun.configure(extend_ignore_list=["clickhouse_connect", "chdb", "pandas", "pyarrow"])

#: ``JX_TEST_EMBEDDED=1``: run on SQLite + fakeredis even where the servers answer (what
#: ``make run`` uses; CI runs the suite both ways).
EMBEDDED = os.environ.get("JX_TEST_EMBEDDED", "") == "1"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"} and not EMBEDDED
PG_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
#: One id per ``pytest`` run (xdist workers inherit their controller's): two runs on one machine
#: (two checkouts, two ``make test``) never share a database or a Redis db by default.
RUN_ID = os.environ.setdefault("JX_TEST_RUN_ID", f"p{os.getpid()}")
#: Explicit: used as given. Unset: the first free db of ``AUTO_REDIS_DBS`` (``_claim_redis_db``).
EXPLICIT_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
REDIS_URL = EXPLICIT_REDIS_URL or "redis://127.0.0.1:6379/15"
AUTO_REDIS_DBS = range(15, 8, -1)
REDIS_OWNER_KEY = "jx:test:owner"


def _postgres_admin_engine() -> sa.Engine | None:
    from app.core.config import normalize_database_url

    if EMBEDDED:
        return None
    engine = sa.create_engine(normalize_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        engine.dispose()
        return None
    return engine


def _redis_ok() -> bool:
    import redis

    if EMBEDDED:
        return False
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


def _pid_alive(owner: str) -> bool:
    try:
        os.kill(int(owner.rsplit(":", 1)[-1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _claim_redis_db() -> str:
    """``TEST_REDIS_URL`` unset: the first db of ``AUTO_REDIS_DBS`` that is empty or owned by a
    run that is gone, marked with our owner key (put back after every flush, ``_clean_redis``).
    A db with keys but no owner key belongs to a run given ``TEST_REDIS_URL``: left alone."""
    import redis

    owner = f"{RUN_ID}:{os.getpid()}"
    for number in AUTO_REDIS_DBS:
        url = f"{REDIS_URL.rsplit('/', 1)[0]}/{number}"
        conn = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            holder = conn.get(REDIS_OWNER_KEY)
            holder = holder.decode() if holder else None
            if holder is None and conn.dbsize() == 0 and conn.set(REDIS_OWNER_KEY, owner, nx=True):
                return url
            if holder is not None and (holder == owner or not _pid_alive(holder)):
                conn.set(REDIS_OWNER_KEY, owner)
                return url
        finally:
            conn.close()
    pytest.exit(
        f"no free Redis test db in {list(AUTO_REDIS_DBS)}: set TEST_REDIS_URL", returncode=3
    )


def _worker_suffix() -> str:
    # Parallel runs on one server (several checkouts, xdist) each get their own database:
    # JX_TEST_DB_SUFFIX when given, else this run's id and the xdist worker.
    explicit = os.environ.get("JX_TEST_DB_SUFFIX")
    if explicit:
        return explicit
    return f"{RUN_ID}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}".lower()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    admin = _postgres_admin_engine()
    if admin is None:
        if IN_CI:
            pytest.exit("CI=true but PostgreSQL does not answer at TEST_DATABASE_URL", returncode=3)
        tmp = Path(tempfile.mkdtemp(prefix="jackpotx-test-"))
        yield f"sqlite:///{tmp / 'test.sqlite3'}"
        return
    name = f"jackpotx_test_{_worker_suffix()}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if _redis_ok():
        if EXPLICIT_REDIS_URL:
            yield REDIS_URL
            return
        url = _claim_redis_db()
        yield url
        import redis

        with redis.Redis.from_url(url) as conn:
            conn.flushdb()  # the claim ends with the run
        return
    if IN_CI:
        pytest.exit("CI=true but Redis does not answer at TEST_REDIS_URL", returncode=3)
    yield ""


class IsolatedClient(FlaskClient):
    """A test client whose every request starts with an empty ``g``, as in production.

    The session-wide ``app`` fixture keeps an app context pushed and Flask reuses it for test
    requests, so ``g`` (where Flask-Login caches the current user, Flask-WTF the CSRF token and
    flask-jwt-extended the token) would otherwise leak from one request, or client, to the next.
    """

    def open(self, *args, **kwargs):
        if has_app_context():  # a thread of its own has no context to leak
            for name in list(vars(g)):
                delattr(g, name)
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app(database_url: str, redis_url: str, tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    application = create_app(
        {
            "ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "RQ_SYNC": True,
            "INSTANCE_DIR": str(instance),
            "UPLOAD_DIR": str(instance / "uploads"),
            "MAIL_DIR": str(instance / "mail"),
            "SMS_DIR": str(instance / "sms"),
            "SERVER_NAME": "localhost",
            # Tests end a tournament by moving its end into the past, then settle it at once.
            "TOURNAMENT_SETTLE_GRACE_SECONDS": 0,
            # The "remote" aggregators and gateways of the tests listen on 127.0.0.1.
            "OUTBOUND_ALLOW_LOOPBACK": True,
            # The deposit-limit prompt gate (on by default) is tested on its own
            # (tests/compliance/test_player_protection.py); the other deposit tests skip it.
            "DEPOSIT_LIMIT_PROMPT_REQUIRED": False,
        }
    )
    from tests.probe import register_probe_routes

    register_probe_routes(application)
    application.test_client_class = IsolatedClient
    with application.app_context():
        if db.engine.dialect.name == "sqlite":
            _sqlite_savepoints_work(db.engine)
        db.create_all()
        from app.identity.access import ensure_roles

        with atomic():
            ensure_roles()
        yield application
        db.session.remove()
        db.engine.dispose()


def _sqlite_savepoints_work(engine: sa.Engine) -> None:
    """pysqlite commits on its own, which defeats the savepoint-per-test fixture; let
    SQLAlchemy own the transactions (the documented pysqlite recipe). Tests only: the
    embedded server keeps pysqlite's default, which holds no lock while only reading."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")


@pytest.fixture(scope="session")
def is_postgres(app) -> bool:
    return db.engine.dialect.name == "postgresql"


@pytest.fixture
def requires_postgres(is_postgres):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (set TEST_DATABASE_URL or run the local server)")


@pytest.fixture(autouse=True)
def _clean_redis(app):
    client = app.extensions["redis"]
    client.flushdb()
    if app.config["REDIS_URL"] and not EXPLICIT_REDIS_URL:
        client.set(REDIS_OWNER_KEY, f"{RUN_ID}:{os.getpid()}")  # this run's claim stays
    from app.core.extensions import limiter

    limiter.reset()
    # A test that made Redis fail must not leave the next one skipping Redis.
    from app.core.breaker import redis_breaker

    redis_breaker.succeeded()
    return


@pytest.fixture(autouse=True)
def _db_savepoint(request, app):
    """Every test in one rolled-back transaction, unless it asked for ``committed_db``."""
    if "committed_db" in request.fixturenames:
        yield
        return
    connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    db.session = scoped_session(
        sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    )
    try:
        yield
    finally:
        db.session.remove()
        db.session = original
        outer.rollback()
        connection.close()


@pytest.fixture
def committed_db(app) -> Iterator[None]:
    """Real commits (for tests racing several connections); every table emptied afterwards."""
    db.session.remove()
    yield
    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(sa.text(f"DELETE FROM {name}"))
    from app.identity.access import ensure_roles

    with atomic():
        ensure_roles()
    db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Factory:
    """Builds rows through the same services the app uses."""

    def __init__(self) -> None:
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def user(self, role_id: int = PLAYER, password: str = "Passw0rd-Long-1!", **kw) -> User:
        from app.identity.users import create_user

        n = self._next()
        kw.setdefault("username", f"user{n}_{os.urandom(3).hex()}")
        kw.setdefault("email", f"{kw['username']}@example.test")
        # An established account: its e-mail is verified (withdrawals need it by default).
        kw.setdefault("email_verified_at", utcnow())
        with atomic():
            user = create_user(password=password, role_id=role_id, **kw)
        return user

    def player(self, **kw) -> User:
        return self.user(PLAYER, **kw)

    def staff(self, role: str, **kw) -> User:
        role_id = {"admin": ADMIN, "manager": MANAGER, "support": SUPPORT, "agent": AGENT}[role]
        return self.user(role_id, **kw)


@pytest.fixture
def factory(app) -> Factory:
    return Factory()


@pytest.fixture
def token_for(app):
    def make(user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_access_token(identity=user)}"}

    return make


def pytest_report_header(config):
    if EMBEDDED:
        return [
            "jackpotx: database=SQLite, redis=fakeredis (JX_TEST_EMBEDDED=1: the embedded default)"
        ]
    pg = _postgres_admin_engine()
    where = "PostgreSQL" if pg is not None else "SQLite (PostgreSQL not reachable)"
    if pg is not None:
        pg.dispose()
    return [f"jackpotx: database={where}, redis={'server' if _redis_ok() else 'fakeredis'}"]
