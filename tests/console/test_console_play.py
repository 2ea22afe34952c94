"""Bets and rounds, callback log with replay (Admin only), games and providers toggles."""

from __future__ import annotations

from sqlalchemy import select

from app.core.extensions import db
from app.core.models import AuditLog
from app.play.models import Game, Provider, ProviderCallback
from tests.moneykit import open_table

HX = {"HX-Request": "true"}


def _audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_bets_list_filters_by_player_and_totals_ggr(signed_in, factory, client):
    mine = open_table(client, factory, cash=100_00)
    mine.bet("b1", "10.00", round_id="r-mine")
    mine.win("w1", "3.00", round_id="r-mine")
    other = open_table(client, factory, cash=100_00)
    other.bet("b2", "7.00", round_id="r-other")
    support, _ = signed_in("support")
    html = support.get(f"/admin/bets?user_id={mine.user_id}").get_data(as_text=True)
    assert "r-mine" in html
    assert "r-other" not in html
    assert '<td class="num">10.00</td><td class="num">3.00</td><td class="num">7.00</td>' in html
    everything = support.get("/admin/bets").get_data(as_text=True)
    assert "r-mine" in everything
    assert "r-other" in everything


def test_an_admin_replays_a_logged_callback_and_money_moves_once(signed_in, factory, client):
    table = open_table(client, factory, cash=50_00)
    table.bet("b-replay", "5.00")
    callback = db.session.scalar(
        select(ProviderCallback).where(ProviderCallback.transaction_id == "b-replay")
    )
    before = table.ledger_count()
    manager, _ = signed_in("manager")
    listing = manager.get("/admin/callbacks").get_data(as_text=True)
    assert f'id="callback-row-{callback.id}"' in listing
    assert 'data-action="replay"' not in listing  # Managers read the log, Admins replay
    assert manager.post(f"/admin/callbacks/{callback.id}/replay", data={}).status_code == 403
    admin, admin_staff = signed_in("admin")
    assert 'data-action="replay"' in admin.get("/admin/callbacks").get_data(as_text=True)
    response = admin.post(
        f"/admin/callbacks/{callback.id}/replay", data={"context": "row"}, headers=HX
    )
    html = response.get_data(as_text=True)
    assert f'<tr id="callback-row-{callback.id}">' in html
    assert "replayed: ok (already applied" in html
    assert table.ledger_count() == before
    assert table.balances() == (45_00, 0)
    (row,) = _audits("callback.replay")
    assert (row.actor_id, row.target_id) == (admin_staff.user.id, str(callback.id))


def test_games_and_providers_are_toggled_with_an_audit_row_each(signed_in, factory, client):
    table = open_table(client, factory)
    game = db.session.scalar(select(Game).where(Game.external_id == table.game_external))
    provider = db.session.scalar(select(Provider).where(Provider.code == table.provider_code))
    manager, _ = signed_in("manager")
    assert game.name in manager.get("/admin/games").get_data(as_text=True)
    featured = manager.post(f"/admin/games/{game.id}/toggle/featured", headers=HX)
    assert "★ featured" in featured.get_data(as_text=True)
    off = manager.post(f"/admin/games/{game.id}/toggle/active", headers=HX)
    assert "badge-inactive" in off.get_data(as_text=True)
    db.session.expire_all()
    assert (db.session.get(Game, game.id).status, db.session.get(Game, game.id).is_featured) == (
        "inactive",
        True,
    )
    assert len(_audits("game.update")) == 2
    plain = manager.post(f"/admin/providers/{provider.id}/toggle")
    assert plain.status_code == 302  # without JavaScript: back to the list
    db.session.expire_all()
    assert db.session.get(Provider, provider.id).active is False
    assert len(_audits("provider.update")) == 1
    support, _ = signed_in("support")
    assert support.post(f"/admin/providers/{provider.id}/toggle").status_code == 403
    assert len(_audits("provider.update")) == 1
