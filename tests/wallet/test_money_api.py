"""Player and staff money endpoints."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from tests.moneykit import fund, open_table, reconcile_clean


@pytest.fixture
def played(client, factory):
    """A player who deposited, bet twice and won once."""
    t = open_table(client, factory, cash=50_00, bonus=5_00)
    t.bet("b1", "10.00", round_id="r1")
    t.win("w1", "25.00", round_id="r1")
    t.end_round("r1")
    t.bet("b2", "5.00", round_id="r2")
    return t


def test_balance_shows_the_main_wallet_and_every_wallet(client, factory, token_for):
    player = factory.player()
    fund(player.id, cash=152_40, bonus=30_00)
    fund(player.id, cash=1_00, currency="USD")
    response = client.get("/api/user/balance", headers=token_for(player))
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert (data["balance"], data["bonus_balance"], data["currency"]) == ("152.40", "30.00", "EUR")
    assert {w["currency"] for w in data["wallets"]} == {"EUR", "USD"}


def test_balance_of_a_player_without_wallet_is_zero(client, factory, token_for):
    player = factory.player()
    data = client.get("/api/user/balance", headers=token_for(player)).get_json()["data"]
    assert (data["balance"], data["currency"]) == ("0.00", "EUR")


def test_balance_needs_a_player_token(client, factory, token_for):
    assert client.get("/api/user/balance").status_code == 401
    staff = factory.staff("support")
    assert client.get("/api/user/balance", headers=token_for(staff)).status_code == 403


def test_transactions_are_the_players_ledger_with_filters_and_pagination(client, played, token_for):
    player = db.session.get(User, played.user_id)
    headers = token_for(player)
    body = client.get("/api/user/transactions?limit=2", headers=headers).get_json()
    assert body["meta"] == {
        "page": 1,
        "limit": 2,
        "total": 5,
    }
    assert [t["type"] for t in body["data"]] == ["bet", "win"]
    assert body["data"][0]["amount"] == "-5.00"
    bets = client.get("/api/user/transactions?type=bet", headers=headers).get_json()
    assert {t["type"] for t in bets["data"]} == {"bet"}
    assert bets["meta"]["total"] == 2
    multi = client.get("/api/user/transactions?type=bet,win", headers=headers).get_json()
    assert multi["meta"]["total"] == 3
    bad = client.get("/api/user/transactions?type=steal", headers=headers)
    assert bad.status_code == 400
    assert bad.get_json()["code"] == "VALIDATION_ERROR"
    none = client.get("/api/user/transactions?date_to=2000-01-01", headers=headers).get_json()
    assert none["meta"]["total"] == 0


def test_transactions_never_show_another_players_ledger(client, played, factory, token_for):
    other = factory.player()
    body = client.get("/api/user/transactions", headers=token_for(other)).get_json()
    assert body["data"] == []


def test_bets_list_rounds_with_status_and_outcome(client, played, token_for):
    headers = token_for(db.session.get(User, played.user_id))
    body = client.get("/api/user/bets", headers=headers).get_json()
    assert body["meta"]["total"] == 2
    newest, oldest = body["data"]
    assert (newest["status"], newest["outcome"], newest["bet_amount"]) == ("pending", None, "5.00")
    assert (oldest["status"], oldest["outcome"], oldest["win_amount"]) == (
        "completed",
        "win",
        "25.00",
    )
    done = client.get("/api/user/bets?status=completed", headers=headers).get_json()
    assert [b["round_id"] for b in done["data"]] == ["r1"]
    by_game = client.get(f"/api/user/bets?game_id={oldest['game_id']}", headers=headers)
    assert by_game.get_json()["meta"]["total"] == 2


def test_adjust_balance_credits_debits_and_audits(client, factory, token_for):
    player = factory.player()
    manager = factory.staff("manager")
    url = f"/api/admin/users/{player.id}/adjust-balance"
    credit = client.post(
        url, json={"amount": "12.50", "reason": "goodwill"}, headers=token_for(manager)
    )
    assert credit.status_code == 201, credit.get_json()
    assert credit.get_json()["data"]["balance"] == "12.50"
    debit = client.post(
        url,
        json={"amount": -2.5, "reason": "correction", "currency": "EUR"},
        headers=token_for(manager),
    )
    assert debit.get_json()["data"]["balance"] == "10.00"
    bonus = client.post(
        url,
        json={"amount": "3", "reason": "promo", "balance_type": "bonus"},
        headers=token_for(manager),
    )
    assert bonus.get_json()["data"]["bonus_balance"] == "3.00"
    audits = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "wallet.adjust")).all()
    assert [a.reason for a in audits] == ["goodwill", "correction", "promo"]
    reconcile_clean()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"amount": "1.00"}, "VALIDATION_ERROR"),
        ({"amount": "0.001", "reason": "x" * 5}, "VALIDATION_ERROR"),
        ({"amount": "abc", "reason": "x" * 5}, "VALIDATION_ERROR"),
        ({"amount": 1e309, "reason": "x" * 5}, "VALIDATION_ERROR"),
        ({"amount": "-1.00", "reason": "x" * 5}, "INSUFFICIENT_BALANCE"),
        ({"amount": "1.00", "reason": "x" * 5, "currency": "ZZZ"}, "VALIDATION_ERROR"),
        ({"amount": "0", "reason": "x" * 5}, "VALIDATION_ERROR"),
    ],
)
def test_adjust_balance_refuses_bad_requests_with_nothing_written(
    client, factory, token_for, body, code
):
    player = factory.player()
    manager = factory.staff("manager")
    response = client.post(
        f"/api/admin/users/{player.id}/adjust-balance", json=body, headers=token_for(manager)
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == code
    reconcile_clean()
    assert (
        db.session.scalar(
            sa.select(sa.func.count(AuditLog.id)).where(AuditLog.action == "wallet.adjust")
        )
        == 0
    )


def test_adjust_balance_with_idempotency_key_applies_once(client, factory, token_for):
    player = factory.player()
    manager = factory.staff("manager")
    headers = {**token_for(manager), "Idempotency-Key": "click-1"}
    url = f"/api/admin/users/{player.id}/adjust-balance"
    first = client.post(url, json={"amount": "5", "reason": "goodwill"}, headers=headers)
    second = client.post(url, json={"amount": "5", "reason": "goodwill"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.get_json()["data"]["balance"] == "5.00"


@pytest.mark.parametrize(("role", "status"), [("support", 403), ("agent", 403), ("admin", 201)])
def test_adjust_balance_needs_balances_adjust(client, factory, token_for, role, status):
    player = factory.player()
    staff = factory.staff(role)
    response = client.post(
        "/api/payments/manual-adjustment".replace("/api/", "/api/admin/"),
        json={"user_id": player.id, "amount": "1", "reason": "test credit"},
        headers=token_for(staff),
    )
    assert response.status_code == status
    assert (
        client.post(
            f"/api/admin/users/{player.id}/adjust-balance",
            json={"amount": "1", "reason": "x"},
            headers=token_for(player),
        ).status_code
        == 403
    )


def test_manual_adjustment_of_unknown_user_is_404(client, factory, token_for):
    manager = factory.staff("manager")
    response = client.post(
        "/api/admin/payments/manual-adjustment",
        json={"user_id": 999999, "amount": "1", "reason": "test credit"},
        headers=token_for(manager),
    )
    assert response.status_code == 404


def test_admin_bets_filters_and_summarizes(client, played, factory, token_for):
    support = factory.staff("support")
    body = client.get(
        f"/api/admin/bets?user_id={played.user_id}", headers=token_for(support)
    ).get_json()
    assert body["meta"]["total"] == 2
    assert body["summary"]["EUR"] == {
        "rounds": 2,
        "total_bet": "15.00",
        "total_win": "25.00",
        "ggr": "-10.00",
    }
    wins = client.get("/api/admin/bets?outcome=win", headers=token_for(support)).get_json()
    assert [b["round_id"] for b in wins["data"]] == ["r1"]
    assert (
        client.get("/api/admin/bets", headers=token_for(factory.staff("agent"))).status_code == 403
    )


def test_admin_transactions_filters_and_summarizes(client, played, factory, token_for):
    manager = factory.staff("manager")
    body = client.get(
        f"/api/admin/transactions?user_id={played.user_id}&type=bet,win",
        headers=token_for(manager),
    ).get_json()
    assert body["meta"]["total"] == 3
    summary = body["summary"]["EUR"]["by_type"]
    assert summary["bet"] == {"count": 2, "amount": "-15.00"}
    assert summary["win"] == {"count": 1, "amount": "25.00"}


def test_callback_log_is_listed_for_staff_with_filters(client, played, factory, token_for):
    manager = factory.staff("manager")
    played.bet("b9", "999.00", round_id="r3")
    body = client.get(
        "/api/admin/providers/callbacks?verdict=INSUFFICIENT_FUNDS", headers=token_for(manager)
    ).get_json()
    assert body["meta"]["total"] == 1
    row = body["data"][0]
    assert row["transaction_id"] == "b9"
    assert row["payload"]["amount"] == "999.00"
    everything = client.get(
        f"/api/admin/providers/callbacks?provider={played.provider_code}&action=bet",
        headers=token_for(manager),
    ).get_json()
    assert everything["meta"]["total"] == 3
    assert (
        client.get(
            "/api/admin/providers/callbacks", headers=token_for(factory.staff("support"))
        ).status_code
        == 403
    )


def test_replay_of_a_logged_callback_is_idempotent_and_audited(client, played, factory, token_for):
    from app.play.models import ProviderCallback

    admin = factory.staff("admin")
    first = db.session.scalar(
        sa.select(ProviderCallback).where(ProviderCallback.transaction_id == "b1")
    )
    before = played.balances()
    response = client.post(
        f"/api/admin/providers/callbacks/{first.id}/replay", headers=token_for(admin)
    )
    assert response.status_code == 200
    assert response.get_json()["data"]["status"] == "ok"
    assert played.balances() == before
    assert (
        db.session.scalar(
            sa.select(sa.func.count(AuditLog.id)).where(AuditLog.action == "callback.replay")
        )
        == 1
    )
    manager = factory.staff("manager")  # callbacks.read but not callbacks.replay
    assert (
        client.post(
            f"/api/admin/providers/callbacks/{first.id}/replay", headers=token_for(manager)
        ).status_code
        == 403
    )
