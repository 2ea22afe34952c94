"""The player page shows a self-service closure with a "Reopen" decision, the player's
addresses and their answer to the deposit-limit prompt."""

from __future__ import annotations

import sqlalchemy as sa

from app.compliance import responsible_gaming as rg
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity import addresses, closure
from app.identity.models import User

HX = {"HX-Request": "true"}
PASSWORD = "Passw0rd-Long-1!"


def _closed(player: User) -> User:
    return closure.close_account(player, reason="dissatisfied", password=PASSWORD)


def test_the_panel_shows_the_closure_and_staff_reopen_it(signed_in, player):
    _closed(player)
    client, manager = signed_in("manager")
    page = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    assert 'id="player-closure"' in page
    assert "Reason: dissatisfied" in page
    assert 'data-action="reopen"' in page
    response = client.post(
        f"/admin/players/{player.id}/reopen",
        data={"reason": "Player asked by phone", "context": "panel"},
        headers=HX,
    )
    assert response.status_code == 200
    assert 'id="player-closure"' not in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, player.id).status == "active"
    [row] = db.session.scalars(
        sa.select(AuditLog).where(
            AuditLog.action == "user.reopened", AuditLog.target_id == str(player.id)
        )
    ).all()
    assert row.actor_id == manager.user.id
    assert row.reason == "Player asked by phone"


def test_support_cannot_reopen_and_an_active_account_has_no_reopen(signed_in, player):
    client, _ = signed_in("manager")
    assert 'data-action="reopen"' not in client.get(f"/admin/players/{player.id}").get_data(
        as_text=True
    )
    refused = client.post(
        f"/admin/players/{player.id}/reopen", data={"reason": "why not"}, headers=HX
    )
    assert "cannot be changed this way" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, player.id).status == "active"
    _closed(player)
    support, _ = signed_in("support")
    assert (
        support.post(f"/admin/players/{player.id}/reopen", data={"reason": "asked"}).status_code
        == 403
    )
    db.session.expire_all()
    assert db.session.get(User, player.id).status == "closed"


def test_a_self_excluded_players_account_is_not_reopened(signed_in, player):
    rg.self_exclude(player, "6_months")
    _closed(player)
    client, _ = signed_in("manager")
    response = client.post(
        f"/admin/players/{player.id}/reopen", data={"reason": "asked", "context": "panel"}
    )
    assert response.status_code == 409
    assert "self-excluded" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, player.id).status == "closed"


def test_the_page_shows_addresses_and_the_prompt_answer(signed_in, player):
    addresses.add_address(
        player, {"line1": "1 Main Street", "city": "Valletta", "country": "MT", "label": "Home"}
    )
    client, _ = signed_in("support")
    page = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    panel = page[page.index('id="player-addresses"') :]
    assert "1 Main Street" in panel
    assert "Valletta" in panel
    assert "default" in panel
    assert "not answered yet" in page
    rg.answer_deposit_limit_prompt(player, "declined")
    page = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    prompt = page[page.index('id="player-rg-prompt"') :]
    assert "declined on" in prompt[:400]
