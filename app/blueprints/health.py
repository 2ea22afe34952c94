"""``GET /health``: is the database reachable, is Redis reachable."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.core.extensions import db, redis_store

bp = Blueprint("health", __name__)


def _check(probe) -> dict:
    started = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:
        current_app.logger.warning("health probe failed: %s", type(exc).__name__)
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)} | (
        detail or {}
    )


def _database() -> dict:
    db.session.execute(text("SELECT 1"))
    db.session.rollback()
    return {"engine": db.engine.dialect.name}


def _redis() -> dict:
    redis_store.client().ping()
    return {"mode": "server" if current_app.config["REDIS_URL"] else "embedded"}


@bp.get("/health")
def health():
    database = _check(_database)
    redis = _check(_redis)
    healthy = database["status"] == "up" and redis["status"] == "up"
    body = {
        "status": "healthy" if healthy else "degraded",
        "environment": current_app.config["ENV"],
        "version": current_app.config["VERSION"],
        "database": database,
        "redis": redis,
    }
    return jsonify(body), 200 if healthy else 503
