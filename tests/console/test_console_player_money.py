"""Player profile money panels and the audited balance adjustment."""

from __future__ import annotations

from sqlalchemy import select

from app.compliance import responsible_gaming as rg
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import LoginEvent, User
from app.wallet.models import LedgerTransaction
from tests.console.seeding import kyc_submission
from tests.moneykit import open_table

HX = {"HX-Request": "true"}


def _audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_the_profile_shows_wallets_ledger_bets_limits_kyc_and_sign_ins(signed_in, factory, client):
    table = open_table(client, factory, cash=100_00)
    table.bet("b1", "10.00")
    table.win("w1", "4.50")
    player = db.session.get(User, table.user_id)
    rg.set_limit(player, limit_type="deposit", period="daily", value=50_00, currency="EUR")
    kyc_submission(player, docs=("passport",))
    with atomic():
        db.session.add(
            LoginEvent(
                user_id=player.id,
                login=player.username,
                success=False,
                reason="bad_credentials",
                ip="203.0.113.7",
            )
        )
    manager, _ = signed_in("manager")
    html = manager.get(f"/admin/players/{player.id}").get_data(as_text=True)
    assert 'id="player-wallets"' in html
    assert "94.50 EUR" in html  # 100 - 10 + 4.50
    assert 'id="player-ledger"' in html
    assert "<code>bet</code>" in html
    assert "<code>win</code>" in html
    assert "staked 10.00 EUR" in html
    assert "won 4.50 EUR" in html
    assert "deposit" in html
    assert "50.00 EUR" in html
    assert 'id="player-kyc"' in html
    assert "badge-pending" in html
    assert "203.0.113.7" in html
    assert "bad_credentials" in html
    assert 'data-action="adjust-balance"' in html
    support, _ = signed_in("support")
    assert 'data-action="adjust-balance"' not in support.get(
        f"/admin/players/{player.id}"
    ).get_data(as_text=True)


def test_a_manager_adjusts_a_balance_with_a_reason_through_the_modal(signed_in, factory):
    client, manager = signed_in("manager")
    player = factory.player(currency="EUR")
    url = f"/admin/players/{player.id}/adjust-balance"
    form = client.get(url + "?context=panel", headers=HX).get_data(as_text=True)
    assert 'hx-target="#player-wallets"' in form
    no_reason = client.post(
        url,
        data={"currency": "EUR", "balance_type": "cash", "amount": "25", "reason": ""},
        headers=HX,
    )
    assert no_reason.headers["HX-Retarget"] == "#modal-root"
    too_precise = client.post(
        url,
        data={"currency": "EUR", "balance_type": "cash", "amount": "1.005", "reason": "Goodwill"},
        headers=HX,
    )
    # Next to the Amount field, in staff wording (issue 20), not on top of the form.
    assert (
        '<p class="field-error">EUR amounts have at most 2 decimal places.</p>'
        in too_precise.get_data(as_text=True)
    )
    assert (
        db.session.scalar(select(LedgerTransaction).where(LedgerTransaction.user_id == player.id))
        is None
    )
    done = client.post(
        url,
        data={
            "currency": "EUR",
            "balance_type": "cash",
            "amount": "25.00",
            "reason": "Goodwill after outage",
            "context": "panel",
        },
        headers=HX,
    )
    html = done.get_data(as_text=True)
    assert 'id="player-wallets"' in html
    assert "25.00 EUR" in html
    assert "Credited 25.00 EUR (cash)" in html
    (tx,) = db.session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.user_id == player.id)
    )
    assert (tx.type, tx.cash_delta, tx.actor_id) == ("adjustment", 25_00, manager.user.id)
    (row,) = _audits("wallet.adjust")
    assert row.reason == "Goodwill after outage"
    overdraw = client.post(
        url,
        data={"currency": "EUR", "balance_type": "cash", "amount": "-30", "reason": "Clawback"},
        headers=HX,
    )
    assert overdraw.headers["HX-Retarget"] == "#modal-root"
    assert len(_audits("wallet.adjust")) == 1


def test_support_cannot_adjust_a_balance(signed_in, factory):
    client, _ = signed_in("support")
    player = factory.player()
    response = client.post(
        f"/admin/players/{player.id}/adjust-balance",
        data={"currency": "EUR", "balance_type": "cash", "amount": "5", "reason": "Please"},
    )
    assert response.status_code == 403
    assert _audits("wallet.adjust") == []
