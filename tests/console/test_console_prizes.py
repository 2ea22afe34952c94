"""Console jackpots (list, edit, Admin-only manual payout, wins) and lottery draws (list,
detail with the provably-fair data, create, cancel with refunds, run the draw)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core.base import utcnow
from app.core.extensions import db
from app.core.models import AuditLog
from app.prizes import jackpots, lottery
from app.prizes.models import JackpotPool, JackpotWin, LotteryDraw, LotteryTicket
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction
from tests.moneykit import fund, reconcile_clean

HX = {"HX-Request": "true"}


def _audit(action: str) -> list[AuditLog]:
    return list(db.session.scalars(sa.select(AuditLog).where(AuditLog.action == action)))


def _errors(html: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for block in re.findall(r'<div class="field[^"]*has-error">(.*?)</div>', html, re.S):
        name = re.search(r'\sid="([a-z_]+)"', block).group(1)
        out[name] = re.findall(r'<p class="field-error">([^<]*)</p>', block)
    return out


def _pool(**kw) -> JackpotPool:
    data = {
        "name": "Mega",
        "currency": "EUR",
        "seed_amount": "100.00",
        "contribution_percent": "1",
        "must_drop_by": "500.00",
    }
    data.update(kw)
    return jackpots.create_pool(data, actor=None)


def _cash(user_id: int) -> int:
    db.session.expire_all()
    w = wallet.wallet_for(user_id, "EUR")
    return 0 if w is None else w.balance


def _draw(**kw) -> LotteryDraw:
    now = utcnow()
    data = {
        "title": "Villa draw",
        "currency": "EUR",
        "prize_amount": "500.00",
        "ticket_price": "2.50",
        "max_tickets": 10,
        "max_per_player": 4,
        "sales_open_at": now - timedelta(minutes=5),
        "sales_close_at": now + timedelta(hours=1),
    }
    data.update(kw)
    return lottery.create(data, actor=None)


def _close_sales(draw_id: int) -> None:
    past = utcnow() - timedelta(seconds=1)
    db.session.execute(
        sa.update(LotteryDraw)
        .where(LotteryDraw.id == draw_id)
        .values(sales_close_at=past, draw_at=past)
    )
    db.session.commit()


# --- jackpots --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["support", "agent"])
def test_jackpot_and_lottery_pages_need_promotions_manage(signed_in, role):
    pool, draw = _pool(), _draw()
    client, _ = signed_in(role)
    for url in (
        "/admin/jackpots",
        f"/admin/jackpots/{pool.id}",
        f"/admin/jackpots/{pool.id}/edit",
        f"/admin/jackpots/{pool.id}/payout",
        "/admin/lottery",
        "/admin/lottery/new",
        f"/admin/lottery/{draw.id}",
        f"/admin/lottery/{draw.id}/cancel",
        f"/admin/lottery/{draw.id}/draw",
    ):
        assert client.get(url).status_code == 403, url
    assert (
        client.post(f"/admin/lottery/{draw.id}/cancel", data={"reason": "xyz"}).status_code == 403
    )
    assert client.post(f"/admin/jackpots/{pool.id}/edit", data={"name": "X"}).status_code == 403
    db.session.expire_all()
    assert db.session.get(LotteryDraw, draw.id).status == "scheduled"
    assert db.session.get(JackpotPool, pool.id).name == "Mega"


def test_the_jackpot_list_shows_current_amounts_and_recent_wins(signed_in, factory):
    pool = _pool(name="Grand", tier="grand")
    _pool(name="Paused one", status="paused", seed_amount="5.00", must_drop_by=None)
    winner = factory.player(username="lucky_lu")
    admin = factory.staff("admin")
    jackpots.manual_payout(pool.id, winner.id, actor=admin, reason="provider reported hit")
    client, _ = signed_in("manager")
    html = client.get("/admin/jackpots").get_data(as_text=True)
    assert ">Jackpots</a>" in html
    row = html[html.index(f'id="jackpot-row-{pool.id}"') :]
    row = row[: row.index("</tr>")]
    assert "100.00 EUR" in row  # restarted at its seed after the win
    assert "grand" in row
    assert "Paused one" in html
    assert "badge-paused" in html
    wins = html[html.index('id="jackpot-wins-table"') :]
    assert "lucky_lu" in wins
    assert "100.00 EUR" in wins
    assert "manual" in wins
    detail = client.get(f"/admin/jackpots/{pool.id}").get_data(as_text=True)
    assert "provider reported hit" in detail
    assert pool.drop_commitment in detail
    assert 'data-action="payout"' not in detail  # a Manager may not pay manually


def test_a_jackpot_is_created_through_the_form_and_bad_input_saves_nothing(signed_in):
    client, manager = signed_in("manager")
    form = {
        "name": "Daily drop",
        "currency": "EUR",
        "status": "active",
        "tier": "mini",
        "group_code": "daily",
        "seed_amount": "10",
        "contribution_percent": "0.25",
        "cap_amount": "",
        "must_drop_by": "50.00",
        "hit_odds": "",
        "min_bet": "0.20",
        "game_ids": "",
    }
    for bad, field in (
        ({"must_drop_by": "5.00"}, "must_drop_by"),  # not above the seed
        ({"contribution_percent": ""}, "contribution_percent"),
        ({"currency": "XX"}, "currency"),
        ({"min_bet": "0.205"}, "min_bet"),
    ):
        response = client.post("/admin/jackpots/new", data={**form, **bad})
        assert response.status_code == 400
        assert _errors(response.get_data(as_text=True)).get(field), bad
    assert db.session.scalar(sa.select(sa.func.count(JackpotPool.id))) == 0
    response = client.post("/admin/jackpots/new", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    pool = db.session.scalars(sa.select(JackpotPool)).one()
    assert (pool.seed_amount, pool.contribution_bps, pool.must_drop_by, pool.min_bet) == (
        10_00,
        25,
        50_00,
        20,
    )
    assert (pool.tier, pool.group_code, pool.cap_amount, pool.hit_odds) == (
        "mini",
        "daily",
        None,
        None,
    )
    assert pool.drop_commitment
    (row,) = _audit("jackpot.create")
    assert row.actor_id == manager.user.id


def test_editing_a_jackpot_sends_only_changed_fields_to_the_service(signed_in):
    pool = _pool()
    commitment = pool.drop_commitment
    client, manager = signed_in("manager")
    page = client.get(f"/admin/jackpots/{pool.id}/edit").get_data(as_text=True)
    assert re.search(r'id="seed_amount"[^>]*value="100.00"', page)
    assert re.search(r'id="contribution_percent"[^>]*value="1.00"', page)
    form = {
        "name": "Mega Millions",
        "status": "active",
        "tier": "",
        "group_code": "",
        "seed_amount": "100.00",
        "contribution_percent": "0.75",
        "cap_amount": "",
        "must_drop_by": "500.00",
        "hit_odds": "",
        "min_bet": "0.00",
        "game_ids": "",
    }
    response = client.post(f"/admin/jackpots/{pool.id}/edit", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    db.session.expire_all()
    pool = db.session.get(JackpotPool, pool.id)
    assert (pool.name, pool.contribution_bps) == ("Mega Millions", 75)
    # Neither the seed nor the bound was touched: the committed drop point stays.
    assert pool.drop_commitment == commitment
    (row,) = _audit("jackpot.update")
    assert row.actor_id == manager.user.id

    # A new bound redraws the drop point, as through the API.
    response = client.post(
        f"/admin/jackpots/{pool.id}/edit",
        data={
            **form,
            "name": "Mega Millions",
            "contribution_percent": "0.75",
            "must_drop_by": "800.00",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(JackpotPool, pool.id).drop_commitment != commitment


def test_a_jackpot_time_window_shows_on_the_pool_and_its_form_and_can_be_cleared(signed_in):
    pool = _pool(must_drop_within="24h")
    client, _manager = signed_in("manager")
    panel = client.get(f"/admin/jackpots/{pool.id}").get_data(as_text=True)
    assert "86400 s" in panel
    assert "Drop deadline" in panel
    page = client.get(f"/admin/jackpots/{pool.id}/edit").get_data(as_text=True)
    assert re.search(r'id="must_drop_within"[^>]*value="86400"', page)
    form = {
        "name": "Mega",
        "status": "active",
        "seed_amount": "100.00",
        "contribution_percent": "1.00",
        "must_drop_by": "500.00",
        "min_bet": "0.00",
        "must_drop_within": "",
    }
    response = client.post(f"/admin/jackpots/{pool.id}/edit", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    db.session.expire_all()
    assert db.session.get(JackpotPool, pool.id).drop_window_seconds is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cap_amount": "50.00"}, "cap_amount"),  # the service: the cap must exceed the seed
        ({"contribution_percent": "0.001"}, "contribution_percent"),
        ({"contribution_percent": "abc"}, "contribution_percent"),
        ({"seed_amount": "1e309"}, "seed_amount"),
        ({"seed_amount": "10.005"}, "seed_amount"),
        ({"hit_odds": "0"}, "hit_odds"),
        ({"status": "exploded"}, "status"),
        ({"game_ids": "1, two"}, "game_ids"),
    ],
)
def test_bad_jackpot_edits_are_refused_inline(signed_in, changes, field):
    pool = _pool()
    client, _ = signed_in("manager")
    response = client.post(f"/admin/jackpots/{pool.id}/edit", data={"name": "Mega", **changes})
    assert response.status_code == 400
    assert _errors(response.get_data(as_text=True)).get(field), response.get_data(as_text=True)[
        :500
    ]
    db.session.expire_all()
    pool = db.session.get(JackpotPool, pool.id)
    assert (pool.seed_amount, pool.contribution_bps, pool.cap_amount) == (100_00, 100, None)
    assert _audit("jackpot.update") == []


def test_a_manager_cannot_open_or_post_the_manual_payout(signed_in, factory):
    pool = _pool()
    player = factory.player()
    client, _ = signed_in("manager")
    assert client.get(f"/admin/jackpots/{pool.id}/payout").status_code == 403
    response = client.post(
        f"/admin/jackpots/{pool.id}/payout",
        data={"player": str(player.id), "reason": "try", "confirm": "y"},
    )
    assert response.status_code == 403
    assert _cash(player.id) == 0
    assert db.session.scalar(sa.select(sa.func.count(JackpotWin.id))) == 0


def test_an_admin_pays_a_jackpot_manually_with_reason_and_confirmation(signed_in, factory):
    pool = _pool()
    player = factory.player(username="winner_wendy")
    client, admin = signed_in("admin")
    detail = client.get(f"/admin/jackpots/{pool.id}").get_data(as_text=True)
    assert 'data-action="payout"' in detail
    url = f"/admin/jackpots/{pool.id}/payout"
    modal = client.get(url + "?context=panel", headers=HX).get_data(as_text=True)
    assert "100.00 EUR" in modal
    assert 'name="confirm"' in modal

    refusals = [
        {"player": "winner_wendy", "reason": "provider hit 991"},  # not confirmed
        {"player": "winner_wendy", "reason": "", "confirm": "y"},  # no reason
        {"player": "nobody_here", "reason": "provider hit 991", "confirm": "y"},
        {"player": str(admin.user.id), "reason": "provider hit 991", "confirm": "y"},  # staff
        {"player": "²", "reason": "provider hit 991", "confirm": "y"},  # isdigit, not int
        {"player": "9" * 20, "reason": "provider hit 991", "confirm": "y"},  # beyond BIGINT
    ]
    for data in refusals:
        response = client.post(url, data={**data, "context": "panel"}, headers=HX)
        assert response.headers.get("HX-Retarget") == "#modal-root", data
        assert "<dialog" in response.get_data(as_text=True)
    assert _cash(player.id) == 0

    response = client.post(
        url,
        data={
            "player": "winner_wendy",
            "reason": "provider hit 991",
            "confirm": "y",
            "context": "panel",
        },
        headers=HX,
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="jackpot-panel"' in html
    assert "winner_wendy" in html
    assert "Paid 100.00 EUR" in html
    assert _cash(player.id) == 100_00
    tx = db.session.scalars(
        sa.select(LedgerTransaction).where(LedgerTransaction.user_id == player.id)
    ).one()
    assert (tx.type, tx.cash_delta) == ("jackpot_win", 100_00)
    (row,) = _audit("jackpot.manual_payout")
    assert (row.actor_id, row.reason) == (admin.user.id, "provider hit 991")
    reconcile_clean()
    assert jackpots.reconcile() == []


# --- lottery ---------------------------------------------------------------------------------


def test_draws_list_and_detail_show_sales_state_and_seed_hash(signed_in, factory):
    draw = _draw()
    buyer = factory.player(username="ticket_tom")
    fund(buyer.id, 50_00)
    lottery.buy(draw.id, buyer, 3)
    _draw(title="Car draw", prize_type="item", prize_amount="0", prize_description="A red car")
    client, _ = signed_in("manager")
    html = client.get("/admin/lottery").get_data(as_text=True)
    assert ">Lottery</a>" in html
    row = html[html.index(f'id="draw-row-{draw.id}"') :]
    row = row[: row.index("</tr>")]
    assert "3 / 10" in row
    assert "badge-on_sale" in row
    assert "500.00 EUR" in row
    assert "A red car" in html
    assert "Car draw" not in client.get("/admin/lottery?status=drawn").get_data(as_text=True)
    detail = client.get(f"/admin/lottery/{draw.id}").get_data(as_text=True)
    assert draw.server_seed_hash in detail
    assert draw.server_seed not in detail  # revealed only after the draw
    assert "active: 3" in detail
    assert 'data-action="run-draw"' in detail
    assert 'data-action="cancel"' in detail


def test_a_draw_is_created_through_the_form(signed_in):
    client, manager = signed_in("manager")
    form = {
        "title": "Summer draw",
        "currency": "EUR",
        "prize_type": "cash",
        "prize_amount": "250",
        "ticket_price": "1.50",
        "max_tickets": "1000",
        "max_per_player": "20",
        "sales_open_at": "2026-12-01T10:00",
        "sales_close_at": "2026-12-08T10:00",
        "draw_at": "",
    }
    response = client.post("/admin/lottery/new", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    draw = db.session.scalars(sa.select(LotteryDraw)).one()
    assert (draw.prize_amount, draw.ticket_price, draw.max_tickets) == (250_00, 1_50, 1000)
    assert draw.draw_at == draw.sales_close_at  # defaults to the end of sales
    assert draw.sales_open_at.isoformat().startswith("2026-12-01T10:00")
    assert len(draw.server_seed_hash) == 64
    (row,) = _audit("lottery.create")
    assert row.actor_id == manager.user.id


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ticket_price": "0"}, "ticket_price"),
        ({"ticket_price": "-5"}, "ticket_price"),
        ({"ticket_price": "0.001"}, "ticket_price"),
        ({"max_tickets": "abc"}, "max_tickets"),
        ({"max_tickets": "0"}, "max_tickets"),
        ({"prize_amount": "0"}, "prize_amount"),  # a cash draw needs a prize
        ({"sales_close_at": "2026-11-30T10:00"}, "sales_close_at"),
        ({"sales_open_at": ""}, "sales_open_at"),
        ({"title": ""}, "title"),
    ],
)
def test_bad_draws_are_refused_inline_and_nothing_is_created(signed_in, changes, field):
    client, _ = signed_in("manager")
    form = {
        "title": "Summer draw",
        "currency": "EUR",
        "prize_type": "cash",
        "prize_amount": "250",
        "ticket_price": "1.50",
        "max_tickets": "1000",
        "sales_open_at": "2026-12-01T10:00",
        "sales_close_at": "2026-12-08T10:00",
    }
    response = client.post("/admin/lottery/new", data={**form, **changes})
    assert response.status_code == 400
    assert _errors(response.get_data(as_text=True)).get(field)
    assert db.session.scalar(sa.select(sa.func.count(LotteryDraw.id))) == 0
    assert _audit("lottery.create") == []


def test_cancelling_a_draw_refunds_every_ticket(signed_in, factory):
    draw = _draw()
    buyers = [factory.player() for _ in range(2)]
    for buyer in buyers:
        fund(buyer.id, 20_00)
        lottery.buy(draw.id, buyer, 2)
    assert [_cash(b.id) for b in buyers] == [15_00, 15_00]
    client, manager = signed_in("manager")
    url = f"/admin/lottery/{draw.id}/cancel"
    empty = client.post(url, data={"reason": "", "context": "panel"}, headers=HX)
    assert empty.headers.get("HX-Retarget") == "#modal-root"
    assert [_cash(b.id) for b in buyers] == [15_00, 15_00]
    response = client.post(
        url, data={"reason": "Prize supplier withdrew", "context": "panel"}, headers=HX
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="lottery-panel"' in html
    assert "badge-cancelled" in html
    assert "Prize supplier withdrew" in html
    assert 'data-action="run-draw"' not in html
    assert [_cash(b.id) for b in buyers] == [20_00, 20_00]
    statuses = db.session.scalars(sa.select(LotteryTicket.status)).all()
    assert set(statuses) == {"refunded"}
    (row,) = _audit("lottery.cancel")
    assert (row.actor_id, row.reason) == (manager.user.id, "Prize supplier withdrew")
    # Again: nothing moves twice, and the draw can't be drawn any more.
    client.post(url, data={"reason": "again please", "context": "panel"}, headers=HX)
    assert [_cash(b.id) for b in buyers] == [20_00, 20_00]
    client.post(f"/admin/lottery/{draw.id}/draw", data={"context": "panel"}, headers=HX)
    db.session.expire_all()
    assert db.session.get(LotteryDraw, draw.id).status == "cancelled"
    reconcile_clean()


def test_running_a_draw_picks_a_verifiable_winner_once(signed_in, factory):
    draw = _draw()
    buyers = [factory.player(username=f"buyer_{n}") for n in range(3)]
    for buyer in buyers:
        fund(buyer.id, 10_00)
        lottery.buy(draw.id, buyer, 2)
    client, manager = signed_in("manager")
    url = f"/admin/lottery/{draw.id}/draw"
    early = client.post(url, data={"context": "panel"}, headers=HX)
    assert early.headers.get("HX-Retarget") == "#modal-root"
    assert "The draw time has not come yet" in early.get_data(as_text=True)
    _close_sales(draw.id)
    response = client.post(url, data={"context": "panel"}, headers=HX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    db.session.expire_all()
    drawn = db.session.get(LotteryDraw, draw.id)
    assert drawn.status == "drawn"
    assert drawn.server_seed in html  # revealed
    assert "recomputed: matches" in html
    winner = next(b for b in buyers if b.id == drawn.winner_user_id)
    assert winner.username in html
    assert _cash(winner.id) == 5_00 + 500_00
    (row,) = _audit("lottery.draw")
    assert row.actor_id == manager.user.id
    assert row.after["winning_ticket_id"] == drawn.winning_ticket_id
    # A second run changes nothing and pays nothing.
    client.post(url, data={"context": "panel"}, headers=HX)
    assert _cash(winner.id) == 505_00
    assert len(_audit("lottery.draw")) == 1
    assert lottery.verify(draw.id)["verified"] is True
    reconcile_clean()
