"""Jackpots II: provider-reported wins (``jackpot_win``), must-drop by time, contributions of
refunded bets reversed, and the pool's books: amount == seeds + contributions - payouts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core.bus import subscribe
from app.core.errors import ValidationError
from app.core.extensions import db
from app.play.callbacks.adapters import pragmatic_hash
from app.play.models import GameRound, Provider
from app.prizes import jackpots
from app.prizes.models import JackpotContribution, JackpotPool, JackpotWin
from app.wallet.models import LedgerTransaction
from tests.moneykit import open_table, reconcile_clean


def provider_id(table) -> int:
    return db.session.scalar(sa.select(Provider.id).where(Provider.code == table.provider_code))


def make_pool(factory, **kw) -> JackpotPool:
    data = {"name": "Mega", "currency": "EUR", "seed_amount": "100.00", "contribution_percent": "1"}
    data.update(kw)
    return jackpots.create_pool(data, actor=factory.staff("admin"))


def amount(pool_id: int) -> int:
    db.session.expire_all()
    return jackpots.amount_of(db.session.get(JackpotPool, pool_id))


def books_of(pool_id: int) -> tuple[int, int]:
    """(current amount, seeds of every cycle + every contribution - every payout)."""
    db.session.expire_all()
    pool = db.session.get(JackpotPool, pool_id)
    contributed = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(JackpotContribution.amount), 0)).where(
            JackpotContribution.pool_id == pool_id
        )
    )
    paid = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(JackpotWin.amount), 0)).where(
            JackpotWin.pool_id == pool_id, JackpotWin.status == "paid"
        )
    )
    return jackpots.amount_of(pool), pool.seed_amount * pool.cycle + contributed - paid


def clean_books(*pool_ids: int) -> None:
    reconcile_clean()
    assert jackpots.reconcile() == []
    for pool_id in pool_ids:
        current, expected = books_of(pool_id)
        assert current == expected


def jackpot_win(table, tx: str, pool_id, amount, round_id: str = "r1", **kw):
    return table.call(
        "jackpot_win", transaction_id=tx, round_id=round_id, amount=amount, jackpot_id=pool_id, **kw
    )


# --------------------------------------------------------------------------- provider wins


def test_a_reported_jackpot_pays_once_from_the_pool_and_restarts_it(client, factory):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="50.00", contribution_percent="10")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    assert table.bet("b1", "10.00")["status"] == "ok"  # pool 51.00
    seen = []
    unsubscribe = subscribe(seen.append)
    try:
        first = jackpot_win(table, "jp1", pool.id, "51.00")
    finally:
        unsubscribe()
    assert first["status"] == "ok", first
    assert first["balance"] == "141.00"
    again = jackpot_win(table, "jp1", pool.id, "51.00")
    assert again == first  # replay: the first answer, nothing paid twice
    assert table.balances() == (141_00, 0)
    win = db.session.scalar(sa.select(JackpotWin).where(JackpotWin.pool_id == pool.id))
    rnd = db.session.scalar(sa.select(GameRound).where(GameRound.external_round_id == "r1"))
    assert (win.trigger, win.amount, win.status, win.game_round_id) == (
        "provider",
        51_00,
        "paid",
        rnd.id,
    )
    assert win.evidence["provider_transaction_id"] == "jp1"
    posted = db.session.scalars(
        sa.select(LedgerTransaction).where(LedgerTransaction.type == "jackpot_win")
    ).all()
    assert [t.cash_delta for t in posted] == [51_00]
    assert amount(pool.id) == 50_00  # back to the seed
    won = [e for e in seen if e.name == "jackpot.update" and e.data.get("won")]
    assert won
    assert won[0].room == "global"
    assert won[0].data["won"]["trigger"] == "provider"
    # Same id, other content: refused, nothing moves.
    assert jackpot_win(table, "jp1", pool.id, "50.00")["code"] == "DUPLICATE_MISMATCH"
    assert table.balances() == (141_00, 0)
    clean_books(pool.id)


def test_a_smaller_reported_amount_leaves_the_rest_in_the_next_cycle(client, factory):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="20.00", contribution_percent="10")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    table.bet("b1", "30.00")  # pool 23.00
    assert jackpot_win(table, "jp1", pool.id, "21.50")["status"] == "ok"
    assert amount(pool.id) == 20_00 + 1_50  # seed + carried remainder
    table.bet("b2", "10.00", round_id="r2")
    assert amount(pool.id) == 22_50
    clean_books(pool.id)


def test_reported_wins_are_refused_for_bad_pools_currencies_and_amounts(client, factory):
    table = open_table(client, factory, cash=100_00)
    mine = make_pool(factory, seed_amount="10.00")
    jackpots.update_pool(mine.id, {"provider_id": provider_id(table)}, actor=None)
    nobodys = make_pool(factory, seed_amount="10.00")  # no provider may report its wins
    usd = make_pool(factory, currency="USD", seed_amount="10.00")
    jackpots.update_pool(usd.id, {"provider_id": provider_id(table)}, actor=None)
    table.bet("b1", "1.00")
    before = table.balances()
    cases = [
        (mine.id, "10.02", {}, "VALIDATION_ERROR"),  # more than the pool holds (10.01)
        (nobodys.id, "1.00", {}, "VALIDATION_ERROR"),
        (usd.id, "1.00", {}, "VALIDATION_ERROR"),  # pool in USD, player plays EUR
        (999_999, "1.00", {}, "VALIDATION_ERROR"),
        ("abc", "1.00", {}, "VALIDATION_ERROR"),
        (mine.id, "1.00", {"currency": "USD"}, "VALIDATION_ERROR"),
        (mine.id, "0", {}, "VALIDATION_ERROR"),
        (mine.id, "-5", {}, "VALIDATION_ERROR"),
        (mine.id, "0.001", {}, "VALIDATION_ERROR"),
        (mine.id, "1e309", {}, "VALIDATION_ERROR"),
        (mine.id, "abc", {}, "VALIDATION_ERROR"),
        (mine.id, "1.00", {"round_id": "nope"}, "ROUND_NOT_FOUND"),
    ]
    for n, (pool_ref, value, extra, code) in enumerate(cases):
        answer = jackpot_win(table, f"x{n}", pool_ref, value, **extra)
        assert answer.get("code") == code, (pool_ref, value, answer)
    assert table.balances() == before
    assert db.session.scalar(sa.select(sa.func.count(JackpotWin.id))) == 0
    paused = make_pool(factory, seed_amount="10.00", status="paused")
    jackpots.update_pool(paused.id, {"provider_id": provider_id(table)}, actor=None)
    assert jackpot_win(table, "p1", paused.id, "1.00")["code"] == "VALIDATION_ERROR"
    clean_books(mine.id)


def test_a_forged_jackpot_win_moves_nothing(client, factory):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="10.00")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    table.bet("b1", "1.00")
    body = json.dumps(
        {
            "action": "jackpot_win",
            "session_token": table.token,
            "game_id": table.game_external,
            "currency": "EUR",
            "transaction_id": "jp1",
            "round_id": "r1",
            "amount": "10.00",
            "jackpot_id": pool.id,
        }
    ).encode()
    forged = table.raw(body, signature="0" * 64).get_json()
    assert forged["code"] == "INVALID_SIGNATURE"
    wrong_secret = table.raw(body, signature=hashlib.sha256(body).hexdigest()).get_json()
    assert wrong_secret["code"] == "INVALID_SIGNATURE"
    assert table.balances() == (99_00, 0)
    assert db.session.scalar(sa.select(sa.func.count(JackpotWin.id))) == 0
    # The genuine request still pays (the forged ones claimed nothing).
    assert table.raw(body).get_json()["status"] == "ok"
    assert table.balances() == (109_00, 0)
    clean_books(pool.id)


def test_a_jackpot_reported_before_its_bet_is_refused_then_paid_on_retry(client, factory):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="10.00")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    early = jackpot_win(table, "jp1", pool.id, "10.00", round_id="late")
    assert early["code"] == "ROUND_NOT_FOUND"
    assert table.balances() == (100_00, 0)
    assert table.bet("b1", "1.00", round_id="late")["status"] == "ok"
    retry = jackpot_win(table, "jp1", pool.id, "10.00", round_id="late")
    assert retry["status"] == "ok", retry
    assert table.balances() == (109_00, 0)
    clean_books(pool.id)


def test_pragmatic_jackpot_win_maps_onto_the_same_service(client, factory):
    table = open_table(client, factory, cash=100_00, protocol="pragmatic")
    pool = make_pool(factory, seed_amount="10.00")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)

    def send(action: str, **params):
        params = {"userId": str(table.user_id), "providerId": "pp", **params}
        params["hash"] = pragmatic_hash(table.secret, params)
        return client.post(
            f"/api/provider-callback/{table.provider_code}/{action}", data=params
        ).get_json()

    common = {"gameId": table.game_external, "roundId": "R1"}
    assert send("bet", reference="B1", amount="2.00", **common)["error"] == 0
    first = send("jackpotWin", reference="J1", amount="5.00", jackpotId=str(pool.id), **common)
    assert first["error"] == 0, first
    assert send("jackpotWin", reference="J1", amount="5.00", jackpotId=str(pool.id), **common) == (
        first
    )
    too_much = send("jackpotWin", reference="J2", amount="500", jackpotId=str(pool.id), **common)
    assert too_much["error"] == 7
    assert table.balances() == (103_00, 0)
    clean_books(pool.id)


@pytest.mark.postgres
def test_concurrent_duplicate_jackpot_reports_pay_once(
    app, requires_postgres, committed_db, client, factory
):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="40.00")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    assert table.bet("b1", "5.00")["status"] == "ok"
    body = json.dumps(
        {
            "action": "jackpot_win",
            "session_token": table.token,
            "game_id": table.game_external,
            "currency": "EUR",
            "transaction_id": "jp-dup",
            "round_id": "r1",
            "amount": "40.05",
            "jackpot_id": pool.id,
        }
    ).encode()
    barrier = threading.Barrier(8, timeout=30)

    def send(_):
        with app.test_client() as c:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            r = c.post(
                f"/api/provider-callback/{table.provider_code}",
                data=body,
                headers={"Content-Type": "application/json", "X-Signature": table.sign(body)},
            )
            db.session.remove()
            return r.get_json()

    with ThreadPoolExecutor(max_workers=8) as ex:
        answers = list(ex.map(send, range(8)))
    assert all(a["status"] == "ok" for a in answers), answers
    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1
    assert table.balances() == (135_05, 0)
    wins = db.session.scalars(sa.select(JackpotWin).where(JackpotWin.pool_id == pool.id)).all()
    assert [(w.amount, w.trigger) for w in wins] == [(40_05, "provider")]
    clean_books(pool.id)


# --------------------------------------------------------------------------- must-drop by time


def _pool_window(factory, **kw) -> JackpotPool:
    return make_pool(factory, seed_amount="10.00", contribution_percent="10", **kw)


def test_the_drop_time_is_committed_inside_its_window(client, factory):
    pool = _pool_window(factory, must_drop_within="1h")
    data = jackpots.pool_json(pool)
    assert data["drop_time_commitment"] == jackpots.drop_time_commitment(
        pool.drop_at, pool.drop_at_salt
    )
    assert pool.cycle_started_at <= pool.drop_at < pool.drop_deadline
    assert pool.drop_deadline - pool.cycle_started_at == timedelta(hours=1)
    assert data["drop_deadline"] == pool.drop_deadline.isoformat()
    for bad in ("abc", "59", -5, "1e309", True, "0.5h"):
        with pytest.raises(ValidationError) as exc:
            _pool_window(factory, must_drop_within=bad)
        assert getattr(exc.value, "code", None) == "VALIDATION_ERROR", bad


def test_the_first_bet_after_the_drop_time_wins_before_the_deadline(client, factory, monkeypatch):
    pool = _pool_window(factory, must_drop_within="2h")
    commitment, deadline, drop_at = pool.drop_at_commitment, pool.drop_deadline, pool.drop_at
    table = open_table(client, factory, cash=100_00)
    other = open_table(client, factory, cash=100_00)
    monkeypatch.setattr(jackpots, "utcnow", lambda: drop_at - timedelta(seconds=1))
    table.bet("b1", "5.00")  # before the drop time: no win
    assert db.session.scalar(sa.select(JackpotWin.id)) is None
    monkeypatch.setattr(jackpots, "utcnow", lambda: drop_at)
    other.bet("b2", "3.00")  # the first bet at the drop time takes it
    win = db.session.scalar(sa.select(JackpotWin).where(JackpotWin.pool_id == pool.id))
    assert (win.trigger, win.status, win.user_id) == ("drop_time", "paid", other.user_id)
    assert win.amount == 10_00 + 50 + 30
    ev = win.evidence
    assert ev["commitment"] == commitment
    assert hashlib.sha256(f"{ev['drop_at']}:{ev['salt']}".encode()).hexdigest() == commitment
    assert ev["drop_at"] == int(drop_at.timestamp()) < int(deadline.timestamp())
    pool = db.session.get(JackpotPool, pool.id)
    assert pool.cycle == 2
    assert pool.drop_at_commitment != commitment
    clean_books(pool.id)


def test_at_the_deadline_the_job_pays_the_last_eligible_bettor(client, factory, monkeypatch):
    pool = _pool_window(factory, must_drop_within="1h")
    deadline = pool.drop_deadline
    first = open_table(client, factory, cash=100_00)
    last = open_table(client, factory, cash=100_00)
    monkeypatch.setattr(jackpots, "utcnow", lambda: pool.cycle_started_at)
    first.bet("b1", "5.00")
    last.bet("b2", "2.00")
    last.refund("rf2", "b2")  # a refunded bet is not eligible...
    last.bet("b3", "1.00", round_id="r3")  # ...but this one is
    monkeypatch.setattr(jackpots, "utcnow", lambda: deadline - timedelta(seconds=1))
    jackpots.run_periodic()
    assert db.session.scalar(sa.select(JackpotWin.id)) is None
    monkeypatch.setattr(jackpots, "utcnow", lambda: deadline)
    jackpots.run_periodic()
    win = db.session.scalar(sa.select(JackpotWin).where(JackpotWin.pool_id == pool.id))
    assert (win.trigger, win.user_id, win.amount) == ("drop_time", last.user_id, 10_60)
    clean_books(pool.id)


def test_a_window_nobody_played_starts_a_new_one(client, factory, monkeypatch):
    pool = _pool_window(factory, must_drop_within="60")
    old_deadline, old_commitment = pool.drop_deadline, pool.drop_at_commitment
    monkeypatch.setattr(jackpots, "utcnow", lambda: old_deadline + timedelta(seconds=5))
    jackpots.run_periodic()
    pool = db.session.get(JackpotPool, pool.id)
    db.session.refresh(pool)
    assert pool.cycle == 1
    assert pool.drop_deadline > old_deadline
    assert pool.drop_at_commitment != old_commitment
    assert db.session.scalar(sa.select(JackpotWin.id)) is None


# --------------------------------------------------------------------------- refunds


def test_a_refunded_bet_takes_its_contribution_back(client, factory):
    pool = make_pool(factory, seed_amount="10.00", contribution_percent="10")
    table = open_table(client, factory, cash=100_00)
    table.bet("b1", "10.00")
    table.bet("b2", "4.00", round_id="r2")
    assert amount(pool.id) == 11_40
    assert table.refund("rf1", "b1")["status"] == "ok"
    assert amount(pool.id) == 10_40
    jackpots.rollup(pool.id)
    assert amount(pool.id) == 10_40
    assert table.rollback("rb2", "b2")["status"] == "ok"
    assert amount(pool.id) == 10_00
    # A second refund of the same bet reverses nothing more.
    assert table.refund("rf1b", "b1")["status"] == "ok"
    assert amount(pool.id) == 10_00
    rows = db.session.scalars(
        sa.select(JackpotContribution.amount).order_by(JackpotContribution.id)
    ).all()
    assert rows == [1_00, 40, -1_00, -40]
    clean_books(pool.id)


def test_a_refund_after_the_pool_dropped_leaves_the_paid_cycle_alone(client, factory):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="10.00", contribution_percent="10")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    table.bet("b1", "10.00")
    assert jackpot_win(table, "jp1", pool.id, "11.00")["status"] == "ok"
    table.refund("rf1", "b1")
    assert amount(pool.id) == 10_00  # the new cycle is not charged for the old one
    clean_books(pool.id)


def test_a_refunded_bet_cannot_be_the_one_that_reaches_the_must_drop_point(
    client, factory, monkeypatch
):
    pool = make_pool(factory, seed_amount="10.00", must_drop_by="10.05", contribution_percent="50")
    # The point 10.02; the drop check is left to the explicit call below (no post-commit tick).
    db.session.execute(
        sa.update(JackpotPool).where(JackpotPool.id == pool.id).values(drop_point=10_02)
    )
    monkeypatch.setattr(jackpots, "tick", lambda _ids: None)
    big = open_table(client, factory, cash=100_00)
    small = open_table(client, factory, cash=100_00)
    big.bet("b1", "0.04")  # 0.02: would reach the point...
    big.refund("rf1", "b1")  # ...but is refunded before the check
    small.bet("b2", "0.10")  # 0.05
    win = jackpots.check_must_drop(pool.id)
    assert (win.user_id, win.amount) == (small.user_id, 10_05)
    clean_books(pool.id)


def test_staff_api_sets_the_drop_window_and_reporting_provider(client, factory, token_for):
    table = open_table(client, factory)
    manager = factory.staff("manager")
    body = {
        "name": "Hourly",
        "currency": "EUR",
        "seed_amount": "5.00",
        "contribution_percent": "1",
        "must_drop_within": "1h",
        "provider_id": provider_id(table),
    }
    r = client.post("/api/admin/jackpots", json=body, headers=token_for(manager))
    assert r.status_code == 201, r.get_json()
    data = r.get_json()["data"]
    assert data["drop_deadline"]
    assert data["drop_time_commitment"]
    pool = db.session.get(JackpotPool, data["id"])
    assert (pool.drop_window_seconds, pool.provider_id) == (3600, provider_id(table))
    for bad in ({"must_drop_within": "1y"}, {"provider_id": 999_999}, {"must_drop_within": []}):
        r = client.put(f"/api/admin/jackpots/{pool.id}", json=bad, headers=token_for(manager))
        assert r.status_code == 400, bad
    off = {"must_drop_within": None}
    r = client.put(f"/api/admin/jackpots/{pool.id}", json=off, headers=token_for(manager))
    assert r.status_code == 200
    assert r.get_json()["data"]["drop_deadline"] is None
    public = client.get(f"/api/jackpots/{pool.id}").get_json()["data"]
    assert "drop_at" not in public  # the secret time is never published before the win


def _age_rounds() -> None:
    from app.core.base import utcnow
    from app.core.db import atomic

    with atomic():
        db.session.execute(sa.update(GameRound).values(updated_at=utcnow() - timedelta(hours=2)))


def test_a_stale_round_refund_takes_the_contribution_back_like_a_provider_refund(
    client, factory, monkeypatch
):
    from app.bonus.models import LoyaltyEvent
    from app.play import rounds

    pool = make_pool(factory, seed_amount="10.00", must_drop_by="10.05", contribution_percent="50")
    db.session.execute(
        sa.update(JackpotPool).where(JackpotPool.id == pool.id).values(drop_point=10_02)
    )
    monkeypatch.setattr(jackpots, "tick", lambda _ids: None)
    big = open_table(client, factory, cash=100_00)
    small = open_table(client, factory, cash=100_00)
    big.bet("b1", "0.04", round_id="never-finished")  # 0.02: would reach the point...
    _age_rounds()
    report = rounds.settle_stale(timedelta(hours=1))  # ...but the provider never finished it
    assert report.refunded_bets == 1
    assert amount(pool.id) == 10_00  # the contribution went back with the stake
    small.bet("b2", "0.10")  # 0.05
    win = jackpots.check_must_drop(pool.id)
    assert (win.user_id, win.amount) == (small.user_id, 10_05)
    points = db.session.scalars(
        sa.select(LoyaltyEvent.points)
        .where(LoyaltyEvent.user_id == big.user_id)
        .order_by(LoyaltyEvent.id)
    ).all()
    assert sum(points) == 0
    # A provider refund arriving after the stale refund moves nothing and reverses nothing.
    assert big.refund("rf1", "b1")["status"] == "ok"
    assert big.balances() == (100_00, 0)
    assert amount(pool.id) == 10_00  # the won cycle is closed; the new one starts at the seed
    clean_books(pool.id)


def test_odd_ids_and_percentages_are_validation_errors_not_crashes(client, factory, token_for):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="10.00")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    table.bet("b1", "1.00")
    # "²".isdigit() is True but int("²") raises; 19-20 digits overflow BIGINT.
    for n, ref in enumerate(("²", "٣", "9" * 19, "9" * 20, "-1", "1e3", " 1", "")):
        answer = jackpot_win(table, f"jp-odd-{n}", ref, "1.00")
        assert answer.get("code") == "VALIDATION_ERROR", (ref, answer)
    for bad in ("²", "9" * 20, 10**20, -1, True, 1.5):
        with pytest.raises(ValidationError):
            jackpots.update_pool(pool.id, {"provider_id": bad}, actor=None)
    for bad in ("abc", "Infinity", "NaN", "1e309", None):
        with pytest.raises(ValidationError):
            jackpots.update_pool(pool.id, {"contribution_percent": bad}, actor=None)
    with pytest.raises(ValidationError):
        jackpots.update_pool(pool.id, {"must_drop_within": "²h"}, actor=None)
    manager = factory.staff("manager")
    r = client.put(
        f"/api/admin/jackpots/{pool.id}", json={"provider_id": 10**20}, headers=token_for(manager)
    )
    assert r.status_code == 400, r.get_json()
    assert table.balances() == (99_00, 0)
    clean_books(pool.id)


def test_a_round_wins_a_pool_once_whatever_transaction_id_reports_it(client, factory):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="10.00", contribution_percent="10")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    table.bet("b1", "10.00")  # pool 11.00
    assert jackpot_win(table, "jp1", pool.id, "5.00")["status"] == "ok"
    assert table.balances() == (95_00, 0)
    again = jackpot_win(table, "jp2", pool.id, "5.00")  # same round, new transaction id
    assert again["code"] == "VALIDATION_ERROR", again
    assert "already won" in again["message"]
    assert table.balances() == (95_00, 0)
    table.bet("b2", "10.00", round_id="r2")  # another round may win the next cycle
    assert jackpot_win(table, "jp3", pool.id, "5.00", round_id="r2")["status"] == "ok"
    wins = db.session.scalars(sa.select(JackpotWin.amount).where(JackpotWin.pool_id == pool.id))
    assert list(wins) == [5_00, 5_00]
    clean_books(pool.id)


def test_a_round_without_a_qualifying_stake_cannot_win(client, factory):
    table = open_table(client, factory, cash=100_00)
    pool = make_pool(factory, seed_amount="10.00", contribution_percent="10", min_bet="1.00")
    jackpots.update_pool(pool.id, {"provider_id": provider_id(table)}, actor=None)
    assert table.bet("b0", "0.00", round_id="zero")["status"] == "ok"
    assert table.bet("b1", "0.50", round_id="small")["status"] == "ok"
    assert table.bet("b2", "5.00", round_id="refunded")["status"] == "ok"
    assert table.refund("rf2", "b2")["status"] == "ok"
    for n, round_id in enumerate(("zero", "small", "refunded")):
        answer = jackpot_win(table, f"jp{n}", pool.id, "1.00", round_id=round_id)
        assert answer["code"] == "VALIDATION_ERROR", (round_id, answer)
    assert table.balances() == (99_50, 0)
    assert db.session.scalar(sa.select(sa.func.count(JackpotWin.id))) == 0
    clean_books(pool.id)


@pytest.mark.postgres
@pytest.mark.parametrize("check", ["must_drop", "pending_award"])
def test_a_drop_payout_does_not_deadlock_with_the_winners_next_bet(
    app, requires_postgres, committed_db, client, factory, monkeypatch, check
):
    """The winner's next bet holds the wallet and then reads the pool FOR KEY SHARE. The payout
    used to lock the pool FOR UPDATE and then wait for that wallet: a deadlock."""
    import dataclasses
    import time

    from app.play import events as play_events

    monkeypatch.setattr(jackpots, "tick", lambda _ids: None)
    pool = make_pool(factory, seed_amount="10.00", must_drop_by="20.00", contribution_percent="10")
    table = open_table(client, factory, cash=100_00)
    with_point = {"drop_point": 10_50} if check == "must_drop" else {"drop_point": 19_00}
    db.session.execute(sa.update(JackpotPool).where(JackpotPool.id == pool.id).values(**with_point))
    db.session.commit()
    assert table.bet("b1", "10.00")["status"] == "ok"  # 11.00: past 10.50
    if check == "pending_award":
        # A random hit drawn by b1 whose award job has not run yet.
        db.session.add(
            JackpotWin(
                pool_id=pool.id,
                cycle=db.session.get(JackpotPool, pool.id).cycle,
                user_id=table.user_id,
                currency="EUR",
                trigger="random",
                status="pending",
                evidence={},
            )
        )
        db.session.commit()
    pool_id = pool.id
    db.session.remove()
    wallet_held = threading.Event()
    real_emit = play_events.emit

    def slow_emit(event):
        # Inside the bet callback: the wallet is locked, the jackpot listener comes next.
        if event.kind == "bet" and not wallet_held.is_set():
            wallet_held.set()
            time.sleep(1.0)
        real_emit(event)

    monkeypatch.setattr(play_events, "emit", slow_emit)

    def bet():
        with app.app_context():
            try:
                mine = dataclasses.replace(table, client=app.test_client())
                return mine.bet("b2", "1.00", round_id="r2")["status"]
            finally:
                db.session.remove()

    def pay():
        with app.app_context():
            try:
                assert wallet_held.wait(10)
                if check == "must_drop":
                    win = jackpots.check_must_drop(pool_id)
                else:
                    win_id = db.session.scalar(sa.select(JackpotWin.id))
                    win = jackpots.award(win_id)
                return (win.user_id, win.status)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=2) as ex:
        futures = [ex.submit(bet), ex.submit(pay)]
        results = [f.result(timeout=60) for f in futures]
    assert results == ["ok", (table.user_id, "paid")]
    wins = db.session.scalars(sa.select(JackpotWin).where(JackpotWin.pool_id == pool_id)).all()
    assert len(wins) == 1
    assert wins[0].amount in (11_00, 11_10)  # with or without b2, whichever committed first
    clean_books(pool_id)


def test_a_must_drop_check_whose_winner_changed_before_the_locks_starts_over(
    client, factory, monkeypatch
):
    pool = make_pool(factory, seed_amount="10.00", must_drop_by="10.05", contribution_percent="50")
    db.session.execute(
        sa.update(JackpotPool).where(JackpotPool.id == pool.id).values(drop_point=10_02)
    )
    monkeypatch.setattr(jackpots, "tick", lambda _ids: None)
    other = open_table(client, factory, cash=100_00)
    winner = open_table(client, factory, cash=100_00)
    winner.bet("b1", "0.10")
    import types

    real = jackpots._must_drop_crossing
    seen = []

    def stale_first(p):
        row = real(p)
        seen.append(row.user_id)
        if len(seen) == 1:  # the unlocked read saw another player (a state since changed)
            return types.SimpleNamespace(id=row.id, user_id=other.user_id, running=row.running)
        return row

    monkeypatch.setattr(jackpots, "_must_drop_crossing", stale_first)
    win = jackpots.check_must_drop(pool.id)
    assert (win.user_id, win.amount, win.status) == (winner.user_id, 10_05, "paid")
    assert len(seen) == 4  # read, re-read under the wrong wallet, read, re-read: paid
    assert other.balances() == (100_00, 0)
    clean_books(pool.id)
