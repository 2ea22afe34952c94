"""Console tournaments: list, create/edit with the prize table, leaderboard and settlement
status, cancel and delete (fees refunded), permission guarded."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.bonus import promotions
from app.core.base import utcnow
from app.core.extensions import db
from app.core.models import AuditLog
from app.prizes import tournaments
from app.prizes.models import Tournament
from tests.moneykit import fund, open_table, reconcile_clean

HX = {"HX-Request": "true"}


def _form(**kw) -> dict[str, str]:
    start = utcnow() + timedelta(hours=1)
    data = {
        "name": "Console Cup",
        "description": "",
        "currency": "EUR",
        "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "scoring": "wagered",
        "entry": "opt_in",
        "entry_fee": "1.50",
        "min_bet": "0.10",
        "max_participants": "50",
        "game_ids": "",
        "prizes": "100.00\n25.00 bonus\n",
        "bonus_promotion_id": "",
    }
    data.update(kw)
    return data


def _terms():
    p = promotions.create_promotion(
        {
            "name": "Prize terms",
            "type": "no_deposit",
            "currency": "EUR",
            "bonus_amount_minor": 1_00,
            "wagering_multiplier": 30,
        }
    )
    return promotions.set_status(p.id, "active")


def _running(factory, **kw) -> Tournament:
    now = utcnow()
    data = {
        "name": "Live Race",
        "currency": "EUR",
        "starts_at": now - timedelta(minutes=5),
        "ends_at": now + timedelta(hours=1),
        "prizes": ["10.00"],
    }
    data.update(kw)
    return tournaments.create(data, actor=factory.staff("admin"))


def test_only_staff_who_manage_promotions_see_tournaments(signed_in, factory):
    tour = _running(factory)
    support, _ = signed_in("support")
    assert support.get("/admin/tournaments").status_code == 403
    assert support.get(f"/admin/tournaments/{tour.id}").status_code == 403
    manager, _ = signed_in("manager")
    html = manager.get("/admin/tournaments").get_data(as_text=True)
    assert f'id="tournament-row-{tour.id}"' in html
    assert "Live Race" in html
    assert 'href="/admin/tournaments"' in html  # in the menu


def test_create_with_a_cash_and_bonus_prize_table(signed_in):
    terms = _terms()
    manager, staff = signed_in("manager")
    bad = manager.post("/admin/tournaments/new", data=_form())  # bonus line, no terms
    assert bad.status_code == 400
    assert "Bonus prizes need the promotion" in bad.get_data(as_text=True)
    wrong_line = manager.post(
        "/admin/tournaments/new", data=_form(prizes="100 cash please", bonus_promotion_id="1")
    )
    assert wrong_line.status_code == 400
    assert "Line 1" in wrong_line.get_data(as_text=True)
    ok = manager.post("/admin/tournaments/new", data=_form(bonus_promotion_id=str(terms.id)))
    assert ok.status_code == 302, ok.get_data(as_text=True)[:2000]
    tour = db.session.scalar(sa.select(Tournament).where(Tournament.name == "Console Cup"))
    assert tournaments.prize_table(tour) == [(100_00, "cash"), (25_00, "bonus")]
    assert (tour.entry_fee, tour.max_participants, tour.bonus_promotion_id) == (
        1_50,
        50,
        terms.id,
    )
    audit = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "tournament.create"))
    assert audit.actor_id == staff.user.id
    page = manager.get(ok.headers["Location"]).get_data(as_text=True)
    assert "25.00 EUR" in page
    assert "bonus" in page


def test_editing_a_running_tournament_changes_only_what_may_change(signed_in, factory):
    tour = _running(factory, scoring="wagered")
    manager, _ = signed_in("manager")
    form_page = manager.get(f"/admin/tournaments/{tour.id}/edit").get_data(as_text=True)
    assert 'value="Live Race"' in form_page
    start = tour.starts_at.strftime("%Y-%m-%dT%H:%M")
    end = tour.ends_at.strftime("%Y-%m-%dT%H:%M")
    same = {
        "starts_at": start,
        "ends_at": end,
        "entry": "free",
        "entry_fee": "0.00",
        "min_bet": "0.00",
        "max_participants": "",
        "prizes": "10.00",
    }
    renamed = manager.post(
        f"/admin/tournaments/{tour.id}/edit", data=_form(name="Renamed Race", **same)
    )
    assert renamed.status_code == 302, renamed.get_data(as_text=True)[:2000]
    db.session.expire_all()
    assert db.session.get(Tournament, tour.id).name == "Renamed Race"
    refused = manager.post(
        f"/admin/tournaments/{tour.id}/edit",
        data=_form(name="Renamed Race", **{**same, "scoring": "net"}),
    )
    assert refused.status_code == 400
    assert "Cannot change scoring after the start" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Tournament, tour.id).scoring == "wagered"


def test_delete_before_start_refunds_fees_and_a_running_one_cannot_be_deleted(signed_in, factory):
    upcoming = tournaments.create(
        {
            "name": "Soon",
            "currency": "EUR",
            "starts_at": utcnow() + timedelta(hours=1),
            "ends_at": utcnow() + timedelta(hours=2),
            "entry": "opt_in",
            "entry_fee": "3.00",
        },
        actor=factory.staff("admin"),
    )
    player = factory.player()
    fund(player.id, 10_00)
    tournaments.join(upcoming.id, player)
    running = _running(factory)
    manager, _ = signed_in("manager")
    listing = manager.get("/admin/tournaments").get_data(as_text=True)
    assert f"/admin/tournaments/{upcoming.id}/delete" in listing
    assert f"/admin/tournaments/{running.id}/delete" not in listing
    modal = manager.get(f"/admin/tournaments/{upcoming.id}/delete?context=row", headers=HX)
    assert "Delete Soon" in modal.get_data(as_text=True)
    done = manager.post(
        f"/admin/tournaments/{upcoming.id}/delete", data={"context": "row"}, headers=HX
    )
    assert done.status_code == 200
    assert "deleted; entry fees refunded" in done.get_data(as_text=True)
    assert db.session.get(Tournament, upcoming.id) is None
    refused = manager.post(
        f"/admin/tournaments/{running.id}/delete", data={"context": "row"}, headers=HX
    )
    assert "only before it starts" in refused.get_data(as_text=True)
    assert db.session.get(Tournament, running.id) is not None
    from tests.prizes.test_tournaments_fees import cash_of

    assert cash_of(player.id) == 10_00
    reconcile_clean()


def test_cancel_needs_a_reason_and_refunds(signed_in, factory):
    tour = _running(factory, entry="opt_in", entry_fee="2.00")
    player = factory.player()
    fund(player.id, 10_00)
    tournaments.join(tour.id, player)
    manager, _ = signed_in("manager")
    url = f"/admin/tournaments/{tour.id}/cancel"
    no_reason = manager.post(url, data={"context": "row", "reason": ""}, headers=HX)
    assert 'class="modal"' in no_reason.get_data(as_text=True)
    done = manager.post(url, data={"context": "row", "reason": "game outage"}, headers=HX)
    html = done.get_data(as_text=True)
    assert f'id="tournament-row-{tour.id}"' in html
    assert "cancelled" in html
    detail = manager.get(f"/admin/tournaments/{tour.id}").get_data(as_text=True)
    assert "game outage" in detail
    assert "(refunded)" in detail
    reconcile_clean()


def test_the_leaderboard_and_settlement_status_show_the_ranking_and_prizes(
    signed_in, factory, client
):
    tour = _running(factory, prizes=["10.00", "5.00"])
    a = open_table(client, factory, cash=100_00)
    b = open_table(client, factory, cash=100_00)
    a.bet("a1", "7.00", round_id="ra")
    b.bet("b1", "3.00", round_id="rb")
    manager, _ = signed_in("manager")
    live = manager.get(f"/admin/tournaments/{tour.id}").get_data(as_text=True)
    assert "not yet" in live
    assert live.index(f"/admin/players/{a.user_id}") < live.index(f"/admin/players/{b.user_id}")
    db.session.execute(
        sa.update(Tournament)
        .where(Tournament.id == tour.id)
        .values(ends_at=utcnow() - timedelta(seconds=1))
    )
    tournaments.settle(tour.id)
    settled = manager.get(f"/admin/tournaments/{tour.id}").get_data(as_text=True)
    assert "settled" in settled
    assert "cash paid" in settled
    assert "10.00 EUR" in settled
    reconcile_clean()
