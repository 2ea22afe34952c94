"""Socket.IO against a live gunicorn + GeventWebSocketWorker server, with publishers in other
processes (a script, an RQ worker) reaching clients through the Redis message queue."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import redis
import requests
import socketio
from flask_jwt_extended import create_access_token, create_refresh_token
from rq import Queue

from tests.live import free_port, gunicorn, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(app, database_url, redis_url, tmp_path_factory):
    if not database_url.startswith("postgresql") or not redis_url:
        pytest.skip("the live server needs PostgreSQL and Redis")
    port = free_port()
    env = server_env(database_url, redis_url, port)
    with gunicorn(env, tmp_path_factory.mktemp("live") / "gunicorn.log") as server:
        yield server


@pytest.fixture
def mint(app, live, monkeypatch):
    """Tokens signed with the live server's key."""
    monkeypatch.setitem(app.config, "JWT_SECRET_KEY", live.env["JWT_SECRET_KEY"])

    def make(user, *, refresh: bool = False, **kw) -> str:
        with app.test_request_context():
            if refresh:
                return create_refresh_token(identity=user, **kw)
            return create_access_token(identity=user, **kw)

    return make


class Probe:
    """A python-socketio client that records every event it receives."""

    def __init__(self) -> None:
        self.sio = socketio.Client(reconnection=False)
        self.events: list[tuple[str, object]] = []
        self.connect_error: object = None
        self.disconnected = threading.Event()
        self._cond = threading.Condition()

        @self.sio.on("*")
        def _any(event, data=None):
            with self._cond:
                self.events.append((event, data))
                self._cond.notify_all()

        @self.sio.on("connect_error")
        def _refused(data=None):
            self.connect_error = data

        @self.sio.on("disconnect")
        def _gone(reason=None):
            with self._cond:
                self.events.append(("<disconnect>", reason))
                self._cond.notify_all()
            self.disconnected.set()

    def connect(self, url: str, **kw) -> None:
        kw.setdefault("transports", ["websocket"])
        self.sio.connect(url, wait_timeout=10, **kw)

    def wait_for(self, name: str, timeout: float = 15):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event, data in self.events:
                    if event == name:
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name!r} within {timeout}s; got {self.events}")
                self._cond.wait(left)

    def names(self) -> list[str]:
        with self._cond:
            return [e for e, _ in self.events]

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture
def probes():
    made: list[Probe] = []

    def make() -> Probe:
        probe = Probe()
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


def _refusal(probe: Probe, url: str, **kw) -> dict:
    with pytest.raises(socketio.exceptions.ConnectionError):
        probe.connect(url, **kw)
    assert isinstance(probe.connect_error, dict), probe.connect_error
    return probe.connect_error


def test_player_with_valid_token_receives_a_notification_published_by_another_process(
    live, committed_db, factory, mint, probes
):
    player = factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player)})

    live.run_python(
        "from app import create_app\n"
        "from app.core.db import atomic\n"
        "from app.core import notifications\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    with atomic():\n"
        f"        notifications.notify({player.id}, 'system', 'Hello', 'From another process')\n"
    )
    data = probe.wait_for("notification")
    assert data["title"] == "Hello"
    assert data["message"] == "From another process"
    assert data["read"] is False


def test_token_in_query_string_is_accepted_too(live, committed_db, factory, mint, probes):
    player = factory.player()
    probe = probes()
    probe.connect(f"{live.url}?token={mint(player)}")
    assert probe.sio.connected


def test_an_emit_from_an_rq_worker_process_reaches_the_client(
    live, committed_db, factory, mint, probes, redis_url
):
    player = factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player)})
    Queue("notifications", connection=redis.Redis.from_url(redis_url)).enqueue(
        "app.core.jobs.send_notification",
        player.id,
        "withdrawal",
        "Withdrawal paid",
        "Your withdrawal of 50.00 EUR was paid",
        None,
        "worker-test-1",
    )
    live.run("worker.py", "--burst", "notifications")
    data = probe.wait_for("notification")
    assert data["title"] == "Withdrawal paid"


def test_staff_sit_in_the_admin_room_and_players_do_not(live, committed_db, factory, mint, probes):
    staff, player = factory.staff("support"), factory.player()
    staff_probe, player_probe = probes(), probes()
    staff_probe.connect(live.url, auth={"token": mint(staff)})
    player_probe.connect(live.url, auth={"token": mint(player)})
    live.run(
        "-m",
        "flask",
        "--app",
        "wsgi",
        "jackpotx",
        "realtime",
        "broadcast",
        "--event",
        "admin.notification",
        "--room",
        "admin",
        "--data",
        '{"type": "withdrawal_request", "user_id": 7, "amount": "250.00"}',
    )
    assert staff_probe.wait_for("admin.notification")["type"] == "withdrawal_request"
    # The broadcast and anything after it are ordered on the channel: send a marker to both.
    live.run(
        "-m", "flask", "--app", "wsgi", "jackpotx", "realtime", "broadcast",
        "--event", "marker", "--room", "global",
    )  # fmt: skip
    player_probe.wait_for("marker")
    assert "admin.notification" not in player_probe.names()


def test_a_forged_token_is_refused_with_the_error_payload(live, probes):
    payload = _refusal(probes(), live.url, auth={"token": "not.a.jwt"})
    assert payload["success"] is False
    assert payload["event"] == "error"
    assert payload["message"] == "Invalid token"


def test_a_missing_token_is_refused(live, probes):
    payload = _refusal(probes(), live.url)
    assert payload["code"] == "unauthorized"


def test_an_expired_token_is_refused_as_token_expired(live, committed_db, factory, mint, probes):
    player = factory.player()
    token = mint(player, expires_delta=timedelta(seconds=-5))
    payload = _refusal(probes(), live.url, auth={"token": token})
    assert payload["code"] == "token_expired"
    assert payload["event"] == "error"


def test_a_refresh_token_cannot_open_a_socket(live, committed_db, factory, mint, probes):
    player = factory.player()
    payload = _refusal(probes(), live.url, auth={"token": mint(player, refresh=True)})
    assert payload["message"] == "An access token is required"


def test_a_banned_player_cannot_connect(live, committed_db, factory, mint, probes):
    player = factory.player(status="banned")
    payload = _refusal(probes(), live.url, auth={"token": mint(player)})
    assert payload["code"] == "unauthorized"


def test_a_foreign_browser_origin_is_refused_and_our_own_is_accepted(live):
    handshake = f"{live.url}/socket.io/?EIO=4&transport=polling"
    foreign = requests.get(handshake, headers={"Origin": "https://evil.example"}, timeout=5)
    assert foreign.status_code == 400
    own = requests.get(handshake, headers={"Origin": live.env["PUBLIC_URL"]}, timeout=5)
    assert own.status_code == 200
    front_end = requests.get(handshake, headers={"Origin": "http://localhost:3000"}, timeout=5)
    assert front_end.status_code == 200


def test_force_logout_pushes_session_logout_then_closes_the_socket(
    live, committed_db, factory, mint, probes
):
    player = factory.player()
    token = mint(player)
    probe = probes()
    probe.connect(live.url, auth={"token": token})
    time.sleep(1.1)  # the cut-off must fall in a later second than the token's iat
    # What the identity service does on force-logout/ban: revoke, then publish.
    live.run_python(
        "from datetime import UTC, datetime\n"
        "from app import create_app\n"
        "from app.core.db import atomic\n"
        "from app.core.events import publish, user_room\n"
        "from app.core.extensions import db\n"
        "from app.identity.models import User\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    with atomic():\n"
        f"        db.session.get(User, {player.id}).tokens_valid_after = datetime.now(UTC)\n"
        "        publish('session.logout', {'reason': 'Logged out by an administrator'},\n"
        f"                room=user_room({player.id}))\n"
    )
    assert probe.wait_for("session.logout") == {"reason": "Logged out by an administrator"}
    assert probe.disconnected.wait(10), "the server kept the socket open"
    names = probe.names()
    assert names.index("session.logout") < names.index("<disconnect>")
    # The same token no longer opens a socket.
    payload = _refusal(probes(), live.url, auth={"token": token})
    assert payload["message"] == "Token has been revoked"


def test_a_token_that_expires_during_the_session_gets_token_expired_and_is_disconnected(
    live, committed_db, factory, mint, probes
):
    player = factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player, expires_delta=timedelta(seconds=2))})
    error = probe.wait_for("error", timeout=10)
    assert error == {
        "success": False,
        "event": "error",
        "code": "token_expired",
        "message": "Token has expired",
    }
    assert probe.disconnected.wait(10)


def test_a_fresh_token_keeps_the_session_alive_past_the_old_expiry(
    live, committed_db, factory, mint, probes
):
    player = factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player, expires_delta=timedelta(seconds=2))})
    ack = probe.sio.call("authenticate", {"token": mint(player)}, timeout=5)
    assert ack["success"] is True
    time.sleep(3.5)
    assert probe.sio.connected
    assert "error" not in probe.names()


def test_join_game_puts_the_client_in_the_game_room(live, committed_db, factory, mint, probes):
    player = factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player)})
    assert probe.sio.call("join_game", {"game_id": 42}, timeout=5) == {
        "success": True,
        "room": "game:42",
    }
    live.run(
        "-m", "flask", "--app", "wsgi", "jackpotx", "realtime", "broadcast",
        "--event", "game_update", "--room", "game:42", "--data", '{"round": 1}',
    )  # fmt: skip
    assert probe.wait_for("game_update") == {"round": 1}
    assert probe.sio.call("leave_game", {"game_id": 42}, timeout=5)["success"] is True


def test_a_malformed_join_is_answered_with_invalid_payload(
    live, committed_db, factory, mint, probes
):
    player = factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player)})
    ack = probe.sio.call("join_game", {"game_id": "1; DROP"}, timeout=5)
    assert ack["code"] == "invalid_payload"
    assert ack["event"] == "error"


def test_subscribing_to_another_players_payments_is_refused(
    live, committed_db, factory, mint, probes
):
    player, other = factory.player(), factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player)})
    own = probe.sio.call("subscribe:payment", {"username": player.username}, timeout=5)
    assert own == {"success": True, "room": f"user:{player.id}"}
    foreign = probe.sio.call("subscribe:payment", {"username": other.username}, timeout=5)
    assert foreign["code"] == "access_denied"


def test_a_client_flooding_events_is_rate_limited(live, committed_db, factory, mint, probes):
    player = factory.player()
    probe = probes()
    probe.connect(live.url, auth={"token": mint(player)})
    answers = [probe.sio.call("join_game", {"game_id": 1}, timeout=5) for _ in range(30)]
    limited = [a for a in answers if a.get("code") == "rate_limited"]
    assert 5 <= len(limited) <= 12  # burst of 20, refilled at 2 per second
    assert answers[0]["success"] is True


def _console_cookie(app, live, monkeypatch, user) -> str:
    """The signed session cookie the back office sets after login (production name)."""
    monkeypatch.setitem(app.config, "SECRET_KEY", live.env["SECRET_KEY"])
    value = app.session_interface.get_signing_serializer(app).dumps(
        {"_user_id": str(user.id), "_fresh": True}
    )
    return f"__Host-jackpotx={value}"


def test_staff_connect_with_their_console_session_and_hear_the_admin_room(
    app, live, committed_db, factory, probes, monkeypatch
):
    staff = factory.staff("manager")
    probe = probes()
    probe.connect(live.url, headers={"Cookie": _console_cookie(app, live, monkeypatch, staff)})
    live.run(
        "-m", "flask", "--app", "wsgi", "jackpotx", "realtime", "broadcast",
        "--event", "kyc.update", "--room", "admin", "--data", '{"user_id": 5}',
    )  # fmt: skip
    assert probe.wait_for("kyc.update") == {"user_id": 5}


def test_a_player_id_in_a_console_session_does_not_open_a_socket(
    app, live, committed_db, factory, probes, monkeypatch
):
    player = factory.player()
    cookie = _console_cookie(app, live, monkeypatch, player)
    payload = _refusal(probes(), live.url, headers={"Cookie": cookie})
    assert payload["code"] == "unauthorized"


def test_connections_per_account_are_capped(live, committed_db, factory, mint, probes):
    player = factory.player()
    token = mint(player)
    held = []
    for _ in range(10):
        probe = probes()
        probe.connect(live.url, auth={"token": token})
        held.append(probe)
    payload = _refusal(probes(), live.url, auth={"token": token})
    assert payload["code"] == "too_many_connections"
    held[0].close()
    assert held[0].disconnected.wait(5)
    time.sleep(0.3)
    probes().connect(live.url, auth={"token": token})  # the slot was freed


def _sockets(live) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(live.scrape()):
        for sample in family.samples:
            if sample.name == "jackpotx_sockets_connected":
                return sample.value
    raise AssertionError("jackpotx_sockets_connected is not in the scrape")


def _until(read, wanted: float, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (value := read()) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"{value} never became {wanted}")
        time.sleep(0.05)


def test_the_scrape_counts_open_sockets_and_not_refused_ones(
    live, committed_db, factory, mint, probes
):
    before = _sockets(live)
    first, second = probes(), probes()
    first.connect(live.url, auth={"token": mint(factory.player())})
    second.connect(live.url, auth={"token": mint(factory.player())})
    _until(lambda: _sockets(live), before + 2)
    _refusal(probes(), live.url, auth={"token": "forged"})
    assert _sockets(live) == before + 2  # a refused connection never counted
    first.close()
    _until(lambda: _sockets(live), before + 1)
    second.close()
    _until(lambda: _sockets(live), before)
