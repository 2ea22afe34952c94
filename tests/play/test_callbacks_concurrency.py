"""Racing callbacks on real PostgreSQL: threads, separate connections, real commits."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from app.core.extensions import db
from app.play.models import GameRound, ProviderTransaction
from app.wallet.models import LedgerTransaction
from tests.moneykit import Table, open_table, reconcile_clean

pytestmark = pytest.mark.postgres


def _race(app, table: Table, payloads: list[dict], workers: int = 32) -> list[dict]:
    barrier = threading.Barrier(min(workers, len(payloads)), timeout=30)

    def send(payload: dict) -> dict:
        body = json.dumps(payload).encode()
        with app.test_client() as client:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            response = client.post(
                f"/api/provider-callback/{table.provider_code}",
                data=body,
                headers={"Content-Type": "application/json", "X-Signature": table.sign(body)},
            )
            db.session.remove()
            return response.get_json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, payloads))


def _payload(table: Table, action: str, **fields) -> dict:
    return {
        "action": action,
        "session_token": table.token,
        "game_id": table.game_external,
        "currency": "EUR",
        **fields,
    }


def test_hundred_threads_racing_one_unit_bets_on_fifty_units_get_exactly_fifty(
    app, requires_postgres, committed_db, client, factory
):
    table = open_table(client, factory, cash=50)
    payloads = [
        _payload(table, "bet", transaction_id=f"t{n}", round_id=f"r{n}", amount="0.01")
        for n in range(100)
    ]
    answers = _race(app, table, payloads, workers=100)
    verdicts = Counter(a["status"] if a["status"] == "ok" else a["code"] for a in answers)
    assert verdicts == {"ok": 50, "INSUFFICIENT_FUNDS": 50}
    assert table.balances() == (0, 0)
    assert db.session.scalar(sa.select(sa.func.count(ProviderTransaction.id))) == 50
    reconcile_clean()


def test_every_action_replayed_concurrently_has_one_effect(
    app, requires_postgres, committed_db, client, factory
):
    table = open_table(client, factory, cash=100_00)
    steps = [
        _payload(table, "bet", transaction_id="b1", round_id="r1", amount="10.00"),
        _payload(table, "win", transaction_id="w1", round_id="r1", amount="25.00"),
        _payload(table, "bet", transaction_id="b2", round_id="r1", amount="5.00"),
        _payload(table, "refund", transaction_id="f1", reference_transaction_id="b2"),
        _payload(table, "rollback", transaction_id="x1", reference_transaction_id="w1"),
        _payload(table, "end_round", transaction_id="e1", round_id="r1"),
    ]
    for step in steps:
        answers = _race(app, table, [step] * 12, workers=12)
        assert {a["status"] for a in answers} == {"ok"}, answers
        assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1
    # bet 10, win 25 (rolled back), bet 5 (refunded): one effect each.
    assert table.balances() == (90_00, 0)
    assert db.session.scalar(sa.select(sa.func.count(LedgerTransaction.id))) == 6
    rnd = db.session.scalar(sa.select(GameRound))
    assert (rnd.total_bet, rnd.total_win, rnd.total_refund, rnd.status) == (
        15_00,
        0,
        5_00,
        "closed",
    )
    reconcile_clean()


def test_rollback_racing_its_own_bet_leaves_no_money_moved(
    app, requires_postgres, committed_db, client, factory
):
    table = open_table(client, factory, cash=100_00)
    for n in range(10):
        bet = _payload(table, "bet", transaction_id=f"b{n}", round_id=f"r{n}", amount="1.00")
        rollback = _payload(
            table, "rollback", transaction_id=f"x{n}", reference_transaction_id=f"b{n}"
        )
        answers = _race(app, table, [bet, rollback, bet, rollback], workers=4)
        assert answers[1]["status"] == "ok"
    # Whichever arrived first, every bet ends up reversed or refused: no money moved.
    assert table.balances() == (100_00, 0)
    reconcile_clean()


def test_bets_racing_end_round_never_land_in_a_closed_round(
    app, requires_postgres, committed_db, client, factory
):
    table = open_table(client, factory, cash=100_00)
    first = _payload(table, "bet", transaction_id="b0", round_id="r1", amount="1.00")
    assert _race(app, table, [first], workers=1)[0]["status"] == "ok"
    payloads = [
        _payload(table, "bet", transaction_id=f"b{n}", round_id="r1", amount="1.00")
        for n in range(1, 20)
    ]
    payloads.insert(10, _payload(table, "end_round", transaction_id="e1", round_id="r1"))
    answers = _race(app, table, payloads, workers=20)
    ok_bets = sum(
        1
        for p, a in zip(payloads, answers, strict=True)
        if p["action"] == "bet" and a["status"] == "ok"
    )
    rnd = db.session.scalar(sa.select(GameRound))
    assert rnd.status == "closed"
    assert rnd.bets_count == ok_bets + 1
    assert table.balances() == (100_00 - rnd.total_bet, 0)
    reconcile_clean()


def test_a_win_racing_a_bet_of_its_round_splits_by_the_stakes_it_sees_and_never_deadlocks(
    app, requires_postgres, committed_db, client, factory, monkeypatch
):
    """The win's round update runs in its claim + lock statement, after the wallet lock (the
    lock order of every callback: wallet, then round). Raced against a bet into the same round
    on separate connections (the per-player gate opened so they really meet in PostgreSQL),
    the win is split by the stakes of whichever committed first, and neither is refused."""
    monkeypatch.setitem(app.config, "CALLBACK_MAX_INFLIGHT_PER_PLAYER", 8)
    for n in range(6):
        table = open_table(client, factory, cash=10_00, bonus=5_00)
        assert table.bet(f"b0-{n}", "5.00", round_id="r")["status"] == "ok"  # cash 5.00
        answers = _race(
            app,
            table,
            [
                _payload(table, "bet", transaction_id=f"b1-{n}", round_id="r", amount="8.00"),
                _payload(table, "win", transaction_id=f"w1-{n}", round_id="r", amount="2.60"),
            ],
            workers=2,
        )
        assert [a["status"] for a in answers] == ["ok", "ok"], answers
        rows = {
            key: (tx_id, bonus)
            for key, tx_id, bonus in db.session.execute(
                sa.select(
                    LedgerTransaction.idempotency_key,
                    LedgerTransaction.id,
                    LedgerTransaction.bonus_delta,
                ).where(LedgerTransaction.idempotency_key.in_((f"b1-{n}", f"w1-{n}")))
            )
        }
        bet_first = rows[f"b1-{n}"][0] < rows[f"w1-{n}"][0]
        # The bet pays 5.00 cash + 3.00 bonus; a win after it returns 3/13 of 2.60 as bonus.
        assert rows[f"w1-{n}"][1] == (2_60 * 3_00 // 13_00 if bet_first else 0)
    reconcile_clean()
