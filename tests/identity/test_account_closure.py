"""Self-service account closure (not self-exclusion) and its re-opening rules: the player
closes with a reason and a password, every session ends; staff reopen with a reason, the
player reopens by signing in after the cooling period; never while self-excluded."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.compliance import responsible_gaming as rg
from app.core.base import utcnow
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import TokenFamily, User
from tests.moneykit import fund

PASSWORD = "Passw0rd-Long-1!"
CLOSE = "/api/user/close"


def close(client, headers, **body):
    body = {"reason": "not_interested", "password": PASSWORD, **body}
    return client.post(CLOSE, headers=headers, json=body)


def login(client, user, **extra):
    body = {"username": user.username, "password": PASSWORD, **extra}
    return client.post("/api/auth/login", json=body)


def fresh(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def audits(action: str, user_id: int) -> list[AuditLog]:
    return list(
        db.session.scalars(
            sa.select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == str(user_id))
        )
    )


def test_a_player_closes_their_account_and_every_session_ends(client, factory, token_for):
    player = factory.player()
    signed_in = login(client, player)
    assert signed_in.status_code == 200, signed_in.json
    bearer = {"Authorization": f"Bearer {signed_in.json['token']['access_token']}"}
    closed = close(client, bearer, reason="too_much_time_or_money", comment="a break")
    assert closed.status_code == 200, closed.json
    assert closed.json["data"]["status"] == "closed"
    assert closed.json["data"]["reopenable_at"] is not None
    user = fresh(player.id)
    assert (user.status, user.status_reason) == ("closed", "player_closure")
    assert user.closure_reason == "too_much_time_or_money: a break"
    assert user.closed_at is not None
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(TokenFamily)
            .where(TokenFamily.user_id == player.id, TokenFamily.revoked_at.is_(None))
        )
        == 0
    )
    assert client.get("/api/user/profile", headers=bearer).status_code == 401
    refused = login(client, player)
    assert refused.status_code == 403
    (row,) = audits("user.closed", player.id)
    assert row.after == {"status": "closed", "reason": "too_much_time_or_money"}


@pytest.mark.parametrize(
    "body",
    [
        {"password": "wrong-password"},
        {"password": None},
        {"password": ""},
        {"reason": "because"},
        {"reason": ""},
        {"reason": "other\x00"},
        {"reason": None},
        {"comment": "x" * 401},
    ],
)
def test_a_bad_closure_request_changes_nothing(client, factory, token_for, body):
    player = factory.player()
    answer = close(client, token_for(player), **body)
    assert answer.status_code in (400, 422), answer.json
    assert fresh(player.id).status == "active"
    assert audits("user.closed", player.id) == []


def test_closure_is_refused_while_money_is_held(client, factory, token_for):
    player = factory.player()
    fund(player.id, 5_00)
    refused = close(client, token_for(player))
    assert refused.status_code == 409
    assert refused.json["reason"] == "positive_balance"
    assert "closing" in refused.json["message"]
    assert fresh(player.id).status == "active"


def test_staff_reopen_a_closed_account_with_a_reason(client, factory, token_for):
    player = factory.player()
    close(client, token_for(player))
    manager = token_for(factory.staff("manager"))
    url = f"/api/admin/users/{player.id}/reopen"
    assert client.post(url, headers=manager, json={"reason": ""}).status_code in (400, 422)
    support = token_for(factory.staff("support"))
    assert client.post(url, headers=support, json={"reason": "asked"}).status_code == 403
    assert fresh(player.id).status == "closed"
    done = client.post(url, headers=manager, json={"reason": "Player called support"})
    assert done.status_code == 200, done.json
    user = fresh(player.id)
    assert (user.status, user.closed_at, user.closure_reason) == ("active", None, None)
    (row,) = audits("user.reopened", player.id)
    assert row.after == {"status": "active", "by": "staff"}
    assert row.reason == "Player called support"
    assert client.post(url, headers=manager, json={"reason": "again"}).status_code == 409
    assert login(client, player).status_code == 200


def test_a_player_reopens_by_signing_in_after_the_cooling_period(client, factory, token_for):
    player = factory.player()
    start = utcnow()
    with freeze_time(start):
        close(client, token_for(player))
    with freeze_time(start + timedelta(days=6, hours=23)):
        early = login(client, player, reopen=True)
        assert early.status_code == 403
        assert early.json["reason"] == "reopen_cooling_off"
        assert fresh(player.id).status == "closed"
    with freeze_time(start + timedelta(days=7, seconds=1)):
        # Without asking to reopen, a closed account stays closed.
        assert login(client, player).status_code == 403
        # A wrong password reopens nothing.
        assert (
            client.post(
                "/api/auth/login",
                json={"username": player.username, "password": "nope-nope-1", "reopen": True},
            ).status_code
            == 401
        )
        assert fresh(player.id).status == "closed"
        back = login(client, player, reopen=True)
        assert back.status_code == 200, back.json
        assert fresh(player.id).status == "active"
    (row,) = audits("user.reopened", player.id)
    assert row.after == {"status": "active", "by": "player"}


def test_a_self_excluded_player_cannot_reopen_by_any_route(client, factory, token_for):
    player = factory.player()
    start = utcnow()
    with freeze_time(start):
        rg.self_exclude(fresh(player.id), "6_months")
        close(client, token_for(player))
    with freeze_time(start + timedelta(days=30)):
        refused = login(client, player, reopen=True)
        assert refused.status_code == 403
        assert refused.json["code"] == "SELF_EXCLUDED"
        manager = token_for(factory.staff("manager"))
        staff = client.post(
            f"/api/admin/users/{player.id}/reopen", headers=manager, json={"reason": "asked"}
        )
        assert staff.status_code == 403
        assert staff.json["code"] == "SELF_EXCLUDED"
        assert fresh(player.id).status == "closed"


def test_an_account_closed_by_erasure_or_banned_is_not_reopened(client, factory, token_for):
    from app.core.db import atomic

    player = factory.player()
    with atomic():
        user = db.session.get(User, player.id)
        user.status, user.status_reason = "closed", "gdpr_erasure"
        user.erased_at = utcnow()
    assert login(client, player, reopen=True).status_code in (401, 403)
    manager = token_for(factory.staff("manager"))
    assert (
        client.post(
            f"/api/admin/users/{player.id}/reopen", headers=manager, json={"reason": "asked"}
        ).status_code
        == 409
    )
    banned = factory.player()
    with atomic():
        db.session.get(User, banned.id).status = "banned"
    assert login(client, banned, reopen=True).status_code == 403
    assert fresh(banned.id).status == "banned"
