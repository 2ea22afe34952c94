"""A Prometheus scrape of a running production-profile server (two gunicorn workers of the
API group, multiprocess mode) shows the figures an SRE watches moving under callback load:
callbacks by verdict, requests and latency by route, the pool, lock waits and the outages
they end in (issue 18, "Metrics")."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from tests.faults.conftest import burst, fault_env, post
from tests.faults.test_money_path_faults import Provider, cash
from tests.live import LiveServer, free_port, gunicorn
from tests.moneykit import fund, reconcile_clean, wallet_row_locked
from tests.payments_helpers import sandbox_gateway

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CALLBACK_ROUTE = "/api/provider-callback/<string:provider_code>"


@pytest.fixture(scope="module")
def metered(app, server_database_url, private_redis, tmp_path_factory) -> Iterator[LiveServer]:
    """``wsgi_api:app`` (the callbacks + API group) with two workers counting into one
    PROMETHEUS_MULTIPROC_DIR: any scrape answers the sum of both."""
    port = free_port()
    env = fault_env(
        server_database_url,
        private_redis.url,
        port,
        SOCKETIO_SERVER="false",
        WEB_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path_factory.mktemp("prometheus")),
    )
    log = tmp_path_factory.mktemp("metrics") / "gunicorn.log"
    with gunicorn(env, log, app_module="wsgi_api:app") as server:
        yield server


@pytest.fixture
def server(app, metered, monkeypatch) -> LiveServer:
    """Rows this process writes (provider secrets, tokens) readable by the live server."""
    for key in ("ENCRYPTION_KEY", "AUDIT_CHAIN_KEY", "JWT_SECRET_KEY"):
        monkeypatch.setitem(app.config, key, metered.env[key])
    return metered


def figures(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(server.scrape()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(seen: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in seen.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def test_callback_load_moves_callbacks_requests_latency_and_pool_figures(
    server, committed_db, factory
):
    table = Provider(server.url, factory, players=4)
    db.session.remove()
    before = figures(server)
    bets = burst(
        [
            lambda i=i: table.bet(f"m{i}", player=i % 4, round_id=f"r{i}", amount="0.50")
            for i in range(80)
        ],
        workers=8,
    )
    forged = burst(
        [
            lambda i=i: post(
                table.url,
                data=b'{"action": "bet"}',
                headers={"Content-Type": "application/json", "X-Signature": "f" * 64},
            )
            for i in range(5)
        ],
        workers=5,
    )
    assert bets.statuses() == [200] * 80
    assert forged.statuses() == [200] * 5  # the protocol's own refusal, not an HTTP error
    after = figures(server)

    ok = {"provider": table.code, "verdict": "ok"}
    assert delta(before, after, "jackpotx_callbacks_total", action="bet", **ok) == 80
    refused = {"provider": table.code, "verdict": "INVALID_SIGNATURE"}
    assert delta(before, after, "jackpotx_callbacks_total", **refused) == 5
    route = {"route": CALLBACK_ROUTE, "method": "POST"}
    assert delta(before, after, "jackpotx_http_requests_total", status="200", **route) == 85
    assert delta(before, after, "jackpotx_http_request_duration_seconds_count", **route) == 85
    # Two workers, ten connections each: the pool levels are summed over the live workers
    # once each has answered (they sample at the end of a request).
    assert total(after, "jackpotx_db_pool_size") >= 10
    assert total(after, "jackpotx_db_pool_checked_out") >= 0
    assert ("jackpotx_db_lock_waiters", ()) in after
    assert ("jackpotx_outbox_pending", ()) in after
    for user_id in table.users:
        assert cash(user_id) == (90_00, 0)
    reconcile_clean()


def test_a_held_wallet_lock_shows_as_lock_waits_then_as_lock_timeouts(
    server, committed_db, factory
):
    """A stuck transaction holds a player's wallet row: the scrape shows connections waiting
    for it, then the API's 503 counted as a lock timeout."""
    sandbox_gateway()
    player = factory.player()
    with atomic():
        db.session.get(User, player.id).kyc_status = "approved"
    fund(player.id, 100_00)
    username = player.username
    db.session.remove()
    status, login = post(
        f"{server.url}/api/auth/login", json={"username": username, "password": "Passw0rd-Long-1!"}
    )
    assert status == 200, login
    token = login["token"]["access_token"]
    before = figures(server)
    answers: list[tuple[int, Any]] = []

    def withdraw() -> None:
        answers.append(
            post(
                f"{server.url}/api/withdrawals/request",
                json={"amount": "40.00", "method": "sandbox", "currency": "EUR"},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
        )

    with wallet_row_locked(player.id):
        waiting = threading.Thread(target=withdraw)
        waiting.start()
        deadline = time.monotonic() + 10
        while (seen := figures(server))[("jackpotx_db_lock_waiters", ())] < 1:
            assert time.monotonic() < deadline, "no lock waiter ever showed in the scrape"
            time.sleep(0.05)
        assert seen[("jackpotx_db_lock_wait_longest_seconds", ())] > 0
        waiting.join(30)
    [(status, body)] = answers
    assert status == 503, body
    after = figures(server)
    lock_timeout = {"dependency": "database", "reason": "lock_timeout"}
    assert delta(before, after, "jackpotx_outages_total", **lock_timeout) == 1
    assert after[("jackpotx_db_lock_waiters", ())] == 0
    assert cash(player.id) == (100_00, 0)  # the refused withdrawal moved nothing
    reconcile_clean()
