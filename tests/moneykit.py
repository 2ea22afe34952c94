"""Helpers for wallet and provider-callback tests: a provider, a game, a funded player."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.core.db import atomic
from app.core.extensions import db
from app.play import games
from app.play.callbacks import protocol as callback_protocol
from app.play.callbacks.adapters import native_signature
from app.play.models import Game
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction, Wallet

SECRET = "test-callback-secret-0123456789"


@dataclass
class Table:
    """One provider + game + player with an open session: what a callback test needs."""

    client: Any
    provider_code: str
    game_external: str
    user_id: int
    token: str
    currency: str = "EUR"
    secret: str = SECRET

    def sign(self, body: bytes) -> str:
        return native_signature(self.secret, body)

    def raw(self, body: bytes, signature: str | None = None, **headers: str):
        headers = {"Content-Type": "application/json", **headers}
        headers["X-Signature"] = self.sign(body) if signature is None else signature
        return self.client.post(
            f"/api/provider-callback/{self.provider_code}", data=body, headers=headers
        )

    def call(self, action: str, **fields: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "action": action,
            "session_token": self.token,
            "game_id": self.game_external,
            "currency": self.currency,
        }
        payload.update(fields)
        payload = {k: v for k, v in payload.items() if v is not None}
        response = self.raw(json.dumps(payload).encode())
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def bet(self, tx: str, amount: Any, round_id: str = "r1", **kw: Any) -> dict[str, Any]:
        return self.call("bet", transaction_id=tx, round_id=round_id, amount=amount, **kw)

    def win(self, tx: str, amount: Any, round_id: str = "r1", **kw: Any) -> dict[str, Any]:
        return self.call("win", transaction_id=tx, round_id=round_id, amount=amount, **kw)

    def refund(self, tx: str, ref: str, **kw: Any) -> dict[str, Any]:
        return self.call("refund", transaction_id=tx, reference_transaction_id=ref, **kw)

    def rollback(self, tx: str, ref: str, **kw: Any) -> dict[str, Any]:
        return self.call("rollback", transaction_id=tx, reference_transaction_id=ref, **kw)

    def end_round(self, round_id: str = "r1", **kw: Any) -> dict[str, Any]:
        return self.call("end_round", round_id=round_id, **kw)

    def balances(self) -> tuple[int, int]:
        db.session.expire_all()
        w = db.session.scalar(
            sa.select(Wallet).where(
                Wallet.user_id == self.user_id, Wallet.currency == self.currency
            )
        )
        return (0, 0) if w is None else (w.balance, w.bonus_balance)

    def ledger_count(self) -> int:
        return db.session.scalar(
            sa.select(sa.func.count(LedgerTransaction.id)).where(
                LedgerTransaction.user_id == self.user_id
            )
        )


def make_provider(code: str | None = None, **kw: Any):
    code = code or f"prov{secrets.token_hex(3)}"
    kw.setdefault("secret", SECRET)
    kw.setdefault("name", code.title())
    kw.setdefault("currencies", ["EUR", "USD"])
    provider = games.create_provider(code=code, **kw)
    return provider


def make_game(provider_code: str, external: str = "dice", **fields: Any) -> Game:
    item = {"external_id": external, "name": external.title(), "category": "slots", **fields}
    games.import_games(provider_code, [item])
    return db.session.scalar(sa.select(Game).where(Game.external_id == external))


def fund(user_id: int, cash: int = 0, bonus: int = 0, currency: str = "EUR") -> None:
    with atomic():
        if cash:
            wallet.post(
                user_id,
                currency,
                "deposit",
                cash_delta=cash,
                source="test",
                idempotency_key=secrets.token_hex(8),
            )
        if bonus:
            wallet.post(
                user_id,
                currency,
                "bonus_grant",
                bonus_delta=bonus,
                source="test",
                idempotency_key=secrets.token_hex(8),
            )


def open_table(client, factory, *, cash: int = 100_00, bonus: int = 0, **provider_kw) -> Table:
    callback_protocol.clear_caches()
    provider = make_provider(**provider_kw)
    game = make_game(provider.code, f"g{secrets.token_hex(3)}")
    player = factory.player()
    fund(player.id, cash, bonus)
    launched = games.launch(player, game.id)
    return Table(
        client,
        provider.code,
        game.external_id,
        player.id,
        launched.session_token,
        secret=provider_kw.get("secret", SECRET),
    )


def reconcile_clean() -> None:
    problems = wallet.reconcile()
    assert problems == [], [str(p) for p in problems]


@contextmanager
def wallet_row_locked(user_id: int) -> Iterator[None]:
    """Another session holds the player's wallet row lock (a stuck transaction) until exit."""
    with db.engine.connect() as conn:
        tx = conn.begin()
        conn.execute(
            sa.text("SELECT id FROM wallets WHERE user_id = :u FOR UPDATE"), {"u": user_id}
        )
        try:
            yield
        finally:
            tx.rollback()
