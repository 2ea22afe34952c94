"""Promotions targeted at a CRM segment: only the segment's players see, claim or receive them."""

from __future__ import annotations

from app.messaging import crm
from app.wallet import ledger as wallet
from tests.bonus.test_promotions import (  # noqa: F401 - fixtures
    deposit_and_pay,
    gateway,
    promo,
    wire,
)


def bonus_balance(user_id: int) -> tuple[int, int]:
    w = wallet.wallet_for(user_id, "EUR")
    return (0, 0) if w is None else (w.balance, w.bonus_balance)


def _segment(condition: str):
    return crm.create_segment("Germany", condition, None, actor=None)


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.json
    return {p["id"] for p in response.json["data"]}


def test_only_the_segments_players_see_and_claim_a_targeted_offer(client, factory, token_for):
    segment = _segment("country = 'DE'")
    targeted = promo(type="no_deposit", bonus_amount_minor=5_00, segment_id=segment.id)
    everyone = promo(type="no_deposit", bonus_amount_minor=1_00, name="For all")
    insider, outsider = factory.player(country="DE"), factory.player(country="FR")

    assert _ids(client.get("/api/promotions/active")) == {everyone.id}  # anonymous
    assert _ids(client.get("/api/promotions/active", headers=token_for(outsider))) == {everyone.id}
    assert targeted.id in _ids(client.get("/api/promotions/active", headers=token_for(insider)))

    assert client.get(f"/api/promotions/{targeted.id}").status_code == 404
    hidden = client.get(f"/api/promotions/{targeted.id}", headers=token_for(outsider))
    assert hidden.status_code == 404

    refused = client.post(
        f"/api/promotions/claim/{targeted.id}", json={}, headers=token_for(outsider)
    )
    assert refused.status_code == 400
    assert refused.json["code"] == "PROMOTION_NOT_AVAILABLE"
    assert refused.json["reason"] == "segment"
    assert bonus_balance(outsider.id) == (0, 0)

    claimed = client.post(
        f"/api/promotions/claim/{targeted.id}", json={}, headers=token_for(insider)
    )
    assert claimed.status_code == 201, claimed.json
    assert bonus_balance(insider.id)[1] == 5_00


def test_a_targeted_welcome_offer_is_not_applied_to_an_outsiders_deposit(
    client,
    factory,
    token_for,
    gateway,  # noqa: F811 - the imported fixture
    wire,  # noqa: F811
):
    segment = _segment("country = 'DE'")
    promo(first_deposit_only=True, auto_apply=True, segment_id=segment.id)
    outsider, insider = factory.player(country="FR"), factory.player(country="DE")
    deposit_and_pay(client, wire, token_for(outsider), "50.00")
    deposit_and_pay(client, wire, token_for(insider), "50.00")
    assert bonus_balance(outsider.id) == (50_00, 0)
    assert bonus_balance(insider.id) == (50_00, 50_00)


def test_staff_target_a_segment_that_exists(client, factory, token_for):
    staff = token_for(factory.staff("manager"))
    body = {"name": "VIP", "type": "no_deposit", "currency": "EUR", "bonus_amount": "5"}
    unknown = client.post("/api/admin/promotions", json={**body, "segment_id": 999}, headers=staff)
    assert unknown.status_code == 400
    assert "segment_id" in str(unknown.json)
    for bad in (-5, "abc", 1e309):
        assert client.post(
            "/api/admin/promotions", json={**body, "segment_id": bad}, headers=staff
        ).status_code in (400, 422)
    segment = _segment("deposits_30d > 0")
    created = client.post(
        "/api/admin/promotions", json={**body, "segment_id": segment.id}, headers=staff
    )
    assert created.status_code == 201, created.json
    assert created.json["data"]["segment_id"] == segment.id
