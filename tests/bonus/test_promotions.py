"""Promotions and bonuses: every rule enforced where the money moves (deposit credit, bet
callback, withdrawal request), not only in the API."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from app.bonus import promotions
from app.bonus.models import PlayerBonus, Promotion
from app.core.base import utcnow
from app.core.bus import subscribe
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.payments.gateways import sandbox
from app.play.models import Game
from app.wallet.models import LedgerTransaction
from tests.moneykit import fund, open_table, reconcile_clean
from tests.payments.conftest import Wire
from tests.payments.test_payments import balances, pay, start_deposit, withdraw
from tests.payments_helpers import sandbox_gateway


@pytest.fixture
def wire(client, monkeypatch):
    w = Wire(client)
    monkeypatch.setattr(sandbox, "http_post", w)
    return w


@pytest.fixture
def gateway(app):
    return sandbox_gateway()


@pytest.fixture
def events():
    seen = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


def promo(**kw) -> Promotion:
    data = {
        "name": "Welcome 100%",
        "type": "deposit_match",
        "currency": "EUR",
        "match_percent": 100,
        "max_bonus_minor": 100_00,
        "min_deposit_minor": 20_00,
        "wagering_multiplier": 10,
    }
    data.update(kw)
    status = data.pop("status", "active")
    p = promotions.create_promotion(data)
    if status == "active":
        p = promotions.set_status(p.id, "active")
    return p


def deposit_and_pay(client, wire, headers, amount):
    data = start_deposit(client, headers, amount)
    assert pay(client, data).status_code == 200
    (answer,) = wire.flush()
    assert answer.status_code == 200, answer.json
    return data


def bonus_balance(user_id, currency="EUR"):
    from app.wallet.models import Wallet

    db.session.expire_all()
    w = db.session.scalar(
        select(Wallet).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )
    return (w.balance, w.bonus_balance)


def ledger_types(user_id):
    return [
        t
        for (t,) in db.session.execute(
            select(LedgerTransaction.type)
            .where(LedgerTransaction.user_id == user_id)
            .order_by(LedgerTransaction.id)
        )
    ]


def bonuses_of(user_id):
    db.session.expire_all()
    return db.session.scalars(
        select(PlayerBonus).where(PlayerBonus.user_id == user_id).order_by(PlayerBonus.id)
    ).all()


# --- deposit match ---------------------------------------------------------------------------


def test_deposit_bonus_is_credited_once_per_qualifying_deposit(
    client, factory, token_for, gateway, wire, events
):
    promo(first_deposit_only=True, auto_apply=True)
    player = factory.player()
    headers = token_for(player)
    data = deposit_and_pay(client, wire, headers, "50.00")
    assert bonus_balance(player.id) == (50_00, 50_00)
    # The gateway delivers the same webhook again: still one bonus.
    replay = client.post(*wire.delivered[0][0:1], data=wire.delivered[0][1],
                         headers=wire.delivered[0][2])  # fmt: skip
    assert replay.json["data"]["verdict"] == "duplicate"
    # A second deposit is not a first deposit.
    deposit_and_pay(client, wire, headers, "30.00")
    assert bonus_balance(player.id) == (80_00, 50_00)
    (bonus,) = bonuses_of(player.id)
    assert (bonus.status, bonus.amount_minor, bonus.wagering_required_minor) == (
        "active",
        50_00,
        500_00,
    )
    assert bonus.trigger_ref == f"payment:{data['transaction_id']}"
    assert ledger_types(player.id).count("bonus_grant") == 1
    assert any(e.name == "promotion.update" and e.room == f"user:{player.id}" for e in events)
    history = client.get("/api/promotions/history", headers=headers).json
    assert history["data"][0]["amount"] == "50.00"
    assert history["data"][0]["wagering_required"] == "500.00"
    reconcile_clean()


def test_a_claimed_reload_waits_for_a_deposit_at_or_above_its_minimum_and_caps_the_bonus(
    client, factory, token_for, gateway, wire
):
    p = promo(type="reload", match_percent=50, max_bonus_minor=20_00, min_deposit_minor=30_00)
    player = factory.player()
    headers = token_for(player)
    claimed = client.post(f"/api/promotions/claim/{p.id}", headers=headers, json={})
    assert claimed.status_code == 201, claimed.json
    assert claimed.json["data"]["status"] == "pending"
    deposit_and_pay(client, wire, headers, "20.00")  # below the minimum: no bonus yet
    assert bonus_balance(player.id) == (20_00, 0)
    deposit_and_pay(client, wire, headers, "100.00")  # 50 % = 50, capped at 20
    assert bonus_balance(player.id) == (120_00, 20_00)
    (bonus,) = bonuses_of(player.id)
    assert (bonus.status, bonus.amount_minor, bonus.deposit_minor) == ("active", 20_00, 100_00)
    reconcile_clean()


def test_a_self_excluded_player_gets_nothing(client, factory, token_for, gateway, wire):
    welcome = promo(auto_apply=True)
    free = promo(name="Free 5", type="no_deposit", bonus_amount_minor=5_00, match_percent=0)
    player = factory.player()
    headers = token_for(player)
    deposit = start_deposit(client, headers, "50.00")  # started before the exclusion
    excluded = client.post(
        "/api/responsible-gaming/self-exclude", headers=headers, json={"duration": "6_months"}
    )
    assert excluded.status_code in (200, 201), excluded.json
    assert pay(client, deposit).status_code == 200
    wire.flush()
    assert bonus_balance(player.id) == (50_00, 0)
    for p in (welcome, free):
        refused = client.post(f"/api/promotions/claim/{p.id}", headers=headers, json={})
        assert refused.status_code == 400
        assert refused.json["code"] == "PROMOTION_NOT_AVAILABLE"
        assert refused.json["message"] == "Promotion is not available for this user"
        assert refused.json["reason"] == "self_excluded"
    assert bonuses_of(player.id) == []
    listed = client.get("/api/promotions/active", headers=headers).json["data"]
    assert {row["eligible"] for row in listed} == {False}


def test_refusals_explain_why(client, factory, token_for):
    p = promo(type="no_deposit", bonus_amount_minor=5_00, match_percent=0, countries=["MT"])
    voucher = promo(name="VIP", type="no_deposit", bonus_amount_minor=5_00, match_percent=0,
                    voucher_code="VIP-2026")  # fmt: skip
    draft = promo(name="Soon", status="draft")
    elsewhere = factory.player(country="DE")
    local = factory.player(country="MT")

    def claim(user, pid, **body):
        return client.post(f"/api/promotions/claim/{pid}", headers=token_for(user), json=body)

    assert claim(elsewhere, p.id).json["reason"] == "country"
    assert claim(local, draft.id).json["reason"] == "not_active"
    assert claim(local, voucher.id).json["reason"] == "voucher_required"
    assert claim(local, p.id).status_code == 201
    again = claim(local, p.id)
    assert again.json["reason"] in ("already_claimed", "bonus_open")
    assert claim(local, voucher.id, voucher_code="VIP-2026").json["reason"] == "bonus_open"
    assert client.get(f"/api/promotions/{voucher.id}").status_code == 404  # voucher-only: hidden
    shown = client.get(f"/api/promotions/{p.id}", headers=token_for(local)).json["data"]
    assert shown["eligible"] is False
    assert shown["ineligible_reason"] == "You have already claimed this promotion"


def test_a_voucher_code_grants_its_bonus_once(client, factory, token_for):
    p = promo(name="VIP", type="no_deposit", bonus_amount_minor=7_50, match_percent=0,
              wagering_multiplier=0, voucher_code="Spring-26")  # fmt: skip
    player = factory.player()
    headers = token_for(player)
    bad = client.post("/api/promotions/voucher", headers=headers, json={"code": "nope"})
    assert bad.json["reason"] == "voucher_unknown"
    ok = client.post("/api/promotions/voucher", headers=headers, json={"code": "spring-26"})
    assert ok.status_code == 201, ok.json
    # No wagering: it converts to cash at once.
    assert ok.json["data"]["status"] == "completed"
    assert bonus_balance(player.id) == (7_50, 0)
    again = client.post("/api/promotions/voucher", headers=headers, json={"code": "SPRING-26"})
    assert again.json["reason"] == "already_claimed"
    assert ledger_types(player.id) == ["bonus_grant", "bonus_convert"]
    assert db.session.get(Promotion, p.id).claims_count == 1
    reconcile_clean()


# --- wagering --------------------------------------------------------------------------------


def wagering_table(client, factory, token_for, *, bonus=10_00, cash=0, **rules):
    table = open_table(client, factory, cash=cash)
    game = db.session.scalar(select(Game).where(Game.external_id == table.game_external))
    rules.setdefault("wagering_multiplier", 5)
    p = promo(type="no_deposit", bonus_amount_minor=bonus, match_percent=0, **rules)
    player = db.session.get(User, table.user_id)
    claimed = client.post(f"/api/promotions/claim/{p.id}", headers=token_for(player), json={})
    assert claimed.status_code == 201, claimed.json
    return table, game, claimed.json["data"]["id"]


def test_wagering_progress_counts_stake_times_game_contribution(client, factory, token_for):
    table = open_table(client, factory, cash=100_00)
    game = db.session.scalar(select(Game).where(Game.external_id == table.game_external))
    p = promo(type="no_deposit", bonus_amount_minor=10_00, match_percent=0,
              wagering_multiplier=5, game_contributions={str(game.id): 20})  # fmt: skip
    player = db.session.get(User, table.user_id)
    client.post(f"/api/promotions/claim/{p.id}", headers=token_for(player), json={})
    assert table.bet("b1", "10.00")["status"] == "ok"  # counts 20 % = 2.00
    assert table.bet("b2", "5.00")["status"] == "ok"  # 1.00
    (bonus,) = bonuses_of(player.id)
    assert (bonus.wagering_progress_minor, bonus.wagering_required_minor) == (3_00, 50_00)
    # A stake given back never counted.
    table.refund("rf1", "b2")
    db.session.expire_all()
    assert db.session.get(PlayerBonus, bonus.id).wagering_progress_minor == 2_00
    history = client.get("/api/promotions/history", headers=token_for(player)).json["data"]
    assert history[0]["wagering_progress"] == "2.00"
    assert history[0]["wagering_percent"] == 4


def test_a_game_listed_at_zero_percent_does_not_advance_wagering(client, factory, token_for):
    table = open_table(client, factory, cash=100_00)
    game = db.session.scalar(select(Game).where(Game.external_id == table.game_external))
    p = promo(type="no_deposit", bonus_amount_minor=10_00, match_percent=0,
              wagering_multiplier=5, game_contributions={str(game.id): 0})  # fmt: skip
    player = db.session.get(User, table.user_id)
    client.post(f"/api/promotions/claim/{p.id}", headers=token_for(player), json={})
    table.bet("b1", "20.00")
    assert bonuses_of(player.id)[0].wagering_progress_minor == 0


def test_completed_wagering_converts_the_bonus_to_cash_up_to_the_max_cashout(
    client, factory, token_for, events
):
    table, _game, bonus_id = wagering_table(
        client, factory, token_for, bonus=10_00, wagering_multiplier=2, max_cashout_minor=25_00
    )
    assert table.balances() == (0, 10_00)
    table.bet("b1", "10.00", round_id="r1")  # progress 10 of 20, all from the bonus balance
    table.win("w1", "40.00", round_id="r1")  # paid to the bonus balance (bonus-funded stake)
    assert table.balances() == (0, 40_00)
    table.bet("b2", "10.00", round_id="r2")  # progress 20: complete with 30 bonus left
    assert table.balances() == (25_00, 0)  # 25 converted (the cap), 5 forfeited
    bonus = db.session.get(PlayerBonus, bonus_id)
    assert (bonus.status, bonus.converted_minor, bonus.forfeited_minor) == (
        "completed",
        25_00,
        5_00,
    )
    assert ledger_types(table.user_id)[-2:] == ["bonus_convert", "bonus_forfeit"]
    # A win for a round staked while wagering arrives after the conversion: the cap is
    # used up, so the bonus part is forfeited rather than left without a contract.
    table.win("w2", "8.00", round_id="r2")
    assert table.balances() == (25_00, 0)
    assert any(e.name == "promotion.update" and e.data.get("action") == "completed" for e in events)
    reconcile_clean()


def test_a_bet_above_the_max_bet_is_refused_while_wagering(client, factory, token_for):
    table, _game, bonus_id = wagering_table(
        client, factory, token_for, cash=50_00, max_bet_minor=5_00
    )
    refused = table.bet("b1", "5.01")
    assert refused["code"] == "LIMIT_EXCEEDED"
    assert "maximum bet" in refused["message"]
    assert table.balances() == (50_00, 10_00)
    assert table.bet("b2", "5.00")["status"] == "ok"
    # Once the bonus is gone the cap no longer applies.
    player = db.session.get(User, table.user_id)
    assert client.post(f"/api/promotions/bonuses/{bonus_id}/forfeit",
                       headers=token_for(player)).status_code == 200  # fmt: skip
    assert table.bet("b3", "20.00")["status"] == "ok"
    reconcile_clean()


# --- withdrawal and expiry -------------------------------------------------------------------


def test_withdrawal_is_refused_while_wagering_unless_the_bonus_is_forfeited(
    client, factory, token_for, gateway
):
    p = promo(type="no_deposit", bonus_amount_minor=10_00, match_percent=0)
    player = factory.player()
    with atomic():
        db.session.get(User, player.id).kyc_status = "approved"
    fund(player.id, 100_00)
    headers = token_for(player)
    client.post(f"/api/promotions/claim/{p.id}", headers=headers, json={})
    refused = withdraw(client, headers, "50.00", iban="DE89 3704 0044 0532 0130 00")
    assert refused.status_code == 409
    assert refused.json["code"] == "BONUS_WAGERING_OPEN"
    assert refused.json["bonus_balance"] == "10.00"
    assert bonus_balance(player.id) == (100_00, 10_00)
    # A refused withdrawal forfeits nothing, even when forfeit was asked for.
    too_much = withdraw(client, headers, "500.00", forfeit_bonus=True,
                        iban="DE89 3704 0044 0532 0130 00")  # fmt: skip
    assert too_much.json["code"] == "INSUFFICIENT_BALANCE"
    assert bonus_balance(player.id) == (100_00, 10_00)
    ok = withdraw(client, headers, "50.00", forfeit_bonus=True,
                  iban="DE89 3704 0044 0532 0130 00")  # fmt: skip
    assert ok.status_code == 201, ok.json
    assert bonus_balance(player.id) == (50_00, 0)
    assert balances(player.id) == (50_00, 50_00)
    (bonus,) = bonuses_of(player.id)
    assert (bonus.status, bonus.forfeited_minor) == ("forfeited", 10_00)
    assert bonus.end_reason == "forfeited on withdrawal request"
    reconcile_clean()


def test_expiry_job_forfeits_what_is_left_and_releases_unused_claims(client, factory, token_for):
    from app.bonus.jobs import expire_bonuses
    from app.core.schedule import PERIODIC_JOBS

    assert any(f == "app.bonus.jobs.expire_bonuses" for f, _i, _q in PERIODIC_JOBS)
    free = promo(type="no_deposit", bonus_amount_minor=10_00, match_percent=0,
                 bonus_valid_days=7)  # fmt: skip
    reload = promo(name="Reload", type="reload", match_percent=50, bonus_valid_days=3,
                   max_claims_total=5, currency="USD")  # fmt: skip
    player = factory.player()
    headers = token_for(player)
    client.post(f"/api/promotions/claim/{free.id}", headers=headers, json={})
    client.post(f"/api/promotions/claim/{reload.id}", headers=headers, json={})
    assert db.session.get(Promotion, reload.id).claims_count == 1
    assert expire_bonuses() == 0
    with freeze_time(utcnow() + timedelta(days=8)):
        assert expire_bonuses() == 2
        assert expire_bonuses() == 0  # idempotent
    granted, pending = bonuses_of(player.id)
    assert (granted.status, granted.forfeited_minor) == ("expired", 10_00)
    assert pending.status == "expired"
    assert bonus_balance(player.id) == (0, 0)
    db.session.expire_all()
    assert db.session.get(Promotion, reload.id).claims_count == 0  # slot given back
    reconcile_clean()


# --- staff -----------------------------------------------------------------------------------


def test_staff_create_update_activate_and_deactivate_promotions(client, factory, token_for, events):
    manager = token_for(factory.staff("manager"))
    support = token_for(factory.staff("support"))
    body = {
        "name": "Welcome",
        "type": "deposit_match",
        "currency": "EUR",
        "match_percent": 100,
        "max_bonus": "200.00",
        "min_deposit": 20,
        "wagering_multiplier": 30,
        "max_bet": "5",
        "game_contributions": {"1": 10},
        "auto_apply": True,
        "first_deposit_only": True,
    }
    assert client.post("/api/admin/promotions", headers=support, json=body).status_code == 403
    bad = client.post("/api/admin/promotions", headers=manager, json={**body, "max_bet": "5.001"})
    assert bad.status_code == 400
    assert bad.json["errors"][0]["field"] == "max_bet"
    created = client.post("/api/admin/promotions", headers=manager, json=body)
    assert created.status_code == 201, created.json
    data = created.json["data"]
    assert (data["status"], data["max_bonus"], data["max_bet"]) == ("draft", "200.00", "5.00")
    pid = data["id"]
    assert client.get("/api/promotions/active").json["data"] == []
    assert client.post(f"/api/admin/promotions/{pid}/activate", headers=manager).status_code == 200
    listed = client.get("/api/promotions/active").json["data"]
    assert [p["id"] for p in listed] == [pid]
    assert "eligible" not in listed[0]  # anonymous: no personal verdict
    changed = client.put(f"/api/admin/promotions/{pid}", headers=manager,
                         json={"wagering_multiplier": 25})  # fmt: skip
    assert changed.json["data"]["wagering_multiplier"] == 25
    client.post(f"/api/admin/promotions/{pid}/deactivate", headers=manager)
    assert client.get("/api/promotions/active").json["data"] == []
    actions = [e.data["action"] for e in events if e.name == "promotion.update"]
    assert actions == ["created", "activated", "updated", "deactivated"]
    page = client.get("/api/admin/promotions?status=inactive", headers=manager).json
    assert page["meta"]["total"] == 1
    from app.core.models import AuditLog

    logged = db.session.scalars(
        select(AuditLog.action).where(AuditLog.target_type == "promotion")
    ).all()
    assert set(logged) >= {"promotion.create", "promotion.update", "promotion.activate"}


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.usefixtures("requires_postgres")
def test_total_claim_limit_holds_under_concurrent_claims(app, committed_db):
    from tests.conftest import Factory

    with app.app_context():
        p = promo(type="no_deposit", bonus_amount_minor=1_00, match_percent=0,
                  max_claims_total=3)  # fmt: skip
        players = [Factory().player() for _ in range(8)]
        ids = [u.id for u in players]
        pid = p.id
        db.session.remove()
    barrier = threading.Barrier(len(ids))
    outcomes: list[str] = []

    def attempt(user_id: int) -> None:
        with app.app_context():
            user = db.session.get(User, user_id)
            barrier.wait()
            try:
                promotions.claim(user, pid)
                outcomes.append("ok")
            except promotions.PromotionUnavailable as exc:
                outcomes.append(exc.extra["reason"])
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(uid,)) for uid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["sold_out"] * 5
    with app.app_context():
        assert db.session.get(Promotion, pid).claims_count == 3
        assert db.session.scalar(select(func.count(PlayerBonus.id))) == 3
        reconcile_clean()
        db.session.remove()


@pytest.mark.usefixtures("requires_postgres")
def test_one_player_racing_the_same_claim_gets_one_bonus(app, committed_db):
    from tests.conftest import Factory

    with app.app_context():
        p = promo(type="no_deposit", bonus_amount_minor=1_00, match_percent=0,
                  max_claims_per_player=1)  # fmt: skip
        uid, pid = Factory().player().id, p.id
        db.session.remove()
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def attempt() -> None:
        with app.app_context():
            user = db.session.get(User, uid)
            barrier.wait()
            try:
                promotions.claim(user, pid)
                outcomes.append("ok")
            except promotions.PromotionUnavailable as exc:
                outcomes.append(exc.extra["reason"])
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    with app.app_context():
        assert db.session.scalar(select(func.count(PlayerBonus.id))) == 1
        reconcile_clean()
        db.session.remove()


# --- cashback --------------------------------------------------------------------------------


def test_cashback_pays_a_percentage_of_last_periods_net_loss_once(client, factory, token_for):
    from app.bonus.jobs import pay_cashback

    cashback = promo(
        name="Weekly cashback",
        type="cashback",
        match_percent=0,
        cashback_percent=10,
        cashback_period_days=7,
        wagering_multiplier=0,
    )
    loser = open_table(client, factory, cash=100_00)
    winner = open_table(client, factory, cash=100_00)
    _index, start, _end = promotions.cashback_period(cashback, utcnow())
    with freeze_time(start + timedelta(days=1)):
        loser.bet("b1", "60.00")
        loser.win("w1", "10.00")  # net loss 50.00
        winner.bet("b1", "10.00")
        winner.win("w1", "30.00")  # net win
    # A bonus being wagered is left alone by a cash cashback.
    free = promo(type="no_deposit", bonus_amount_minor=5_00, match_percent=0)
    client.post(f"/api/promotions/claim/{free.id}",
                headers=token_for(db.session.get(User, loser.user_id)), json={})  # fmt: skip
    assert loser.balances() == (50_00, 5_00)
    report = pay_cashback()
    assert report["paid"] == 1
    assert loser.balances() == (55_00, 5_00)  # 10 % of 50.00 as cash
    assert winner.balances() == (120_00, 0)
    assert pay_cashback()["paid"] == 0  # idempotent
    assert loser.balances() == (55_00, 5_00)
    assert ledger_types(loser.user_id)[-2:] == ["bonus_grant", "bonus_convert"]
    statuses = sorted(b.status for b in bonuses_of(loser.user_id))
    assert statuses == ["active", "completed"]
    reconcile_clean()


def test_cashback_with_wagering_waits_for_a_player_without_a_bonus_in_progress(
    client, factory, token_for
):
    from app.bonus.jobs import pay_cashback

    cashback = promo(name="Cashback 1x", type="cashback", match_percent=0,
                     cashback_percent=20, wagering_multiplier=1)  # fmt: skip
    busy = open_table(client, factory, cash=100_00)
    free = open_table(client, factory, cash=100_00)
    _index, start, _end = promotions.cashback_period(cashback, utcnow())
    with freeze_time(start + timedelta(hours=5)):
        busy.bet("b1", "10.00")
        free.bet("b1", "10.00")
    other = promo(type="no_deposit", bonus_amount_minor=5_00, match_percent=0)
    client.post(f"/api/promotions/claim/{other.id}",
                headers=token_for(db.session.get(User, busy.user_id)), json={})  # fmt: skip
    report = pay_cashback()
    assert (report["paid"], report["skipped_open_bonus"]) == (1, 1)
    assert free.balances() == (90_00, 2_00)  # a 2.00 bonus to wager once
    (bonus,) = bonuses_of(free.user_id)
    assert (bonus.status, bonus.wagering_required_minor) == ("active", 2_00)
    assert busy.balances() == (90_00, 5_00)
    reconcile_clean()
