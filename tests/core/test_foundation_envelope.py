"""The API contract's plumbing: error envelope, correlation ids, security headers."""

from __future__ import annotations

import json
import logging


def _assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert response.headers["X-Correlation-ID"]
    return body


def test_unknown_route_is_a_404_envelope(client):
    _assert_envelope(client.get("/api/nope"), 404, "NOT_FOUND")


def test_wrong_method_is_a_405_envelope(client):
    body = _assert_envelope(client.delete("/health"), 405, "METHOD_NOT_ALLOWED")
    assert "not allowed" in body["message"].lower()


def test_malformed_json_is_a_400_envelope(client):
    response = client.post(
        "/api/probe/echo", data="{not json", headers={"Content-Type": "application/json"}
    )
    body = _assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "JSON" in body["message"]


def test_schema_errors_name_the_fields(client):
    response = client.post("/api/probe/echo", json={"name": 5, "count": "abc", "extra": 1})
    body = _assert_envelope(response, 400, "VALIDATION_ERROR")
    fields_named = {e["field"] for e in body["errors"]}
    assert {"name", "count", "extra"} <= fields_named


def test_domain_error_maps_to_its_code(client):
    body = _assert_envelope(client.get("/api/probe/conflict"), 409, "CONFLICT")
    assert body["message"] == "Already done"


def test_unexpected_error_is_masked_and_logged_with_correlation_id(client, caplog):
    caplog.set_level(logging.ERROR)
    response = client.get("/api/probe/boom", headers={"X-Correlation-ID": "trace-abc-123"})
    body = _assert_envelope(response, 500, "INTERNAL_ERROR")
    text = json.dumps(body)
    assert "SELECT" not in text
    assert "secret" not in text
    assert "Traceback" not in text
    assert response.headers["X-Correlation-ID"] == "trace-abc-123"
    records = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    assert records
    assert records[0].correlation_id == "trace-abc-123"


def test_correlation_id_is_made_when_absent_and_junk_is_replaced(client):
    made = client.get("/health").headers["X-Correlation-ID"]
    assert len(made) == 32
    junk = client.get("/health", headers={"X-Correlation-ID": "bad id <script>"})
    assert junk.headers["X-Correlation-ID"] != "bad id <script>"


def test_oversized_body_is_a_413_envelope(app, client):
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post(
        "/api/probe/echo", data=big, headers={"Content-Type": "application/json"}
    )
    _assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


def test_security_headers_on_every_response(client):
    response = client.get("/api/nope")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"]
    assert "Strict-Transport-Security" not in response.headers  # only in production


def test_cors_allows_only_listed_origins(client):
    allowed = client.get("/api/status", headers={"Origin": "http://localhost:3000"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    denied = client.get("/api/status", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in denied.headers


def test_every_json_date_is_iso_8601(app):
    from datetime import UTC, date, datetime

    from flask import json

    text = json.dumps({"at": datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC), "on": date(2026, 1, 2)})
    assert json.loads(text) == {"at": "2026-12-06T01:02:03+00:00", "on": "2026-01-02"}
