"""The money path under real faults, against a live production-profile server.

Each scenario: the fault, the load, what the answers were (never a 500), where the money is
(exactly where the answers say), and how long recovery took.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from app.bonus import loyalty
from app.bonus.models import LoyaltyAccount, LoyaltyEvent
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.play import games
from app.play.callbacks.adapters import native_signature
from app.play.models import ProviderCallback
from app.prizes import tournaments
from app.prizes.models import TournamentScoreEvent
from app.wallet import integrity
from app.wallet.models import Wallet
from tests.faults.conftest import SERVER_APP_NAME, Answers, burst, fault_env, figure, post
from tests.live import free_port, gunicorn
from tests.moneykit import (
    SECRET,
    fund,
    make_game,
    make_provider,
    reconcile_clean,
    wallet_row_locked,
)
from tests.payments_helpers import sandbox_gateway

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


# --- helpers ---------------------------------------------------------------------------------


class Provider:
    """A provider, a game and funded players with open game sessions, seen from outside."""

    def __init__(self, url: str, factory: Any, players: int = 1, cash: int = 100_00) -> None:
        provider = make_provider()
        self.code = provider.code
        self.game = make_game(provider.code, f"g{uuid.uuid4().hex[:6]}").external_id
        self.game_id = db.session.scalar(
            sa.select(games.Game.id).where(games.Game.external_id == self.game)
        )
        self.url = f"{url}/api/provider-callback/{provider.code}"
        self.users: list[int] = []
        self.tokens: list[str] = []
        for _ in range(players):
            player = factory.player()
            fund(player.id, cash)
            self.users.append(player.id)
            self.tokens.append(games.launch(player, self.game_id).session_token)

    def call(self, action: str, player: int = 0, timeout: float = 30, **fields: Any):
        body = json.dumps(
            {
                "action": action,
                "session_token": self.tokens[player],
                "game_id": self.game,
                "currency": "EUR",
                **fields,
            }
        ).encode()
        return post(
            self.url,
            data=body,
            timeout=timeout,
            headers={
                "Content-Type": "application/json",
                "X-Signature": native_signature(SECRET, body),
            },
        )

    def bet(self, tx: str, amount: str = "1.00", player: int = 0, round_id: str = "r1", **kw: Any):
        return self.call("bet", player, transaction_id=tx, round_id=round_id, amount=amount, **kw)


def cash(user_id: int) -> tuple[int, int]:
    db.session.expire_all()
    w = db.session.scalar(sa.select(Wallet).where(Wallet.user_id == user_id))
    return w.balance, w.held_balance


def _ok(status: int, body: Any) -> bool:
    return status == 200 and isinstance(body, dict) and body.get("status") == "ok"


def _code(status: int, body: Any) -> str:
    if status != 200 or not isinstance(body, dict):
        return f"HTTP {status}"
    return "ok" if body.get("status") == "ok" else str(body.get("code"))


def _tally(answers: Answers) -> dict[str, int]:
    out: dict[str, int] = {}
    for status, body in answers.items:
        key = _code(status, body)
        out[key] = out.get(key, 0) + 1
    return out


def _wait_for_lock_waiters(count: int, timeout: float = 10) -> None:
    """Until ``count`` of the server's connections wait for a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND wait_event_type = 'Lock'"
                ),
                {"name": SERVER_APP_NAME},
            ).scalar_one()
        if waiting >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} lock waiters never appeared")


def _server_errors(server: Any) -> list[str]:
    """The server log's ERROR lines (message and the exception's last line), for a failure."""
    lines = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if '"level": "ERROR"' in line and "Failed to rate limit" not in line:
            lines.append(line[:200] + " ... " + line[-300:])
    return lines[-10:]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --- scenarios -------------------------------------------------------------------------------


def test_a_held_wallet_lock_neither_freezes_other_players_nor_the_locked_one(
    as_server, committed_db, factory
):
    """One wallet row locked for 6 s (a stuck transaction). That player's callbacks answer
    the retryable error within the lock timeout; other players' latency is unaffected."""
    table = Provider(as_server.url, factory, players=2)
    db.session.remove()
    locked_answers: list[tuple[float, tuple[int, Any]]] = []
    other_latency: list[float] = []
    other = Answers()

    def locked_player(i: int) -> None:
        started = time.monotonic()
        answer = table.bet(f"a{i}", player=0, round_id="ra")
        locked_answers.append((time.monotonic() - started, answer))

    with wallet_row_locked(table.users[0]):
        hammer = [threading.Thread(target=locked_player, args=(i,)) for i in range(30)]
        for t in hammer:
            t.start()
        for i in range(60):
            started = time.monotonic()
            other.items.append(table.bet(f"b{i}", player=1, round_id=f"r{i}"))
            other_latency.append(time.monotonic() - started)
        for t in hammer:
            t.join(30)
    assert all(_ok(*a) for a in other.items), _tally(other)
    codes = [_code(*answer) for _, answer in locked_answers]
    assert set(codes) == {"INTERNAL_ERROR"}, codes
    # Server side (the callback log's latency, from arrival to answer): within the lock
    # timeout (2 s) plus scheduling slack on a loaded 2-core machine.
    server_ms = db.session.scalars(
        sa.select(ProviderCallback.latency_ms).where(
            ProviderCallback.provider_code == table.code,
            ProviderCallback.verdict == "INTERNAL_ERROR",
        )
    ).all()
    assert len(server_ms) == 30
    assert max(server_ms) < 2000 + 1000, sorted(server_ms)
    client_waits = sorted(waited for waited, _ in locked_answers)
    assert cash(table.users[0]) == (100_00, 0)
    assert cash(table.users[1]) == (40_00, 0)
    # The lock is gone: the provider's retries go through, each once.
    retried = burst(
        [lambda i=i: table.bet(f"a{i}", player=0, round_id="ra") for i in range(30)], workers=8
    )
    assert retried.count(lambda s, b: _ok(s, b)) == 30
    assert cash(table.users[0]) == (70_00, 0)
    figure(
        "held wallet lock (6 s)",
        locked_player_requests=30,
        locked_answers=_tally(Answers([a for _, a in locked_answers])),
        locked_server_ms_p50=round(statistics.median(server_ms)),
        locked_server_ms_max=round(max(server_ms)),
        locked_client_s_p50=round(statistics.median(client_waits), 2),
        other_player_requests=60,
        other_p50_ms=round(statistics.median(other_latency) * 1000, 1),
        other_p99_ms=round(p99(other_latency) * 1000, 1),
        http_5xx=0,
        money_delta_locked="0.00 while locked, 30.00 after retries",
    )
    reconcile_clean()


def test_a_hot_wallet_and_an_exhausted_pool_answer_retryable_never_500(
    app,
    requires_postgres,
    server_database_url,
    private_redis,
    committed_db,
    factory,
    monkeypatch,
    tmp_path,
):
    """A small pool (2 connections, no overflow, 1 s wait). First 400 bets at once on one
    wallet; then 300 bets over 30 players with 60 balance reads of a signed-in player at
    the same time. Callbacks answer ok, INSUFFICIENT_FUNDS or the retryable error, the API
    200 or 503: never a 500, and the money is exactly the ok answers."""
    port = free_port()
    env = fault_env(
        server_database_url, private_redis.url, port, DB_POOL_SIZE="2", DB_MAX_OVERFLOW="0",
        DB_POOL_TIMEOUT="1",
    )  # fmt: skip
    monkeypatch.setitem(app.config, "ENCRYPTION_KEY", env["ENCRYPTION_KEY"])
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", env["AUDIT_CHAIN_KEY"])
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        hot = Provider(server.url, factory, cash=100_00)
        wide = Provider(server.url, factory, players=30, cash=100_00)
        reader = factory.player()
        username = reader.username
        db.session.remove()
        status, body = post(
            f"{server.url}/api/auth/login",
            json={"username": username, "password": "Passw0rd-Long-1!"},
        )
        assert status == 200, body
        bearer = {"Authorization": f"Bearer {body['token']['access_token']}"}

        started = time.monotonic()
        hot_answers = burst(
            [lambda i=i: hot.bet(f"t{i}", round_id=f"r{i}") for i in range(400)], workers=64
        )
        hot_seconds = time.monotonic() - started

        def balance() -> tuple[int, Any]:
            try:
                response = requests.get(
                    f"{server.url}/api/user/balance", headers=bearer, timeout=30
                )
            except requests.RequestException as exc:
                return 0, type(exc).__name__
            return response.status_code, response.headers.get("Retry-After")

        calls: list[Any] = [
            lambda i=i: wide.bet(f"w{i}", player=2 + i % 28, round_id=f"w{i}") for i in range(120)
        ]
        calls[::4] = [balance] * len(calls[::4])
        # Two players' wallets are held by a stuck transaction; their callbacks take both
        # pooled connections while they wait for the lock (up to 2 s): the pool is empty.
        with wallet_row_locked(wide.users[0]), wallet_row_locked(wide.users[1]):
            blockers = [
                threading.Thread(target=wide.bet, args=(f"x{p}",), kwargs={"player": p})
                for p in (0, 1)
            ]
            for t in blockers:
                t.start()
            _wait_for_lock_waiters(2)
            mixed = burst(calls, workers=32)
            for t in blockers:
                t.join(30)
    hot_tally = _tally(hot_answers)
    assert set(hot_tally) <= {"ok", "INSUFFICIENT_FUNDS", "INTERNAL_ERROR"}, hot_tally
    hot_oks = hot_tally.get("ok", 0)
    assert cash(hot.users[0]) == (100_00 - hot_oks * 100, 0)
    reads = [item for call, item in zip(calls, mixed.items, strict=True) if call is balance]
    bets = Answers(
        [item for call, item in zip(calls, mixed.items, strict=True) if call is not balance]
    )
    read_tally = {str(s): [s for s, _ in reads].count(s) for s in sorted({s for s, _ in reads})}
    assert set(read_tally) <= {"200", "503"}, read_tally
    assert all(retry == "2" for status, retry in reads if status == 503), reads
    bet_tally = _tally(bets)
    assert set(bet_tally) <= {"ok", "INTERNAL_ERROR"}, bet_tally
    spent = sum(100_00 - cash(u)[0] for u in wide.users[2:])
    assert spent == bet_tally.get("ok", 0) * 100
    assert [cash(u) for u in wide.users[:2]] == [(100_00, 0), (100_00, 0)]
    figure(
        "one hot wallet (pool 2, 400 concurrent bets)",
        answers=hot_tally,
        http_5xx=hot_answers.server_errors(),
        seconds=round(hot_seconds, 1),
        money_delta=f"-{hot_oks}.00 = {hot_oks} ok bets",
    )
    assert read_tally.get("503", 0) > 0, read_tally  # the pool really was exhausted
    figure(
        "pool exhaustion (pool 2 held by lock waiters; 90 bets over 28 players + 30 reads)",
        bet_answers=bet_tally,
        read_answers=read_tally,
        http_500=sum(1 for s, _ in reads if s >= 500 and s != 503) + bets.server_errors(),
        money_delta=f"-{spent / 100:.2f} = {bet_tally.get('ok', 0)} ok bets",
    )
    reconcile_clean()


def test_redis_killed_under_callback_load_callbacks_keep_settling(
    as_server, private_redis, committed_db, factory
):
    """Redis dies for a while in the middle of steady callback traffic: callbacks keep being
    answered ok (rate limits fall back per process, events wait in the outbox)."""
    table = Provider(as_server.url, factory, players=4, cash=1000_00)
    db.session.remove()
    down_seconds = float(__import__("os").environ.get("FAULT_REDIS_DOWN_SECONDS", "8"))
    answers = Answers()
    stop = threading.Event()

    def traffic(player: int) -> None:
        i = 0
        while not stop.is_set():
            answers.items.append(
                table.bet(f"p{player}-{i}", player=player, round_id=f"r{player}-{i}")
            )
            i += 1

    threads = [threading.Thread(target=traffic, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    private_redis.kill()
    killed_at = time.monotonic()
    before_kill = len(answers.items)
    time.sleep(down_seconds)
    during = len(answers.items) - before_kill
    private_redis.start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(30)
    tally = _tally(answers)
    odd = [item for item in answers.items if not _ok(*item)]
    # Every answer ok, but for a rare retryable 503 (seen once in many runs, at the moment
    # Redis went away: nothing moved for it); never a 500, never anything else.
    assert set(tally) <= {"ok", "HTTP 503"}, (tally, odd, _server_errors(as_server))
    assert tally.get("HTTP 503", 0) <= len(answers.items) // 100, (odd, _server_errors(as_server))
    assert during > 0
    spent = sum(1000_00 - cash(u)[0] for u in table.users)
    assert spent == tally["ok"] * 100
    figure(
        f"Redis killed for {down_seconds:.0f} s under callback load",
        requests=len(answers.items),
        settled_while_down=during,
        answers=tally,
        http_5xx=answers.server_errors(),
        money_delta=f"-{spent / 100:.2f} = {tally['ok']} ok bets",
        outage_s=round(time.monotonic() - killed_at, 1),
    )
    reconcile_clean()


def test_redis_killed_mid_burst_of_withdrawals_no_500_and_retries_hold_once(
    app, as_server, private_redis, committed_db, factory
):
    """40 players request a 40.00 withdrawal at once with an Idempotency-Key; Redis dies
    0.3 s in. No answer is a 500; every retry with the same key ends with exactly one 40.00
    hold per player."""
    sandbox_gateway()
    players = []
    for _ in range(40):
        player = factory.player()
        with atomic():
            db.session.get(User, player.id).kyc_status = "approved"
        fund(player.id, 100_00)
        players.append(player)
    usernames = [player.username for player in players]
    user_ids = [player.id for player in players]
    db.session.remove()
    logins = burst(
        [
            lambda name=name: post(
                f"{as_server.url}/api/auth/login",
                json={"username": name, "password": "Passw0rd-Long-1!"},
            )
            for name in usernames
        ],
        workers=8,
    )
    assert logins.statuses() == [200] * 40, _tally(logins)
    tokens = [body["token"]["access_token"] for _, body in logins.items]
    keys = [uuid.uuid4().hex for _ in players]
    body = {"amount": "40.00", "method": "sandbox", "currency": "EUR"}

    def request(i: int):
        return post(
            f"{as_server.url}/api/withdrawals/request",
            json=body,
            headers={"Authorization": f"Bearer {tokens[i]}", "Idempotency-Key": keys[i]},
        )

    killer = threading.Timer(0.3, private_redis.kill)
    killer.start()
    first = burst([lambda i=i: request(i) for i in range(40)], workers=40)
    killer.join()
    private_redis.start()
    recovered_at = time.monotonic()
    retry = burst([lambda i=i: request(i) for i in range(40)], workers=8)
    first_tally = {str(s): first.statuses().count(s) for s in sorted(set(first.statuses()))}
    assert set(first.statuses()) <= {201, 503}, first.items
    assert retry.statuses() == [201] * 40, retry.items
    for user_id in user_ids:
        assert cash(user_id) == (60_00, 40_00)
    figure(
        "Redis killed 0.3 s into 40 concurrent withdrawal requests",
        requests=80,
        first_answers=first_tally,
        retry_answers={"201": 40},
        http_5xx=first.server_errors() + retry.server_errors(),
        money="each player holds exactly 40.00",
        retry_done_s=round(time.monotonic() - recovered_at, 1),
    )
    reconcile_clean()


def test_terminated_backends_under_load_answer_retryable_and_lose_nothing(
    app, as_server, committed_db, factory
):
    """pg_terminate_backend on every server connection, three times during a burst: the
    answers are ok or the retryable error, and the provider's retries apply each bet once."""
    table = Provider(as_server.url, factory, players=4, cash=1000_00)
    db.session.remove()
    calls = [lambda i=i: table.bet(f"k{i}", player=i % 4, round_id=f"r{i}") for i in range(240)]
    stop = threading.Event()
    terminated = 0

    def terminator() -> None:
        nonlocal terminated
        for _ in range(3):
            if stop.wait(0.4):
                return
            with app.app_context(), db.engine.connect() as conn:
                terminated += conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": SERVER_APP_NAME},
                ).scalar_one()

    killer = threading.Thread(target=terminator)
    killer.start()
    answers = burst(calls, workers=16)
    stop.set()
    killer.join()
    tally = _tally(answers)
    assert set(tally) <= {"ok", "INTERNAL_ERROR"}, tally
    failed = [i for i, item in enumerate(answers.items) if not _ok(*item)]
    retried = burst([calls[i] for i in failed], workers=8)
    assert retried.count(lambda s, b: _ok(s, b)) == len(failed), _tally(retried)
    spent = sum(1000_00 - cash(u)[0] for u in table.users)
    assert spent == 240 * 100
    figure(
        "pg_terminate_backend x3 under 240 concurrent bets",
        backends_terminated=terminated,
        answers=tally,
        http_5xx=answers.server_errors(),
        retried=len(failed),
        money_delta=f"-{spent / 100:.2f} = 240 bets exactly once",
    )
    reconcile_clean()


def test_hostile_bodies_get_4xx_and_change_nothing(as_server, committed_db, factory):
    table = Provider(as_server.url, factory)
    db.session.remove()
    deep = b'{"action": "bet", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    results = {
        "callback, 12 MiB unsigned": post(table.url, data=b"x" * (12 * 1024 * 1024)),
        "callback, 200 kB deep JSON": post(
            table.url,
            data=deep,
            headers={"X-Signature": native_signature(SECRET, deep)},
        ),
        "webhook, 200 kB deep JSON": post(
            f"{as_server.url}/api/payment/webhook/sandbox", data=deep
        ),
        "API, 10k-deep JSON": post(
            f"{as_server.url}/api/auth/login",
            data=b"[" * 10_000 + b"]" * 10_000,
            headers={"Content-Type": "application/json"},
        ),
        "amount 1e5000": table.bet("h1", "1e5000"),
        "amount 1E+999999999": table.bet("h2", "1E+999999999"),
        "amount 1e-999999999": table.bet("h3", "1e-999999999"),
    }
    dup = (
        b'{"action": "bet", "session_token": "%s", "game_id": "%s", "currency": "EUR",'
        b' "transaction_id": "h4", "round_id": "r1", "amount": "1.00", "amount": "99.00"}'
        % (table.tokens[0].encode(), table.game.encode())
    )
    results["signed body with amount twice"] = post(
        table.url, data=dup, headers={"X-Signature": native_signature(SECRET, dup)}
    )
    summary = {name: _code(*answer) for name, answer in results.items()}
    assert summary["callback, 12 MiB unsigned"] in ("HTTP 413", "HTTP 0")
    assert summary["callback, 200 kB deep JSON"] == "HTTP 413"
    assert summary["webhook, 200 kB deep JSON"] == "HTTP 413"
    assert summary["API, 10k-deep JSON"] == "HTTP 400"
    for name in ("amount 1e5000", "amount 1E+999999999", "amount 1e-999999999",
                 "signed body with amount twice"):  # fmt: skip
        assert summary[name] == "VALIDATION_ERROR", summary
    assert cash(table.users[0]) == (100_00, 0)
    figure("hostile bodies", **{k.replace(" ", "_"): v for k, v in summary.items()})
    reconcile_clean()


def test_a_worker_killed_mid_burst_loses_nothing_and_retries_apply_once(
    as_server, committed_db, factory
):
    """SIGKILL the gunicorn worker in the middle of 200 concurrent bets. Requests in flight
    get no answer (their transaction committed or rolled back whole); gunicorn starts a new
    worker; the provider's retries apply each bet exactly once."""
    table = Provider(as_server.url, factory, players=4, cash=1000_00)
    db.session.remove()
    calls = [
        lambda i=i: table.bet(f"w{i}", player=i % 4, round_id=f"w{i}", timeout=10)
        for i in range(200)
    ]
    killed: list[int] = []

    def kill_worker() -> None:
        for pid in as_server.worker_pids():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    timer = threading.Timer(0.5, kill_worker)
    timer.start()
    answers = burst(calls, workers=16)
    timer.join()
    assert killed, "no gunicorn worker to kill"
    back_at = time.monotonic()
    deadline = back_at + 30
    while post(f"{as_server.url}/api/provider-callback/{table.code}", data=b"{}")[0] != 200:
        assert time.monotonic() < deadline, "gunicorn did not start a new worker"
        time.sleep(0.2)
    recovered_s = time.monotonic() - back_at
    tally = _tally(answers)
    assert answers.server_errors() == 0, tally
    failed = [i for i, item in enumerate(answers.items) if not _ok(*item)]
    retried = burst([calls[i] for i in failed], workers=8)
    assert retried.count(lambda s, b: _ok(s, b)) == len(failed), _tally(retried)
    spent = sum(1000_00 - cash(u)[0] for u in table.users)
    assert spent == 200 * 100
    figure(
        "gunicorn worker SIGKILLed during 200 concurrent bets",
        answers=tally,
        http_5xx=0,
        retried=len(failed),
        worker_back_s=round(recovered_s, 1),
        money_delta=f"-{spent / 100:.2f} = 200 bets exactly once",
    )
    reconcile_clean()
    # Every posting the server made under the kill is signed and each wallet continuous.
    report = integrity.verify()
    assert report.ok, report.problems[:5]
    assert report.checked == 4 + 200


def _points(user_id: int) -> int:
    db.session.expire_all()
    account = db.session.get(LoyaltyAccount, user_id)
    return 0 if account is None else account.points


def _points_reach(user_id: int, expected: int, within: float = 2.0) -> float:
    """Seconds from now until the player's points read ``expected`` (fails after ``within``)."""
    start = time.monotonic()
    while True:
        points = _points(user_id)
        elapsed = time.monotonic() - start
        if points == expected:
            return elapsed
        assert elapsed < within, f"points {points}, expected {expected} within {within} s"
        time.sleep(0.005)


def test_loyalty_points_follow_a_bet_within_two_seconds_from_the_background_queue(
    as_server, committed_db, factory
):
    # The live server runs the production profile: after-commit listeners go through the
    # per-process background queue (PLAY_AFTER_COMMIT=background).
    table = Provider(as_server.url, factory)
    user = table.users[0]
    db.session.remove()
    lags = []
    assert _ok(*table.bet("l1", "10.00"))
    lags.append(_points_reach(user, 10))
    assert _ok(*table.bet("l1", "10.00"))  # a replay reaches no listener
    assert _ok(*table.bet("l2", "5.00", round_id="r2"))
    lags.append(_points_reach(user, 15))
    assert _ok(*table.call("refund", transaction_id="l3", reference_transaction_id="l2"))
    lags.append(_points_reach(user, 10))
    loyalty.sweep(grace=timedelta(0))  # the sweep meets what the queue did: nothing twice
    assert _points(user) == 10
    kinds = db.session.scalars(
        sa.select(LoyaltyEvent.kind).where(LoyaltyEvent.user_id == user).order_by(LoyaltyEvent.id)
    ).all()
    assert kinds == ["wager", "wager", "reversal"]
    figure("loyalty after commit", max_lag_ms=round(max(lags) * 1000, 1))
    reconcile_clean()


def _board_reaches(url: str, headers: dict[str, str], expected: str, within: float = 2.0) -> float:
    """Seconds from now until the live server's leaderboard shows the caller at ``expected``
    (its own read: Redis while the tournament runs, else PostgreSQL)."""
    start = time.monotonic()
    while True:
        status, body = _get_json(url, headers)
        elapsed = time.monotonic() - start
        me = (body.get("data") or {}).get("me") if status == 200 else None
        if me is not None and me["score"] == expected:
            return elapsed
        assert elapsed < within, f"board {status} {body}, expected {expected} within {within} s"
        time.sleep(0.005)


def _get_json(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    r = requests.get(url, headers=headers, timeout=10)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, None


def test_a_tournament_leaderboard_follows_a_bet_within_two_seconds_from_the_background_queue(
    as_server, committed_db, factory, token_for
):
    # Tournament scores are an after-commit listener: the production profile's background
    # queue writes them after the callback answered; the board must show them within 2 s.
    table = Provider(as_server.url, factory)
    user = table.users[0]
    tour = tournaments.create(
        {
            "name": "Lag Sprint",
            "currency": "EUR",
            "starts_at": utcnow() - timedelta(minutes=1),
            "ends_at": utcnow() + timedelta(hours=1),
            "prizes": ["5.00"],
        },
        actor=factory.staff("admin"),
    )
    tour_id = tour.id
    headers = token_for(db.session.get(User, user))
    board = f"{as_server.url}/api/tournaments/{tour_id}/leaderboard?limit=10"
    db.session.remove()
    lags = []
    assert _ok(*table.bet("t1", "10.00"))
    lags.append(_board_reaches(board, headers, "10.00"))
    assert _ok(*table.bet("t1", "10.00"))  # a replay reaches no listener
    assert _ok(*table.bet("t2", "5.00", round_id="r2"))
    lags.append(_board_reaches(board, headers, "15.00"))
    assert _ok(*table.call("refund", transaction_id="t3", reference_transaction_id="t2"))
    lags.append(_board_reaches(board, headers, "10.00"))
    assert tournaments.sweep(grace=timedelta(0)) == 0  # the sweep meets what the queue did
    kinds = db.session.scalars(
        sa.select(TournamentScoreEvent.kind)
        .where(TournamentScoreEvent.tournament_id == tour_id)
        .order_by(TournamentScoreEvent.id)
    ).all()
    assert kinds == ["bet", "bet", "reversal"]
    figure("tournament score after commit", max_lag_ms=round(max(lags) * 1000, 1))
    reconcile_clean()
