"""GDPR (issue 17): the data export covers every table that references a player, and erasure
pseudonymises while keeping what the law requires."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity import gdpr
from app.identity.models import LoginEvent, User
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction
from tests.identity_helpers import login
from tests.moneykit import fund


def test_every_table_that_references_users_is_exported_or_explicitly_excluded(app):
    referencing: dict[str, set[str]] = {}
    for table in db.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == "users":
                referencing.setdefault(table.name, set()).add(fk.parent.name)
    unlisted = sorted(set(referencing) - set(gdpr.EXPORTED) - set(gdpr.EXCLUDED))
    assert unlisted == [], f"classify these tables in app/identity/gdpr.py: {unlisted}"
    assert set(gdpr.EXPORTED).isdisjoint(gdpr.EXCLUDED)
    stale = sorted((set(gdpr.EXPORTED) | set(gdpr.EXCLUDED)) - set(referencing))
    assert stale == [], f"no such table references users: {stale}"
    for name, spec in gdpr.EXPORTED.items():
        if name == "users":
            assert spec.by == ("id",)
            continue
        # The export selects by columns that really point at the player ...
        assert set(spec.by) <= referencing[name], name
        # ... and withholds only columns that exist.
        assert set(spec.omit) <= set(db.metadata.tables[name].columns.keys()), name
    assert all(reason.strip() for reason in gdpr.EXCLUDED.values())


def test_the_export_holds_the_players_data_only_and_no_secrets(client, factory, token_for):
    player, other = factory.player(first_name="Ada"), factory.player()
    fund(player.id, cash=25_00)
    fund(other.id, cash=99_00)
    assert login(client, player.username).status_code == 200
    answer = client.get("/api/user/data-export", headers=token_for(player))
    assert answer.status_code == 200, answer.json
    doc = answer.json["data"]
    assert doc["format"] == gdpr.FORMAT
    assert set(doc["tables"]) == set(gdpr.EXPORTED)
    (me,) = doc["tables"]["users"]
    assert me["first_name"] == "Ada"
    assert "password_hash" not in me
    assert "totp_secret_enc" not in me
    assert me["marketing_consent"] is False  # consents are part of the profile row
    ledger = doc["tables"]["ledger_transactions"]
    assert [row["cash_delta"] for row in ledger] == [25_00]
    assert all(row["user_id"] == player.id for row in ledger)
    assert "mac" not in ledger[0]
    assert doc["tables"]["wallets"][0]["balance"] == 25_00
    assert len(doc["tables"]["login_history"]) == 1
    assert len(doc["tables"]["token_families"]) == 1
    assert "risk_flags" in doc["excluded_tables"]
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).where(
                AuditLog.action == "user.data_export", AuditLog.target_id == str(player.id)
            )
        )
        == 1
    )


def test_erasure_is_refused_while_the_player_holds_money(client, factory, token_for):
    player = factory.player()
    fund(player.id, cash=1_00)
    answer = client.post("/api/user/erasure-request", json={}, headers=token_for(player))
    assert answer.status_code == 409
    assert answer.json["reason"] == "positive_balance"


def test_erasure_is_refused_while_money_is_held_for_a_withdrawal(client, factory, token_for):
    player = factory.player()
    fund(player.id, cash=10_00)
    with atomic():
        wallet.post(
            player.id,
            "EUR",
            "withdrawal_hold",
            cash_delta=-10_00,
            held_delta=10_00,
            source="test",
            idempotency_key=secrets.token_hex(8),
        )
    answer = client.post("/api/user/erasure-request", json={}, headers=token_for(player))
    assert answer.status_code == 409


def _request(client, player, headers):
    answer = client.post("/api/user/erasure-request", json={"reason": "leaving"}, headers=headers)
    assert answer.status_code == 202, answer.json
    return answer.json["data"]


def test_an_approved_erasure_pseudonymises_keeps_the_ledger_and_is_idempotent(
    client, factory, token_for
):
    player = factory.player(first_name="Grace", phone="+35699123456")
    fund(player.id, cash=5_00)
    with atomic():  # played it all away: nothing left to pay out
        wallet.post(
            player.id,
            "EUR",
            "bet",
            cash_delta=-5_00,
            source="test",
            idempotency_key=secrets.token_hex(8),
        )
    assert login(client, player.username).status_code == 200
    headers = token_for(player)
    first = _request(client, player, headers)
    assert first["status"] == "pending"
    assert "ledger_transactions, wallets, payment_transactions" in first["retained"]
    assert _request(client, player, headers)["id"] == first["id"]  # asking again: same one

    admin = factory.staff("admin")
    support = factory.staff("support")
    url = f"/api/admin/erasure-requests/{first['id']}/approve"
    assert client.post(url, json={}, headers=token_for(support)).status_code == 403
    listed = client.get("/api/admin/erasure-requests?status=pending", headers=token_for(admin))
    assert [row["id"] for row in listed.json["data"]] == [first["id"]]

    done = client.post(url, json={"note": "checked"}, headers=token_for(admin))
    assert done.status_code == 200, done.json
    assert done.json["data"]["status"] == "completed"
    db.session.expire_all()
    user = db.session.get(User, player.id)
    assert user.username == f"erased-{player.id}"
    assert user.email.endswith("@erased.invalid")
    assert (user.first_name, user.phone, user.status) == (None, None, "closed")
    assert user.erased_at is not None
    events = list(db.session.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == user.id)))
    assert events
    assert all(e.ip is None and e.login == user.username for e in events)
    # The ledger is kept.
    assert (
        db.session.scalar(sa.select(sa.func.count()).where(LedgerTransaction.user_id == player.id))
        == 2
    )
    # Login is gone: old name, and the old token.
    assert login(client, player.username).status_code == 401
    assert client.get("/api/user/profile", headers=headers).status_code in (401, 403)

    again = client.post(url, json={}, headers=token_for(admin))
    assert again.status_code == 200
    assert again.json["data"]["decided_at"] == done.json["data"]["decided_at"]
    audits = db.session.scalar(
        sa.select(sa.func.count()).where(
            AuditLog.action == "user.erasure", AuditLog.target_id == str(player.id)
        )
    )
    assert audits == 1


def test_a_rejected_request_needs_a_reason_and_changes_nothing(client, factory, token_for):
    player = factory.player(first_name="Linus")
    row = _request(client, player, token_for(player))
    admin = factory.staff("admin")
    url = f"/api/admin/erasure-requests/{row['id']}/reject"
    assert client.post(url, json={}, headers=token_for(admin)).status_code == 400
    answer = client.post(
        url, json={"note": "duplicate of a closed account"}, headers=token_for(admin)
    )
    assert answer.status_code == 200
    assert answer.json["data"]["status"] == "rejected"
    db.session.expire_all()
    assert db.session.get(User, player.id).first_name == "Linus"
    approve = f"/api/admin/erasure-requests/{row['id']}/approve"
    assert client.post(approve, json={}, headers=token_for(admin)).status_code == 409
