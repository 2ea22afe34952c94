"""The demo: a jackpot and a tournament live on JxOriginals move with real play."""

from __future__ import annotations

import sqlalchemy as sa

from app.core.db import atomic
from app.core.extensions import db
from app.prizes import jackpots, tournament_board, tournaments
from app.prizes.models import JackpotContribution, JackpotPool, LotteryDraw, Tournament
from app.seed import seed_engagement
from tests.moneykit import fund, reconcile_clean
from tests.originals.test_originals_wallet import _open, _play, studio  # noqa: F401 - fixture


def fund_left(user_id: int) -> int:
    from app.wallet.models import Wallet

    db.session.expire_all()
    return db.session.scalar(sa.select(Wallet.balance).where(Wallet.user_id == user_id))


def wins_of(user_id: int) -> int:
    from app.wallet.models import LedgerTransaction

    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerTransaction.cash_delta), 0)).where(
            LedgerTransaction.user_id == user_id, LedgerTransaction.type == "win"
        )
    )


def test_seeded_jackpot_and_tournament_follow_jxoriginals_play(client, factory, studio):  # noqa: F811
    with atomic():
        seed_engagement()
        seed_engagement()  # idempotent
    assert db.session.scalar(sa.select(sa.func.count(JackpotPool.id))) == 2
    assert db.session.scalar(sa.select(sa.func.count(Tournament.id))) == 2
    free = db.session.scalar(sa.select(Tournament).where(Tournament.entry == "free"))
    paid = db.session.scalar(sa.select(Tournament).where(Tournament.entry_fee > 0))
    assert (free.entry_fee, paid.entry, paid.entry_fee) == (0, "opt_in", 1_00)
    for pool in db.session.scalars(sa.select(JackpotPool)):
        assert pool.drop_at_commitment  # must drop by time as well as by amount
        assert pool.drop_deadline > pool.cycle_started_at
    assert db.session.scalar(sa.select(sa.func.count(LotteryDraw.id))) == 1
    # The random hits (1 in 20 000 and 500 000) would make this test flaky; draws have their own.
    db.session.execute(sa.update(JackpotPool).values(hit_odds=None))
    player = factory.player()
    fund(player.id, cash=50_00)
    token = _open(client, player)
    for _ in range(3):
        response = _play(client, token, "2.50", target="49.50")
        assert response.status_code == 201, response.get_json()
    db.session.expire_all()
    pools = db.session.scalars(sa.select(JackpotPool).order_by(JackpotPool.id)).all()
    for pool in pools:
        shares = db.session.scalars(
            sa.select(JackpotContribution.amount).where(JackpotContribution.pool_id == pool.id)
        ).all()
        assert shares == [1, 1, 1]  # 0.5 % of 2.50, rounded down
        assert jackpots.amount_of(pool) == pool.seed_amount + 3
    (top,) = tournament_board.leaderboard(free.id)
    assert (top.user_id, top.score, top.bets) == (player.id, 7_50, 3)
    assert tournament_board.leaderboard(paid.id) == []  # opt-in: play alone does not enter
    tournaments.join(paid.id, player)
    tournaments.join(paid.id, player)  # the fee is charged once
    assert fund_left(player.id) == 50_00 - 7_50 + wins_of(player.id) - 1_00
    reconcile_clean()
