"""Responsible gaming: limits bind at once when lowered and after 24 h when raised; excluded
players cannot deposit, launch or bet but keep access to their money."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time

from app.compliance import responsible_gaming as rg
from app.core.base import utcnow
from app.core.errors import LimitExceeded, SelfExcluded
from tests.payments_helpers import sandbox_gateway


@pytest.fixture
def gateway(app):
    return sandbox_gateway()


def set_limit(client, headers, **body):
    return client.post("/api/responsible-gaming/set-limit", headers=headers, json=body)


def deposit(client, headers, amount, **extra):
    return client.post(
        "/api/payment/deposit",
        headers=headers,
        json={"amount": amount, "currency": "EUR", "method": "sandbox", **extra},
    )


def test_a_deposit_over_the_daily_limit_is_refused(client, factory, token_for, gateway):
    player = factory.player()
    headers = token_for(player)
    assert (
        set_limit(client, headers, type="deposit", period="daily", amount="100.00").json["data"][
            "outcome"
        ]
        == "applied"
    )
    first = deposit(client, headers, "60.00")
    assert first.status_code == 201, first.json
    assert first.json["data"]["status"] == "pending"
    assert first.json["data"]["payment_url"].endswith(
        f"/sandbox/checkout/{first.json['data']['transaction_id']}"
    )
    over = deposit(client, headers, "40.01")
    assert over.status_code == 400
    assert over.json["code"] == "LIMIT_EXCEEDED"
    assert over.json["limit"]["remaining"] == "40.00"
    assert deposit(client, headers, "40.00").status_code == 201


def test_the_lowest_applicable_limit_binds(client, factory, token_for, gateway):
    player = factory.player()
    headers = token_for(player)
    set_limit(client, headers, type="deposit", period="monthly", amount=50)
    set_limit(client, headers, type="deposit", period="daily", amount=500)
    response = deposit(client, headers, "60")
    assert response.status_code == 400
    assert response.json["limit"]["period"] == "monthly"


def test_lowering_a_limit_applies_at_once_and_raising_waits_24_hours(
    client, factory, token_for, gateway
):
    player = factory.player()
    headers = token_for(player)
    set_limit(client, headers, type="deposit", period="daily", amount=100)
    lowered = set_limit(client, headers, type="deposit", period="daily", amount=20)
    assert lowered.json["data"]["outcome"] == "applied"
    assert deposit(client, headers, "25").json["code"] == "LIMIT_EXCEEDED"

    raised = set_limit(client, headers, type="deposit", period="daily", amount=1000)
    assert raised.json["data"]["outcome"] == "pending"
    limit = raised.json["data"]["limits"]["limits"][0]
    assert limit["amount"] == "20.00"
    assert limit["pending"]["amount"] == "1000.00"
    assert deposit(client, headers, "25").json["code"] == "LIMIT_EXCEEDED"

    with freeze_time(utcnow() + timedelta(hours=24, minutes=1)):
        headers = token_for(player)  # the old access token expired meanwhile
        later = client.get("/api/responsible-gaming/limits", headers=headers).json["data"]
        assert later["limits"][0]["amount"] == "1000.00"
        assert later["limits"][0]["pending"] is None
        assert deposit(client, headers, "25").status_code == 201


def test_removing_a_limit_waits_out_the_cooling_off(client, factory, token_for, gateway):
    player = factory.player()
    headers = token_for(player)
    set_limit(client, headers, type="deposit", period="weekly", amount=10)
    removed = set_limit(client, headers, type="deposit", period="weekly", remove=True)
    assert removed.json["data"]["outcome"] == "pending"
    assert deposit(client, headers, "11").json["code"] == "LIMIT_EXCEEDED"
    with freeze_time(utcnow() + timedelta(hours=25)):
        headers = token_for(player)
        assert deposit(client, headers, "11").status_code == 201
        assert (
            client.get("/api/responsible-gaming/limits", headers=headers).json["data"]["limits"]
            == []
        )


def test_setting_the_current_value_again_cancels_a_pending_raise(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    set_limit(client, headers, type="loss", period="daily", amount=30)
    set_limit(client, headers, type="loss", period="daily", amount=300)
    again = set_limit(client, headers, type="loss", period="daily", amount=30)
    assert again.json["data"]["outcome"] == "applied"
    assert again.json["data"]["limits"]["limits"][0]["pending"] is None


def test_limit_validation(client, factory, token_for):
    headers = token_for(factory.player())
    assert set_limit(client, headers, type="deposit", period="yearly", amount=1).status_code == 400
    assert set_limit(client, headers, type="deposit", period="daily", amount=0).status_code == 400
    assert (
        set_limit(client, headers, type="deposit", period="daily", amount="1.001").json["errors"][
            0
        ]["field"]
        == "amount"
    )
    assert set_limit(client, headers, type="session_time", period="daily").status_code == 400


def test_session_time_limit_stops_game_launch_after_the_minutes_are_used(factory):
    player = factory.player()
    rg.set_limit(player, limit_type="session_time", period="daily", value=30)
    start = utcnow()
    with freeze_time(start):
        rg.check_game_launch_allowed(player)
    with freeze_time(start + timedelta(minutes=20)):
        rg._touch_session(player, start=False)
    with freeze_time(start + timedelta(minutes=31)):
        rg._touch_session(player, start=False)
        assert rg.session_minutes_since(player.id, start - timedelta(hours=1)) == 31
        with pytest.raises(LimitExceeded):
            rg.check_game_launch_allowed(player)


def test_self_excluded_player_is_blocked_from_deposit_launch_bet_and_promotions(
    client, factory, token_for, gateway
):
    player = factory.player()
    headers = token_for(player)
    response = client.post(
        "/api/responsible-gaming/self-exclude", headers=headers, json={"duration": "6_months"}
    )
    assert response.status_code == 201
    assert response.json["data"]["kind"] == "self_exclusion"
    blocked = deposit(client, headers, "10")
    assert blocked.status_code == 403
    assert blocked.json["code"] == "SELF_EXCLUDED"
    with pytest.raises(SelfExcluded):
        rg.check_game_launch_allowed(player)
    with pytest.raises(SelfExcluded):
        rg.check_bet_allowed(player, 100, "EUR")
    with pytest.raises(SelfExcluded):
        rg.check_promotions_allowed(player)
    # ...but may still log in and look at their limits and KYC state.
    assert client.get("/api/responsible-gaming/limits", headers=headers).status_code == 200
    assert client.get("/api/kyc/status", headers=headers).status_code == 200


def test_self_exclusion_cannot_be_shortened_and_does_not_end_silently(client, factory, token_for):
    player = factory.player()
    admin = factory.staff("admin")
    headers = token_for(player)
    row = client.post(
        "/api/responsible-gaming/self-exclude", headers=headers, json={"duration": "7_days"}
    ).json["data"]
    shorter = client.post(
        "/api/responsible-gaming/self-exclude", headers=headers, json={"duration": "24_hours"}
    )
    assert shorter.status_code == 409
    lift_url = f"/api/admin/responsible-gaming/exclusions/{row['id']}/lift"
    early = client.post(lift_url, headers=token_for(admin), json={"reason": "asked nicely"})
    assert early.status_code == 409
    with freeze_time(utcnow() + timedelta(days=8)):
        admin_headers = token_for(admin)
        assert rg.is_excluded(player.id)  # expired, but still in force until lifted
        lifted = client.post(lift_url, headers=admin_headers, json={"reason": "period over"})
        assert lifted.status_code == 200, lifted.json
        assert not rg.is_excluded(player.id)


def test_a_time_out_ends_by_itself(client, factory, token_for, gateway):
    player = factory.player()
    headers = token_for(player)
    response = client.post(
        "/api/responsible-gaming/time-out", headers=headers, json={"duration": "24_hours"}
    )
    assert response.status_code == 201
    assert deposit(client, headers, "10").json["code"] == "SELF_EXCLUDED"
    with freeze_time(utcnow() + timedelta(hours=25)):
        assert deposit(client, token_for(player), "10").status_code == 201


def test_permanent_exclusion_can_never_be_lifted(factory):
    player = factory.player()
    admin = factory.staff("admin")
    row = rg.self_exclude(player, "permanent")
    from app.core.errors import Conflict

    with freeze_time(utcnow() + timedelta(days=3650)), pytest.raises(Conflict):
        rg.lift_exclusion(row.id, admin, "ten years later")


def test_reality_check_interval(client, factory, token_for):
    headers = token_for(factory.player())
    url = "/api/responsible-gaming/reality-check"
    assert client.post(url, headers=headers, json={"interval_minutes": 7}).status_code == 400
    assert client.post(url, headers=headers, json={"interval_minutes": 30}).status_code == 200
    assert client.get(url, headers=headers).json["data"]["interval_minutes"] == 30
    limits = client.get("/api/responsible-gaming/limits", headers=headers).json["data"]
    assert limits["reality_check_minutes"] == 30


def test_staff_see_a_players_limits_and_exclusions(client, factory, token_for):
    player = factory.player()
    support = factory.staff("support")
    rg.time_out(player, "7_days")
    response = client.get(f"/api/admin/responsible-gaming/{player.id}", headers=token_for(support))
    assert response.status_code == 200
    assert response.json["data"]["exclusions"][0]["kind"] == "time_out"
    assert (
        client.get(
            f"/api/admin/responsible-gaming/{player.id}", headers=token_for(factory.player())
        ).status_code
        == 403
    )


def test_self_excluded_player_gets_player_blocked_on_a_signed_bet_callback(client, factory):
    from tests.moneykit import open_table, reconcile_clean

    table = open_table(client, factory, cash=50_00)
    player = db_user(table.user_id)
    rg.self_exclude(player, "1_year")
    answer = table.bet("b-excluded", "1.00")
    assert answer["status"] == "error"
    assert answer["code"] == "PLAYER_BLOCKED"
    assert table.balances() == (50_00, 0)
    reconcile_clean()


def test_loss_limit_refuses_the_bet_that_could_pass_it(client, factory):
    from tests.moneykit import open_table

    table = open_table(client, factory, cash=100_00)
    player = db_user(table.user_id)
    rg.set_limit(player, limit_type="loss", period="daily", value=10_00, currency="EUR")
    assert table.bet("b1", "6.00")["status"] == "ok"
    assert table.win("w1", "1.00")["status"] == "ok"  # net loss 5.00
    refused = table.bet("b2", "5.01", round_id="r2")
    assert refused["status"] == "error"
    assert refused["code"] == "LIMIT_EXCEEDED"
    assert table.bet("b3", "5.00", round_id="r3")["status"] == "ok"
    totals = rg.play_totals(player.id, "EUR", utcnow() - timedelta(days=1))
    assert (totals.stakes, totals.wins, totals.loss) == (11_00, 1_00, 10_00)


def test_wager_limit_counts_stakes_not_net(client, factory):
    from tests.moneykit import open_table

    table = open_table(client, factory, cash=100_00)
    player = db_user(table.user_id)
    rg.set_limit(player, limit_type="wager", period="weekly", value=20_00, currency="EUR")
    assert table.bet("b1", "15.00")["status"] == "ok"
    assert table.win("w1", "15.00")["status"] == "ok"
    assert table.bet("b2", "5.01", round_id="r2")["code"] == "LIMIT_EXCEEDED"


def test_game_launch_is_refused_while_self_excluded(factory):
    from app.play import games
    from tests.moneykit import make_game, make_provider

    provider = make_provider()
    game = make_game(provider.code, "roulette")
    player = factory.player()
    rg.self_exclude(player, "1_month")
    with pytest.raises(SelfExcluded) as refused:
        games.launch(player, game.id)
    assert refused.value.status == 403  # the launch endpoint answers 403 SELF_EXCLUDED


def db_user(user_id):
    from app.core.extensions import db
    from app.identity.models import User

    return db.session.get(User, user_id)
