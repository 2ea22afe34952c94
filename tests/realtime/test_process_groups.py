"""The callbacks / JSON API process group (``wsgi_api.py``) runs without a Socket.IO server."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from app import create_app
from app.realtime.emitter import QueueEmitter

ROOT = Path(__file__).resolve().parents[2]


def test_the_api_group_binds_no_socketio_server_and_publishes_through_redis(redis_url, tmp_path):
    if not redis_url:
        pytest.skip("the API group needs Redis")
    app = create_app(
        {
            "ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}",
            "REDIS_URL": redis_url,
            "SOCKETIO_SERVER": False,
            "INSTANCE_DIR": str(tmp_path),
        }
    )
    assert "socketio" not in app.extensions
    assert isinstance(app.extensions["jx_emitter"], QueueEmitter)
    assert app.test_client().get("/socket.io/?EIO=4&transport=polling").status_code == 404


def test_gunicorn_runs_the_api_group_on_plain_gevent_workers(monkeypatch):
    monkeypatch.setenv("SOCKETIO_SERVER", "false")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["worker_class"] == "gevent"
    monkeypatch.delenv("SOCKETIO_SERVER")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["worker_class"] is conf["WebSocketWorker"]


def test_gunicorn_workers_freeze_the_built_app_out_of_the_collectors_sight(monkeypatch):
    import gc

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    runpy.run_path(str(ROOT / "gunicorn.conf.py"))["post_worker_init"](None)
    assert frozen == [True]
