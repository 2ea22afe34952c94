"""Health, maintenance mode, API docs, rate limits, configuration safety, transactions."""

from __future__ import annotations

import re

import pytest

from app import create_app
from app.core import settings
from app.core.config import ConfigError, load_config
from app.core.db import atomic, on_commit
from app.core.extensions import db
from app.core.models import Setting
from tests.prodenv import PRODUCTION_ENV, PRODUCTION_SECRETS


def test_health_reports_database_and_redis(client, is_postgres):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["environment"] == "testing"
    assert body["version"]
    assert body["database"]["status"] == "up"
    assert body["database"]["engine"] == ("postgresql" if is_postgres else "sqlite")
    assert body["redis"]["status"] == "up"


def test_health_is_degraded_when_redis_is_down(app, client, monkeypatch):
    class Down:
        def ping(self):
            import redis

            raise redis.exceptions.ConnectionError("refused")

    monkeypatch.setitem(app.extensions, "redis", Down())
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["redis"]["status"] == "down"


def test_maintenance_mode_blocks_player_api_but_not_health_or_staff(client, runner):
    result = runner.invoke(args=["jackpotx", "maintenance", "on", "--message", "Back at 10"])
    assert result.exit_code == 0, result.output
    assert "maintenance mode: on" in result.output

    blocked = client.get("/api/probe/conflict")
    assert blocked.status_code == 503
    assert blocked.get_json()["code"] == "MAINTENANCE_MODE"
    assert blocked.get_json()["message"] == "Back at 10"
    assert client.get("/health").status_code == 200
    status = client.get("/api/status").get_json()["data"]
    assert status["maintenance"] is True
    assert client.get("/api/admin/anything").get_json()["code"] == "NOT_FOUND"

    runner.invoke(args=["jackpotx", "maintenance", "off"])
    assert client.get("/api/probe/conflict").status_code == 409


def test_maintenance_toggle_is_audited(runner):
    from app.core import audit

    runner.invoke(args=["jackpotx", "maintenance", "on"])
    from sqlalchemy import select

    from app.core.models import AuditLog

    row = db.session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert row.action == "settings.update"
    assert row.after == {"value": {"enabled": True, "message": None}}
    assert audit.verify().ok


def test_openapi_document_and_docs_are_served_locally(client):
    spec = client.get("/api/openapi.json")
    assert spec.status_code == 200
    assert spec.get_json()["openapi"].startswith("3.")
    assert "/api/status" in spec.get_json()["paths"]
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    assert external == []
    assert "swagger-ui-bundle.js" in html
    asset = client.get("/api/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()


def test_docs_password_protects_docs_and_spec(app, client):
    app.config["API_DOCS_PASSWORD"] = "s3cret-docs"
    try:
        denied = client.get("/api/docs")
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"].startswith("Basic")
        assert client.get("/api/openapi.json").status_code == 401
        ok = client.get("/api/openapi.json", auth=("any", "s3cret-docs"))
        assert ok.status_code == 200
    finally:
        app.config["API_DOCS_PASSWORD"] = ""


def test_rate_limit_answers_429_envelope_with_retry_after(client):
    codes = [client.get("/api/probe/limited").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    response = client.get("/api/probe/limited")
    assert response.status_code == 429
    body = response.get_json()
    assert body["code"] == "RATE_LIMITED"
    assert body["success"] is False
    assert int(response.headers["Retry-After"]) >= 1


def test_production_refuses_development_secrets():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config({"ENV": "production"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config({"ENV": "production", **PRODUCTION_SECRETS, "REDIS_URL": "redis://localhost"})


def test_production_starts_with_real_settings():
    cfg = load_config(PRODUCTION_ENV)
    assert cfg["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg2://")
    assert cfg["SESSION_COOKIE_NAME"].startswith("__Host-")


def test_public_url_follows_the_port_we_serve_unless_set():
    assert load_config({})["PUBLIC_URL"] == "http://127.0.0.1:5000"
    assert load_config({"PORT": "5070"})["PUBLIC_URL"] == "http://127.0.0.1:5070"
    explicit = load_config({"PORT": "5070", "PUBLIC_URL": "https://casino.example/"})
    assert explicit["PUBLIC_URL"] == "https://casino.example"


def test_create_app_touches_no_database(tmp_path):
    # A database URL nobody listens on: the factory must still build the app.
    app = create_app(
        {"ENV": "testing", "SQLALCHEMY_DATABASE_URI": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert app.name == "app"


def test_on_commit_runs_after_commit_only(app):
    fired: list[str] = []
    with atomic():
        on_commit(lambda: fired.append("outer"))
        db.session.add(Setting(key="t1", value=1))
        assert fired == []
    assert fired == ["outer"]

    with pytest.raises(RuntimeError), atomic():
        on_commit(lambda: fired.append("rolled back"))
        raise RuntimeError("boom")
    assert fired == ["outer"]


def test_nested_atomic_is_a_savepoint(app):
    fired: list[str] = []
    with atomic():
        db.session.add(Setting(key="kept", value=1))
        with pytest.raises(ValueError, match="inner fails"), atomic():
            db.session.add(Setting(key="dropped", value=2))
            on_commit(lambda: fired.append("inner"))
            raise ValueError("inner fails")
        on_commit(lambda: fired.append("outer"))
    assert settings.get("kept") == 1
    assert settings.get("dropped") is None
    assert fired == ["outer"]


def test_on_commit_outside_a_transaction_is_a_programming_error(app):
    with pytest.raises(RuntimeError, match="outside atomic"):
        on_commit(lambda: None)


def test_database_outage_is_a_503_envelope_logged_with_correlation_id(committed_db, caplog):
    # Nothing listens on port 1: every query fails like a database that went away.
    down = create_app(
        {"ENV": "testing", "SQLALCHEMY_DATABASE_URI": "postgresql://nobody@127.0.0.1:1/none"}
    )
    client = down.test_client()
    response = client.get("/api/status", headers={"X-Correlation-ID": "db-down-1"})
    assert response.status_code == 503
    body = response.get_json()
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert "127.0.0.1" not in body["message"]
    assert any(
        r.getMessage().startswith("database unavailable") and r.correlation_id == "db-down-1"
        for r in caplog.records
    )
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["database"]["status"] == "down"


def test_request_gates_read_settings_through_a_short_per_process_cache(app, client, monkeypatch):
    """With SETTINGS_CACHE_SECONDS the maintenance and access gates stop querying the settings
    table on every request; a change made in this process is seen at once."""
    import sqlalchemy as sa

    monkeypatch.setitem(app.config, "SETTINGS_CACHE_SECONDS", 60)
    monkeypatch.setattr(settings, "_cache", {})
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if "FROM settings" in statement:
            statements.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/api/games").status_code == 200
        first = len(statements)
        assert first >= 1
        for _ in range(3):
            assert client.get("/api/games").status_code == 200
        assert len(statements) == first  # served from the cache
        with atomic():
            settings.set_maintenance(True, message="Back soon")
        response = client.get("/api/games")
        assert response.status_code == 503
        assert response.get_json()["message"] == "Back soon"
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
