"""Operator commands of the money path."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa

from app.core import crypto
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.play.models import Game, GameRound, Provider, ProviderCallback
from app.wallet.models import Wallet
from tests.moneykit import open_table, reconcile_clean


def test_providers_add_stores_the_secret_encrypted(runner):
    result = runner.invoke(
        args=[
            "jackpotx",
            "providers",
            "add",
            "--code",
            "acme",
            "--name",
            "Acme Games",
            "--secret",
            "a-long-enough-secret",
            "--currencies",
            "EUR,usd",
            "--launch-url",
            "https://acme.example/play?token={token}&game={game}",
        ]
    )
    assert result.exit_code == 0, result.output
    provider = db.session.get(Provider, int(result.output.strip()))
    assert provider.currencies == ["EUR", "USD"]
    assert provider.secret_enc != "a-long-enough-secret"
    assert crypto.decrypt(provider.secret_enc) == "a-long-enough-secret"
    again = runner.invoke(
        args=[
            "jackpotx",
            "providers",
            "add",
            "--code",
            "acme",
            "--name",
            "A",
            "--secret",
            "a-long-enough-secret",
        ]
    )
    assert again.exit_code == 1
    bad = runner.invoke(
        args=["jackpotx", "providers", "add", "--code", "x y", "--name", "A", "--secret", "short"]
    )
    assert bad.exit_code == 1


def test_games_import_upserts_and_reports(runner, tmp_path):
    runner.invoke(
        args=[
            "jackpotx",
            "providers",
            "add",
            "--code",
            "acme",
            "--name",
            "Acme",
            "--secret",
            "a-long-enough-secret",
        ]
    )
    path = tmp_path / "games.json"
    path.write_text(
        json.dumps(
            [
                {"external_id": "g1", "name": "One", "category": "slots", "rtp": 96.5},
                {"external_id": "g2", "name": "Two", "category": "table"},
            ]
        )
    )
    first = runner.invoke(
        args=["jackpotx", "games", "import", "--provider", "acme", "--file", str(path)]
    )
    assert first.exit_code == 0, first.output
    assert "imported 2, updated 0, failed 0" in first.output
    second = runner.invoke(
        args=["jackpotx", "games", "import", "--provider", "acme", "--file", str(path)]
    )
    assert "imported 0, updated 2" in second.output
    assert db.session.scalar(sa.select(sa.func.count(Game.id))) == 2
    path.write_text('{"not": "a list"}')
    assert (
        runner.invoke(
            args=["jackpotx", "games", "import", "--provider", "acme", "--file", str(path)]
        ).exit_code
        == 2
    )
    unknown = runner.invoke(
        args=[
            "jackpotx",
            "games",
            "import",
            "--provider",
            "nope",
            "--file",
            str(tmp_path / "games.json"),
        ]
    )
    assert unknown.exit_code != 0


def test_wallets_reconcile_exit_codes(runner, client, factory):
    t = open_table(client, factory)
    t.bet("b1", "1.00")
    ok = runner.invoke(args=["jackpotx", "wallets", "reconcile"])
    assert ok.exit_code == 0, ok.output
    assert "all balanced" in ok.output
    with atomic():
        db.session.execute(sa.update(Wallet).values(bonus_balance=Wallet.bonus_balance + 7))
    broken = runner.invoke(args=["jackpotx", "wallets", "reconcile"])
    assert broken.exit_code == 1
    assert "DOES NOT reconcile" in broken.output
    assert "bonus 7 vs ledger 0" in broken.output


def test_callbacks_replay_reruns_through_the_service(runner, client, factory):
    t = open_table(client, factory)
    t.bet("b1", "1.00")
    row = db.session.scalar(sa.select(ProviderCallback))
    result = runner.invoke(args=["jackpotx", "callbacks", "replay", str(row.id)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert (answer["status"], answer["balance"]) == ("ok", "99.00")
    assert t.balances() == (99_00, 0)
    assert runner.invoke(args=["jackpotx", "callbacks", "replay", "999999"]).exit_code == 1


def _age_rounds(hours: int = 2) -> None:
    from app.core.base import utcnow

    with atomic():
        db.session.execute(
            sa.update(GameRound).values(updated_at=utcnow() - timedelta(hours=hours))
        )


def test_settle_stale_refunds_unfinished_rounds_once_and_audits(runner, client, factory):
    t = open_table(client, factory, cash=50_00, bonus=10_00)
    t.bet("b1", "55.00", round_id="lost-in-space")  # 50 cash + 5 bonus
    t.bet("b2", "1.00", round_id="lost-in-space")
    t.refund("f2", "b2")
    t.bet("b3", "2.00", round_id="has-result")
    t.win("w3", "0", round_id="has-result")
    t.bet("b4", "1.00", round_id="fresh")
    _age_rounds()
    with atomic():
        db.session.execute(
            sa.update(GameRound)
            .where(GameRound.external_round_id == "fresh")
            .values(updated_at=sa.func.now())
        )
    result = runner.invoke(args=["jackpotx", "rounds", "settle-stale", "--older-than", "1h"])
    assert result.exit_code == 0, result.output
    assert "settled 2 round(s): 1 refunded and cancelled, 1 closed" in result.output
    statuses = dict(
        db.session.execute(sa.select(GameRound.external_round_id, GameRound.status)).all()
    )
    assert statuses == {"lost-in-space": "cancelled", "has-result": "closed", "fresh": "open"}
    # Bonus paid b2/b3/b4 (b2 refunded): the refund of b1 restores its 50 cash + 5 bonus.
    assert t.balances() == (50_00, 10_00 - 2_00 - 1_00)
    # A late provider refund of the same bet moves no money; a late win is refused.
    assert t.refund("late", "b1")["status"] == "ok"
    assert t.win("late-win", "5.00", round_id="lost-in-space")["code"] == "ROUND_CLOSED"
    assert t.balances() == (50_00, 7_00)
    again = runner.invoke(args=["jackpotx", "rounds", "settle-stale", "--older-than", "1h"])
    assert "settled 0 round(s)" in again.output
    audits = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "round.settle_stale")
    ).all()
    assert len(audits) == 2
    reconcile_clean()
    assert (
        runner.invoke(args=["jackpotx", "rounds", "settle-stale", "--older-than", "soon"]).exit_code
        == 2
    )


def test_close_policy_closes_without_refunding(runner, client, factory):
    t = open_table(client, factory, stale_round_policy="close")
    t.bet("b1", "5.00")
    _age_rounds()
    runner.invoke(args=["jackpotx", "rounds", "settle-stale"])
    assert db.session.scalar(sa.select(GameRound.status)) == "closed"
    assert t.balances() == (95_00, 0)


def test_stale_round_job_settles_like_the_command(app, client, factory):
    from app.play.jobs import settle_stale_rounds

    t = open_table(client, factory)
    t.bet("b1", "5.00")
    _age_rounds()
    assert settle_stale_rounds(3600)["cancelled"] == 1
    assert t.balances() == (100_00, 0)


def test_seed_demo_funds_demo_players_once(runner):
    for _ in range(2):
        result = runner.invoke(args=["jackpotx", "seed-demo"])
        assert result.exit_code == 0, result.output
    from app.identity.models import User

    player1 = db.session.scalar(sa.select(User).where(User.username == "player1"))
    eur = db.session.scalar(
        sa.select(Wallet).where(Wallet.user_id == player1.id, Wallet.currency == "EUR")
    )
    assert (eur.balance, eur.bonus_balance) == (500_00, 50_00)
    reconcile_clean()
