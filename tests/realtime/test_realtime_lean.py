"""The leaner held sockets (app/realtime/lean.py, gunicorn.conf.py): one heartbeat task per
process, writers only while writing, a small read buffer — and the protocol unchanged."""

from __future__ import annotations

import json
import runpy
import socket
import threading
import time
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
import websocket
from flask_jwt_extended import create_access_token

from app.realtime import lean
from tests.live import free_port, gunicorn, server_env

ROOT = Path(__file__).resolve().parents[2]


def test_the_engineio_internals_the_patch_mirrors_are_the_pinned_ones():
    # lean._lean_websocket_handler is engineio 4.x's handler with the writer replaced; a new
    # engineio must be re-read against it before the pin moves.
    assert version("python-engineio") == "4.15.1"
    assert version("gevent-websocket") == "0.10.1"


class FakeSocket:
    def __init__(self, interval: float, *, fail: bool = False) -> None:
        self.server = SimpleNamespace(ping_interval=interval, start_background_task=lambda *a: None)
        self.sid = f"s{id(self)}"
        self.closing = self.closed = False
        self.last_ping = None
        self.sent: list[object] = []
        self.fail = fail

    def send(self, pkt) -> None:
        if self.fail:
            raise OSError("transport gone")
        self.sent.append(pkt)


def test_the_heartbeat_pings_each_socket_when_due_and_skips_closed_ones():
    beat = lean.Heartbeat()
    early, late, closed = FakeSocket(1), FakeSocket(5), FakeSocket(1)
    broken = FakeSocket(1, fail=True)
    for sock in (early, late, closed, broken):
        beat.schedule(sock)
    closed.closed = True
    now = time.monotonic()
    assert beat.send_due(now) == 0  # nothing due yet
    assert beat.send_due(now + 1.5) == 1  # early; the broken one does not stop the rest
    assert [p.packet_type for p in early.sent] == [2]  # engineio PING
    assert early.last_ping is not None
    assert not late.sent
    assert not closed.sent
    assert len(beat) == 1
    assert beat.send_due(now + 6) == 1
    assert late.sent


def test_a_new_cycle_starts_only_after_the_previous_ping_was_answered(monkeypatch):
    beat = lean.Heartbeat()
    monkeypatch.setattr(lean, "heartbeat", beat)
    sock = FakeSocket(1)
    sock.last_ping = time.time()  # answered (engineio sets it at the handshake)
    lean._schedule_ping(sock)
    lean._schedule_ping(sock)  # a second PONG for the same cycle schedules nothing
    assert len(beat) == 1


def test_the_gunicorn_worker_reads_through_a_small_buffer():
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["worker_class"].wsgi_handler is conf["SlimWebSocketHandler"]
    left, right = socket.socketpair()
    try:
        handler = conf["SlimWebSocketHandler"](left, ("127.0.0.1", 1), None)
        with left.makefile("rb", -1) as default:
            assert handler.rfile.__sizeof__() + 4096 < default.__sizeof__()
        handler.rfile.close()
    finally:
        left.close()
        right.close()


# --- live: the protocol as a raw Engine.IO client sees it -----------------------------------


@pytest.fixture(scope="module")
def fast_pings(app, database_url, redis_url, tmp_path_factory):
    if not database_url.startswith("postgresql") or not redis_url:
        pytest.skip("the live server needs PostgreSQL and Redis")
    port = free_port()
    env = server_env(
        database_url, redis_url, port, SOCKETIO_PING_INTERVAL="1", SOCKETIO_PING_TIMEOUT="1"
    )
    with gunicorn(env, tmp_path_factory.mktemp("lean") / "gunicorn.log") as server:
        yield server


def _open(server, app, user) -> websocket.WebSocket:
    with app.test_request_context():  # the caller put the server's signing key in app.config
        token = create_access_token(identity=user)
    ws = websocket.create_connection(
        server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=5
    )
    assert ws.recv().startswith("0{")  # Engine.IO open
    ws.send("40" + json.dumps({"token": token}))
    assert ws.recv().startswith("40{")  # Socket.IO connected
    return ws


@pytest.mark.slow
def test_pings_keep_coming_while_answered_and_events_arrive_in_order(
    app, fast_pings, committed_db, factory, monkeypatch
):
    monkeypatch.setitem(app.config, "JWT_SECRET_KEY", fast_pings.env["JWT_SECRET_KEY"])
    player = factory.player()
    ws = _open(fast_pings, app, player)
    pings, events = 0, []
    publisher = threading.Thread(
        target=fast_pings.run_python,
        args=(
            "from app import create_app\n"
            "from app.core.db import atomic\n"
            "from app.core import notifications\n"
            "with create_app().app_context():\n"
            "    for n in range(5):\n"
            "        with atomic():\n"
            f"            notifications.notify({player.id}, 'probe', 'n', 'm',\n"
            "                                 data={'seq': n})\n",
        ),
    )
    publisher.start()
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and (len(events) < 5 or pings < 3):
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            if frame == "2":
                pings += 1
                ws.send("3")
            elif frame.startswith('42["notification"'):
                events.append(json.loads(frame[2:])[1]["data"]["seq"])
    finally:
        ws.close()
        ws.shutdown()
        publisher.join()
    assert pings >= 3  # one a second, from the shared heartbeat
    assert events == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_a_client_that_stops_answering_pings_is_dropped(
    app, fast_pings, committed_db, factory, monkeypatch
):
    monkeypatch.setitem(app.config, "JWT_SECRET_KEY", fast_pings.env["JWT_SECRET_KEY"])
    ws = _open(fast_pings, app, factory.player())
    frames = []
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline:
            frame = ws.recv()
            if not frame:
                break
            frames.append(frame)
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass
    finally:
        ws.close()
        ws.shutdown()  # close() skips a connection the server already closed
    assert "2" in frames  # pinged, never answered
    assert time.monotonic() < deadline  # and closed by the server well before the deadline
