"""The conformance runner against a live server (gunicorn, production profile), for every
protocol it has a driver for, as CI runs it; and against a server that answers wrongly."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.conformance.runner import DRIVERS, scenarios_for
from app.core.config import LOOPBACK_IN_PRODUCTION_ACK
from tests.live import free_port, gunicorn, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(app, database_url, redis_url, tmp_path_factory):
    if not database_url.startswith("postgresql") or not redis_url:
        pytest.skip("the live server needs PostgreSQL and Redis")
    port = free_port()
    # The runner serves the aggregator's API on 127.0.0.1 (free rounds): loopback allowed,
    # which the production profile takes only with the staging acknowledgement.
    env = server_env(
        database_url,
        redis_url,
        port,
        PROVIDER_CACHE_SECONDS="1",
        OUTBOUND_ALLOW_LOOPBACK="true",
        OUTBOUND_LOOPBACK_IN_PRODUCTION=LOOPBACK_IN_PRODUCTION_ACK,
    )
    with gunicorn(env, tmp_path_factory.mktemp("conformance") / "gunicorn.log") as server:
        yield server


def conformance(live, protocol: str, base_url: str, timeout: float = 90):
    """Run the CLI as an operator would, with the server's configuration; never raises."""
    started = time.monotonic()
    try:
        result = live.run(
            "-m", "flask", "--app", "wsgi", "jackpotx", "providers", "conformance",
            "--protocol", protocol, "--base-url", base_url, timeout=timeout,
        )  # fmt: skip
        code, out = 0, result.stdout
    except AssertionError as exc:
        code, out = 1, str(exc)
    return code, out, time.monotonic() - started


@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_the_runner_passes_every_scenario_against_the_live_server(live, committed_db, protocol):
    code, out, seconds = conformance(live, protocol, live.url)
    lines = [line for line in out.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert code == 0, out
    assert len(lines) == len(scenarios_for(protocol)) >= 30
    assert all(line.startswith("PASS ") for line in lines)
    assert f"{len(lines)} passed, 0 failed" in out
    assert seconds < 60
    if protocol in ("softswiss", "hub88"):
        # Free rounds issued through the runner's aggregator API, and their wins paid once.
        assert sum(line.startswith("PASS free_rounds.") for line in lines) == 2, out


class _Liar(BaseHTTPRequestHandler):
    """A wallet that accepts everything, never changes the balance and signs nothing."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/user/" in self.path or "/transaction/" in self.path:
            answer = {"status": "RS_OK", "balance": 10_000_000, "currency": "EUR", "user": "1"}
        else:
            answer = {"status": "ok", "balance": "100.00", "bonus_balance": "0.00",
                      "currency": "EUR", "transaction_id": "1"}  # fmt: skip
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


@pytest.fixture
def liar() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_the_runner_fails_a_wallet_that_answers_wrongly(live, committed_db, liar, protocol):
    code, out, _seconds = conformance(live, protocol, liar)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAIL ")]
    names = " ".join(failed)
    # Forged signatures, duplicates, missing funds and refused players must all be caught
    # (a protocol whose token does not cover the body: a missing token).
    forged = "security.bad_signature_is_refused"
    if forged.split(".")[1] in DRIVERS[protocol].not_applicable:
        forged = "security.missing_signature_is_refused"
    for name in (
        forged,
        "idempotency.same_bet_id_with_another_amount_is_a_duplicate",
        "player.insufficient_funds_answer_the_balance",
        "player.self_excluded_player_may_not_bet",
        "happy.bet_debits",
    ):
        assert name in names, out
    assert "sent POST" in failed[0]
    assert "-> got HTTP 200" in failed[0]
