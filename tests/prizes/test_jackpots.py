"""Progressive jackpots: contributions from bets, CSPRNG and must-drop wins, payouts once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from app.core.bus import subscribe
from app.core.extensions import db
from app.core.models import AuditLog, Notification
from app.prizes import jackpots
from app.prizes.models import JackpotContribution, JackpotPool, JackpotWin
from app.wallet.models import LedgerTransaction
from tests.moneykit import open_table, reconcile_clean


def make_pool(factory, **kw) -> JackpotPool:
    data = {"name": "Mega", "currency": "EUR", "seed_amount": "100.00", "contribution_percent": "1"}
    data.update(kw)
    return jackpots.create_pool(data, actor=factory.staff("admin"))


def contributions(pool_id: int) -> list[int]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(JackpotContribution.amount)
            .where(JackpotContribution.pool_id == pool_id)
            .order_by(JackpotContribution.id)
        )
    )


def amount(pool_id: int) -> int:
    db.session.expire_all()
    return jackpots.amount_of(db.session.get(JackpotPool, pool_id))


def clean_books() -> None:
    reconcile_clean()
    assert jackpots.reconcile() == []


def test_each_eligible_bet_appends_its_share_and_the_amount_adds_up(client, factory):
    pool = make_pool(factory, contribution_percent="1.5", min_bet="1.00")
    table = open_table(client, factory, cash=100_00)
    assert table.bet("b1", "10.00")["status"] == "ok"
    assert table.bet("b2", "0.50", round_id="r2")["status"] == "ok"  # below min bet
    assert table.bet("b3", "3.33", round_id="r3")["status"] == "ok"
    assert contributions(pool.id) == [15, 4]  # 1.5 % rounded down
    assert amount(pool.id) == 100_00 + 19
    jackpots.rollup(pool.id)
    pool = db.session.get(JackpotPool, pool.id)
    assert (pool.rolled_amount, amount(pool.id)) == (19, 100_19)
    clean_books()


def test_other_currency_paused_pool_and_other_games_take_nothing(client, factory):
    usd = make_pool(factory, currency="USD")
    paused = make_pool(factory, status="paused")
    elsewhere = make_pool(factory, game_ids=[-1])
    table = open_table(client, factory, cash=100_00)
    table.bet("b1", "10.00")
    assert contributions(usd.id) == contributions(paused.id) == contributions(elsewhere.id) == []


def test_a_random_hit_pays_the_pool_once_and_restarts_it_at_the_seed(client, factory):
    pool = make_pool(factory, hit_odds=1, seed_amount="50.00", contribution_percent="10")
    table = open_table(client, factory, cash=100_00)
    seen = []
    unsubscribe = subscribe(seen.append)
    try:
        assert table.bet("b1", "10.00")["status"] == "ok"
    finally:
        unsubscribe()
    win = db.session.scalar(sa.select(JackpotWin).where(JackpotWin.pool_id == pool.id))
    assert (win.status, win.trigger, win.amount) == ("paid", "random", 51_00)
    assert win.evidence["odds"] == "1/1"
    assert win.evidence["drawn"] == 0
    # 100 - 10 bet + 51 jackpot
    assert table.balances() == (141_00, 0)
    assert jackpots.award(win.id).amount == 51_00  # a rerun of the job pays nothing more
    assert table.balances() == (141_00, 0)
    posted = db.session.scalars(
        sa.select(LedgerTransaction).where(LedgerTransaction.type == "jackpot_win")
    ).all()
    assert [(t.cash_delta, t.idempotency_key) for t in posted] == [(51_00, f"jackpot_win:{win.id}")]
    pool = db.session.get(JackpotPool, pool.id)
    assert (pool.cycle, amount(pool.id)) == (2, 50_00)
    updates = [e for e in seen if e.name == "jackpot.update"]
    assert updates
    assert updates[-1].room == "global"
    assert any(e.data.get("won", {}).get("amount") == "51.00" for e in updates)
    inbox = db.session.scalars(
        sa.select(Notification.type).where(Notification.user_id == table.user_id)
    ).all()
    assert inbox == ["jackpot_win"]
    clean_books()


def test_must_drop_pays_before_the_bound_at_the_committed_point(client, factory):
    pool = make_pool(factory, seed_amount="10.00", must_drop_by="11.00", contribution_percent="10")
    commitment = jackpots.pool_json(pool)["drop_commitment"]
    table = open_table(client, factory, cash=100_00)
    win = None
    for n in range(11):  # 10 bets of 1.00 bring the pool to the bound
        table.bet(f"b{n}", "1.00", round_id=f"r{n}")
        jackpots.check_must_drop(pool.id)  # the post-commit tick may have dropped it already
        win = db.session.scalar(
            sa.select(JackpotWin).where(JackpotWin.pool_id == pool.id, JackpotWin.cycle == 1)
        )
        if win is not None:
            break
    assert win is not None
    assert win.status == "paid"
    assert win.trigger == "must_drop"
    ev = win.evidence
    assert ev["commitment"] == commitment
    assert hashlib.sha256(f"{ev['drop_point']}:{ev['salt']}".encode()).hexdigest() == commitment
    assert 10_00 <= ev["drop_point"] < 11_00
    assert ev["drop_point"] <= win.amount <= 11_00
    assert win.amount == 10_00 + sum(contributions(pool.id)[: n + 1])
    pool = db.session.get(JackpotPool, pool.id)
    assert pool.cycle == 2
    assert pool.drop_commitment != commitment
    clean_books()


def test_must_drop_never_lets_the_pool_pass_its_bound(client, factory):
    pool = make_pool(factory, seed_amount="10.00", must_drop_by="10.05", contribution_percent="50")
    table = open_table(client, factory, cash=100_00)
    table.bet("b1", "10.00")  # one bet far past the bound: dropped right after its commit
    jackpots.run_periodic()  # nothing more to do
    wins = db.session.scalars(sa.select(JackpotWin).where(JackpotWin.pool_id == pool.id)).all()
    assert [(w.amount, w.trigger, w.user_id) for w in wins] == [(10_05, "must_drop", table.user_id)]
    assert amount(pool.id) == 10_00
    clean_books()


def test_manual_payout_is_admin_only_and_audited(client, factory, token_for):
    pool = make_pool(factory, seed_amount="20.00")
    player = factory.player()
    manager = factory.staff("manager")
    admin = factory.staff("admin")
    body = {"user_id": player.id, "reason": "provider reported a jackpot hit"}
    url = f"/api/admin/jackpots/{pool.id}/payout"
    assert client.post(url, json=body, headers=token_for(player)).status_code == 403
    assert client.post(url, json=body, headers=token_for(manager)).status_code == 403
    r = client.post(url, json=body, headers=token_for(admin))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["data"]["amount"] == "20.00"
    assert r.get_json()["data"]["trigger"] == "manual"
    audit_row = db.session.scalar(
        sa.select(AuditLog).where(AuditLog.action == "jackpot.manual_payout")
    )
    assert audit_row.actor_id == admin.id
    assert audit_row.reason == body["reason"]
    detail = client.get(f"/api/jackpots/{pool.id}").get_json()["data"]
    assert [w["amount"] for w in detail["wins"]] == ["20.00"]
    assert "user_id" not in detail["wins"][0]
    clean_books()


def test_staff_edit_validates_and_players_see_active_pools(client, factory, token_for):
    pool = make_pool(factory)
    manager = factory.staff("manager")
    r = client.put(
        f"/api/admin/jackpots/{pool.id}", json={"cap_amount": "50.00"}, headers=token_for(manager)
    )
    assert r.status_code == 400
    assert r.get_json()["code"] == "VALIDATION_ERROR"
    r = client.put(
        f"/api/admin/jackpots/{pool.id}",
        json={"cap_amount": "5000.00", "seed_amount": "0.001"},
        headers=token_for(manager),
    )
    assert r.status_code == 400
    r = client.put(
        f"/api/admin/jackpots/{pool.id}",
        json={"cap_amount": "5000.00", "must_drop_by": "4000"},
        headers=token_for(manager),
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["data"]["must_drop_by"] == "4000.00"
    assert r.get_json()["data"]["drop_commitment"]
    player = factory.player()
    assert client.get("/api/admin/jackpots", headers=token_for(player)).status_code == 403
    active = client.get("/api/jackpots/active?currency=EUR").get_json()["data"]
    assert [(p["id"], p["amount"]) for p in active] == [(pool.id, "100.00")]


def test_cap_stops_contributions_once_reached(client, factory):
    pool = make_pool(factory, seed_amount="1.00", cap_amount="1.50", contribution_percent="10")
    table = open_table(client, factory, cash=100_00)
    table.bet("b1", "10.00")
    jackpots.rollup(pool.id)
    table.bet("b2", "10.00", round_id="r2")
    assert contributions(pool.id) == [1_00]
    assert amount(pool.id) == 1_50


@pytest.mark.postgres
def test_concurrent_bets_contribute_exactly(app, requires_postgres, committed_db, client, factory):
    pool = make_pool(factory, seed_amount="10.00", contribution_percent="3")
    tables = [open_table(client, factory, cash=1_000_00) for _ in range(6)]
    bets = [(t, f"b{n}", f"{1 + n % 7}.{n % 100:02d}") for t in tables for n in range(20)]
    barrier = threading.Barrier(12, timeout=30)

    def send(item):
        table, tx, stake = item
        body = json.dumps(
            {
                "action": "bet",
                "session_token": table.token,
                "game_id": table.game_external,
                "currency": "EUR",
                "transaction_id": tx,
                "round_id": tx,
                "amount": stake,
            }
        ).encode()
        with app.test_client() as c:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            r = c.post(
                f"/api/provider-callback/{table.provider_code}",
                data=body,
                headers={"Content-Type": "application/json", "X-Signature": table.sign(body)},
            )
            db.session.remove()
            return r.get_json()["status"]

    with ThreadPoolExecutor(max_workers=12) as pool_exec:
        statuses = list(pool_exec.map(send, bets))
    assert statuses == ["ok"] * len(bets)
    expected = sum(int(s.replace(".", "")) * 300 // 10_000 for _, _, s in bets)
    assert len(contributions(pool.id)) == len(bets)
    assert sum(contributions(pool.id)) == expected
    assert amount(pool.id) == 10_00 + expected
    jackpots.rollup(pool.id)
    assert amount(pool.id) == 10_00 + expected
    clean_books()


def test_ticker_updates_are_throttled_per_pool(app, client, factory, monkeypatch):
    monkeypatch.setitem(
        app.config, "JACKPOT_TICK_SECONDS", 60
    )  # a slow machine stays in the window
    pool = make_pool(factory)
    table = open_table(client, factory)
    seen = []
    unsubscribe = subscribe(seen.append)
    try:
        for n in range(5):
            table.bet(f"b{n}", "1.00", round_id=f"r{n}")
    finally:
        unsubscribe()
    ticks = [e for e in seen if e.name == "jackpot.update"]
    assert len(ticks) == 1  # one push per window
    assert ticks[0].data["id"] == pool.id
    assert ticks[0].room == "global"


def test_unknown_jackpot_is_not_found(client):
    r = client.get("/api/jackpots/999999")
    assert r.status_code == 404
    assert r.get_json()["code"] == "NOT_FOUND"
