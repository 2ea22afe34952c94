"""Extensions, created unbound here and bound to the app in ``create_app``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, request
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from app.core.openapi import JxApi
from app.core.routing import RoutingSession

if TYPE_CHECKING:
    import fakeredis

# Stable constraint names so Alembic can alter them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def client_ip() -> str:
    """The caller's address; ``ProxyFix`` (PROXY_COUNT) has already resolved forwarding."""
    return request.remote_addr or "0.0.0.0"  # noqa: S104 - a key, not a bind address


# SELECTs inside ``app.core.replica.reads`` go to the read replica (``DATABASE_REPLICA_URL``).
db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})
# Models subclass ``Model``: Flask-SQLAlchemy's ``db.Model`` at run time (table names, the
# session binding), the typed declarative base for the type checker.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
jwt = JWTManager()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=client_ip)
socketio = SocketIO()
cors = CORS()
api = JxApi()


class RedisHolder:
    """The app's Redis connection: a real server when ``REDIS_URL`` is set, else fakeredis.

    The embedded default runs with no servers at all; fakeredis keeps the same API so RQ and
    the rest of the code do not branch on it.
    """

    def __init__(self) -> None:
        self._fake_server: fakeredis.FakeServer | None = None

    def init_app(self, app: Flask) -> None:
        url = app.config["REDIS_URL"]
        if url:
            import redis

            # Blocking pool: under gevent hundreds of greenlets share it; past the cap they
            # wait (up to 5 s) for a free connection instead of failing "Too many connections".
            pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=int(app.config.get("REDIS_MAX_CONNECTIONS", 100)),
                timeout=5,
                socket_timeout=5,
                socket_connect_timeout=2,
            )
            client = redis.Redis(connection_pool=pool)
        else:
            import fakeredis

            if self._fake_server is None:
                self._fake_server = fakeredis.FakeServer()
            client = fakeredis.FakeRedis(server=self._fake_server)
        app.extensions["redis"] = client

    @staticmethod
    def client():
        from flask import current_app

        return current_app.extensions["redis"]


redis_store = RedisHolder()
