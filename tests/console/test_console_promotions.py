"""Console promotions: list and filters, create/edit through the admin API's own schema (bad
input shown inline, nothing saved), activate/deactivate, each promotion's bonuses."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.bonus import promotions
from app.bonus.models import PlayerBonus, Promotion
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from tests.moneykit import open_table

HX = {"HX-Request": "true"}

WELCOME = {
    "name": "Welcome 100%",
    "type": "deposit_match",
    "currency": "EUR",
    "match_percent": "100",
    "max_bonus": "200",
    "min_deposit": "20.00",
    "bonus_amount": "0",
    "wagering_multiplier": "30",
    "default_contribution": "100",
    "game_contributions": "7=10\n9=0",
    "max_bet": "5",
    "bonus_valid_days": "30",
    "max_claims_per_player": "1",
    "countries": "mt, de",
    "first_deposit_only": "y",
    "auto_apply": "y",
    "priority": "10",
    "cashback_percent": "0",
    "cashback_period_days": "7",
    "starts_at": "2026-11-01T08:30",
}


def _audit(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def _count() -> int:
    return db.session.scalar(select(func.count(Promotion.id)))


def _field_errors(html: str) -> dict[str, list[str]]:
    """``{field id: [messages]}`` from the rendered form (errors sit inside the field div)."""
    out: dict[str, list[str]] = {}
    for block in re.findall(r'<div class="field[^"]*has-error">(.*?)</div>', html, re.S):
        name = re.search(r'\sid="([a-z_]+)"', block).group(1)
        out[name] = re.findall(r'<p class="field-error">([^<]*)</p>', block)
    return out


def _promo(**kw) -> Promotion:
    data = {"name": "Reload", "type": "reload", "currency": "EUR", "match_percent": 50}
    data.update(kw)
    status = data.pop("status", None)
    p = promotions.create_promotion(data)
    if status:
        p = promotions.set_status(p.id, status)
    return p


@pytest.mark.parametrize("role", ["support", "agent"])
def test_staff_without_promotions_manage_get_nothing(signed_in, role):
    p = _promo()
    client, _ = signed_in(role)
    for url in (
        "/admin/promotions",
        "/admin/promotions/new",
        f"/admin/promotions/{p.id}/edit",
        f"/admin/promotions/{p.id}/bonuses",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/promotions/new", data=WELCOME).status_code == 403
    assert client.post(f"/admin/promotions/{p.id}/activate").status_code == 403
    assert _count() == 1
    assert db.session.get(Promotion, p.id).status == "draft"
    nav = client.get("/admin/").get_data(as_text=True)
    assert ">Promotions</a>" not in nav


def test_the_list_filters_by_status_type_and_name(signed_in):
    _promo(name="Weekend reload", status="active")
    _promo(name="Free tenner", type="no_deposit", bonus_amount_minor=10_00, match_percent=0)
    _promo(name="Secret", voucher_code="VIP-2026", status="inactive")
    client, _ = signed_in("manager")
    html = client.get("/admin/promotions").get_data(as_text=True)
    assert html.count('id="promotion-row-') == 3
    assert ">Promotions</a>" in html
    active = client.get("/admin/promotions?status=active").get_data(as_text=True)
    assert "Weekend reload" in active
    assert "Free tenner" not in active
    typed = client.get("/admin/promotions?type=no_deposit").get_data(as_text=True)
    assert "Free tenner" in typed
    assert "10.00 EUR" in typed
    assert "Weekend reload" not in typed
    by_voucher = client.get("/admin/promotions?q=vip-").get_data(as_text=True)
    assert by_voucher.count('id="promotion-row-') == 1
    assert "Secret" in by_voucher
    assert "No promotions match" in client.get("/admin/promotions?q=zzz").get_data(as_text=True)


def test_the_new_form_has_every_field_of_the_admin_api(signed_in):
    from app.blueprints.api.promotions import NewPromotionArgs

    client, _ = signed_in("manager")
    html = client.get("/admin/promotions/new").get_data(as_text=True)
    for name in NewPromotionArgs().fields:
        assert f'name="{name}"' in html, name
    # It starts where the model does: one claim per player, 30 days, 100 % contribution.
    assert re.search(r'id="max_claims_per_player"[^>]*value="1"', html)
    assert re.search(r'id="bonus_valid_days"[^>]*value="30"', html)
    assert 'name="csrf_token"' in html


def test_a_manager_creates_a_welcome_bonus_through_the_form(signed_in, events):
    client, manager = signed_in("manager")
    response = client.post("/admin/promotions/new", data=WELCOME)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    p = db.session.scalars(select(Promotion)).one()
    assert (p.name, p.type, p.status) == ("Welcome 100%", "deposit_match", "draft")
    assert p.currency == "EUR"
    assert (p.match_percent, p.max_bonus_minor, p.min_deposit_minor, p.max_bet_minor) == (
        100,
        200_00,
        20_00,
        5_00,
    )
    assert p.game_contributions == {"7": 10, "9": 0}
    assert p.countries == ["DE", "MT"]
    assert (p.first_deposit_only, p.auto_apply, p.priority) == (True, True, 10)
    assert p.starts_at.isoformat().startswith("2026-11-01T08:30")  # read as UTC
    assert (p.ends_at, p.max_cashout_minor, p.voucher_code) == (None, None, None)
    (row,) = _audit("promotion.create")
    assert row.actor_id == manager.user.id
    assert any(e[0] == "promotion.update" and e[1]["action"] == "created" for e in events)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_bet": "5.001"}, "max_bet"),
        ({"max_bonus": "-5"}, "max_bonus"),
        ({"min_deposit": "1e309"}, "min_deposit"),
        ({"min_deposit": "abc"}, "min_deposit"),
        ({"match_percent": "abc"}, "match_percent"),
        ({"match_percent": "0.001"}, "match_percent"),
        ({"match_percent": "0"}, "match_percent"),  # the service's rule: a match needs a %
        ({"name": ""}, "name"),
        ({"type": "jackpot"}, "type"),
        ({"currency": "EURO"}, "currency"),
        ({"countries": "MLT"}, "countries"),
        ({"game_contributions": "seven"}, "game_contributions"),
        ({"game_contributions": "7=ten"}, "game_contributions"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"ends_at": "2026-10-01T00:00"}, "ends_at"),  # before starts_at
        ({"wagering_multiplier": "201"}, "wagering_multiplier"),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_nothing_is_saved(signed_in, changes, field):
    client, _ = signed_in("manager")
    response = client.post("/admin/promotions/new", data={**WELCOME, **changes})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    errors = _field_errors(html)
    assert errors.get(field), (errors, html[:300])
    assert 'id="form-errors"' in html
    # What the operator typed is still there to correct.
    assert 'value="Welcome 100%"' in html or changes.get("name") == ""
    assert _count() == 0
    assert _audit("promotion.create") == []


def test_a_voucher_code_already_in_use_is_refused_inline(signed_in):
    _promo(voucher_code="SPRING")
    client, _ = signed_in("manager")
    response = client.post("/admin/promotions/new", data={**WELCOME, "voucher_code": "spring"})
    assert response.status_code == 400
    assert "already used by another promotion" in response.get_data(as_text=True)
    assert _count() == 1


def test_editing_changes_only_what_the_operator_changed(signed_in, events):
    p = _promo(max_bet_minor=5_00, wagering_multiplier=30, countries=["MT"])
    client, manager = signed_in("manager")
    page = client.get(f"/admin/promotions/{p.id}/edit").get_data(as_text=True)
    assert re.search(r'id="max_bet"[^>]*value="5.00"', page)
    assert re.search(r'id="countries"[^>]*value="MT"', page)
    form = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([a-z_]+)"', tag).group(1)
        if name == "csrf_token" or ('type="checkbox"' in tag and "checked" not in tag):
            continue
        form[name] = re.search(r'value="([^"]*)"', tag).group(1)
    form["type"] = "reload"
    form["match_percent"] = "50"
    form["wagering_multiplier"] = "25"
    response = client.post(f"/admin/promotions/{p.id}/edit", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    db.session.expire_all()
    p = db.session.get(Promotion, p.id)
    assert (p.wagering_multiplier, p.max_bet_minor, p.countries) == (25, 5_00, ["MT"])
    (row,) = _audit("promotion.update")
    assert row.actor_id == manager.user.id
    changed = {k for k in row.after if row.after[k] != row.before.get(k)}
    assert changed == {"wagering_multiplier"}
    assert (row.before["wagering_multiplier"], row.after["wagering_multiplier"]) == (30, 25)

    # Bad input: nothing changes, the error is inline.
    form["wagering_multiplier"] = "10"
    form["max_bet"] = "-1"
    bad = client.post(f"/admin/promotions/{p.id}/edit", data=form)
    assert bad.status_code == 400
    assert "max_bet" in _field_errors(bad.get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(Promotion, p.id).wagering_multiplier == 25
    assert len(_audit("promotion.update")) == 1


def test_activate_and_deactivate_swap_the_row(signed_in, events):
    p = _promo()
    client, manager = signed_in("manager")
    response = client.post(f"/admin/promotions/{p.id}/activate", headers=HX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'id="promotion-row-{p.id}"' in html
    assert "badge-active" in html
    assert 'data-action="deactivate"' in html
    assert 'hx-swap-oob="true"' in html  # the flash comes along
    assert promotions.get_promotion(p.id).status == "active"
    assert client.post(f"/admin/promotions/{p.id}/deactivate").status_code == 302
    db.session.expire_all()
    assert db.session.get(Promotion, p.id).status == "inactive"
    rows = _audit("promotion.activate") + _audit("promotion.deactivate")
    assert [r.actor_id for r in rows] == [manager.user.id, manager.user.id]
    actions = [e[1]["action"] for e in events if e[0] == "promotion.update"]
    assert actions[-2:] == ["activated", "deactivated"]
    assert client.post("/admin/promotions/999999/activate").status_code == 404


def test_the_bonuses_page_shows_each_player_and_wagering_progress(
    app, signed_in, factory, token_for
):
    table = open_table(app.test_client(), factory, cash=100_00)
    p = _promo(
        name="Free ten",
        type="no_deposit",
        bonus_amount_minor=10_00,
        match_percent=0,
        wagering_multiplier=5,
        status="active",
    )
    player = db.session.get(User, table.user_id)
    claimed = app.test_client().post(
        f"/api/promotions/claim/{p.id}", headers=token_for(player), json={}
    )
    assert claimed.status_code == 201, claimed.json
    assert table.bet("w1", "12.50")["status"] == "ok"  # 12.50 of 50.00 = 25 %
    bonus = db.session.scalars(select(PlayerBonus)).one()
    client, _ = signed_in("manager")
    html = client.get(f"/admin/promotions/{p.id}/bonuses").get_data(as_text=True)
    row = html[html.index(f'id="bonus-row-{bonus.id}"') :]
    row = row[: row.index("</tr>")]
    assert player.username in row
    assert "badge-active" in row
    assert "10.00 EUR" in row
    assert "12.50 / 50.00 (25%)" in row
    assert 'value="25"' in row
    empty = _promo(name="Unclaimed")
    assert "Nobody has this bonus yet" in client.get(
        f"/admin/promotions/{empty.id}/bonuses"
    ).get_data(as_text=True)
