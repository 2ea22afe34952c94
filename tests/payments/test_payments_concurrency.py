"""Two withdrawal requests racing on separate connections never hold more than the balance."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.wallet.models import Wallet
from tests.moneykit import fund, reconcile_clean
from tests.payments_helpers import sandbox_gateway


@pytest.mark.postgres
def test_racing_withdrawals_never_hold_more_than_the_balance(
    app, committed_db, requires_postgres, factory, token_for
):
    sandbox_gateway()
    player = factory.player()
    with atomic():
        db.session.get(User, player.id).kyc_status = "approved"
    fund(player.id, 100_00)
    headers = token_for(player)
    db.session.remove()

    barrier = threading.Barrier(4)
    results: list[tuple[int, str | None]] = []

    def request_withdrawal():
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            response = client.post(
                "/api/withdrawals/request",
                headers=headers,
                json={"amount": "70.00", "method": "sandbox", "currency": "EUR"},
            )
            results.append((response.status_code, response.json.get("code")))
            db.session.remove()

    threads = [threading.Thread(target=request_withdrawal) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert sorted(results) == [
        (201, None),
        (400, "INSUFFICIENT_BALANCE"),
        (400, "INSUFFICIENT_BALANCE"),
        (400, "INSUFFICIENT_BALANCE"),
    ]
    wallet = db.session.scalar(select(Wallet).where(Wallet.user_id == player.id))
    assert (wallet.balance, wallet.held_balance) == (30_00, 70_00)
    reconcile_clean()
