"""The whole regulated journey over HTTP: deposit via the sandbox checkout, play through signed
provider callbacks, KYC upload and approval, withdrawal, Manager approval, payout."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

from sqlalchemy import select

from app.core.extensions import db
from app.play import games
from app.wallet.models import LedgerTransaction, Wallet
from tests.moneykit import Table, make_game, make_provider, reconcile_clean
from tests.payments.conftest import Wire
from tests.payments_helpers import png_bytes, sandbox_gateway


def test_player_journey_from_deposit_to_payout(client, factory, token_for, monkeypatch):
    from app.payments.gateways import sandbox

    wire = Wire(client)
    monkeypatch.setattr(sandbox, "http_post", wire)
    sandbox_gateway()
    player = factory.player()
    manager = factory.staff("manager")
    headers = token_for(player)

    # Deposit 300.00 through the hosted checkout; the gateway's signed webhook credits it.
    created = client.post(
        "/api/payment/deposit", headers=headers, json={"amount": 300, "method": "sandbox"}
    ).json["data"]
    checkout = urlsplit(created["payment_url"]).path
    assert client.get(checkout).status_code == 200
    assert client.post(f"{checkout}/pay").status_code == 200
    assert [r.status_code for r in wire.flush()] == [200]

    # Play: a bet of 20.00 and a win of 45.00 through signed provider callbacks.
    provider = make_provider()
    game = make_game(provider.code, "journey-slot")
    launch = games.launch(player, game.id)
    table = Table(client, provider.code, game.external_id, player.id, launch.session_token)
    assert table.bet("j-bet-1", "20.00", round_id="jr1")["status"] == "ok"
    assert table.win("j-win-1", "45.00", round_id="jr1")["balance"] == "325.00"

    # A withdrawal of 250.00 is above the KYC threshold: refused until verified.
    refused = client.post(
        "/api/withdraw/request", headers=headers, json={"amount": "250.00", "method": "sandbox"}
    )
    assert refused.json["code"] == "KYC_REQUIRED"
    upload = client.post(
        "/api/kyc/upload",
        headers=headers,
        data={"type": "passport", "file": (io.BytesIO(png_bytes()), "passport.png")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 201
    pending = client.get("/api/admin/kyc/pending", headers=token_for(manager)).json["data"]
    submission = next(s for s in pending if s["user_id"] == player.id)
    approved = client.post(
        f"/api/admin/kyc/{submission['id']}/approve", headers=token_for(manager), json={}
    )
    assert approved.status_code == 200

    requested = client.post(
        "/api/withdrawals/request",
        headers=headers,
        json={"amount": "250.00", "method": "sandbox", "iban": "GB82WEST12345698765432"},
    )
    assert requested.status_code == 201, requested.json
    wid = requested.json["data"]["id"]
    assert (
        client.get("/api/user/statement", headers=headers).json["data"]["closing_balance"]["cash"]
        == "75.00"
    )

    decided = client.post(
        f"/api/admin/payments/withdrawals/{wid}/approve", headers=token_for(manager)
    )
    assert decided.status_code == 200, decided.json
    assert [r.status_code for r in wire.flush()] == [200]
    history = client.get("/api/withdrawals/history", headers=headers).json["data"]
    assert history[0]["status"] == "completed"

    db.session.expire_all()
    wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == player.id))
    assert (wallet.balance, wallet.held_balance) == (75_00, 0)
    types = db.session.scalars(
        select(LedgerTransaction.type)
        .where(LedgerTransaction.user_id == player.id)
        .order_by(LedgerTransaction.id)
    ).all()
    assert types == ["deposit", "bet", "win", "withdrawal_hold", "withdrawal"]
    reconcile_clean()
