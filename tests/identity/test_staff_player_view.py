"""What staff clients of the seeds expect of a player: the detail carries balances and
responsible-gaming limits; notes can be added (audited) and listed."""

from __future__ import annotations

from sqlalchemy import select

from app.compliance import responsible_gaming as rg
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from tests.moneykit import fund


def test_the_player_detail_includes_balances_and_rg_limits(client, factory, token_for):
    player = factory.player()
    fund(player.id, cash=152_40, bonus=30_00)
    with atomic():
        rg.set_limit(player, limit_type="deposit", period="daily", value=100_00, currency="EUR")
    r = client.get(f"/api/admin/users/{player.id}", headers=token_for(factory.staff("support")))
    assert r.status_code == 200, r.json
    data = r.json["data"]
    assert data["wallets"] == [
        {
            "currency": "EUR",
            "balance": "152.40",
            "bonus_balance": "30.00",
            "held_balance": "0.00",
            "total_balance": "182.40",
        }
    ]
    limits = data["responsible_gaming"]["limits"]
    assert [(item["type"], item["period"], item["amount"]) for item in limits] == [
        ("deposit", "daily", "100.00")
    ]
    assert data["responsible_gaming"]["exclusion"] is None
    assert "login_history" in data
    staff = client.get(
        f"/api/admin/users/{factory.staff('agent').id}", headers=token_for(factory.staff("admin"))
    )
    assert staff.json["data"]["responsible_gaming"] is None


def test_staff_add_and_list_notes_and_each_is_audited(client, factory, token_for):
    player = factory.player()
    support = factory.staff("support")
    headers = token_for(support)
    url = f"/api/admin/users/{player.id}/notes"
    first = client.post(url, headers=headers, json={"body": "Called about a late deposit"})
    assert first.status_code == 201, first.json
    note = first.json["data"]
    assert (note["author"], note["body"], note["user_id"]) == (
        support.username,
        "Called about a late deposit",
        player.id,
    )
    assert note["created_at"].startswith("20")
    client.post(url, headers=headers, json={"body": "Asked for a cooling-off"})
    listed = client.get(url, headers=token_for(factory.staff("manager")))
    assert listed.status_code == 200
    assert [n["body"] for n in listed.json["data"]] == [
        "Asked for a cooling-off",
        "Called about a late deposit",
    ]
    assert listed.json["meta"]["total"] == 2
    rows = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "players.note.add").order_by(AuditLog.id)
    ).all()
    assert [(r.actor_id, str(r.target_id)) for r in rows] == [(support.id, str(player.id))] * 2
    assert rows[0].after["body"] == "Called about a late deposit"


def test_notes_need_a_body_a_player_and_the_permission(client, factory, token_for):
    player = factory.player()
    headers = token_for(factory.staff("support"))
    assert client.post(
        f"/api/admin/users/{player.id}/notes", headers=headers, json={"body": ""}
    ).status_code in (400, 422)
    staff = factory.staff("manager")
    assert (
        client.post(
            f"/api/admin/users/{staff.id}/notes", headers=headers, json={"body": "x"}
        ).status_code
        == 404
    )
    agent = token_for(factory.staff("agent"))
    assert (
        client.post(
            f"/api/admin/users/{player.id}/notes", headers=agent, json={"body": "x"}
        ).status_code
        == 403
    )
    assert client.get(
        f"/api/admin/users/{player.id}/notes", headers=token_for(player)
    ).status_code in (401, 403)
