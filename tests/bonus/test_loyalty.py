"""Loyalty points follow applied cash stakes; refunds and rollbacks take them back; levels."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from app.bonus import loyalty
from app.bonus.models import LoyaltyAccount, LoyaltyEvent
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import Notification
from app.play import events as play_events
from app.wallet.models import LedgerTransaction
from tests.moneykit import open_table, reconcile_clean


@pytest.fixture(autouse=True)
def levels(app):
    with atomic():
        loyalty.ensure_levels()


def ok(answer: dict) -> dict:
    # A listener that raised would turn the callback into INTERNAL_ERROR (still HTTP 200).
    assert answer["status"] == "ok", answer
    return answer


def points_of(user_id: int) -> int:
    db.session.expire_all()
    account = db.session.get(LoyaltyAccount, user_id)
    return 0 if account is None else account.points


def events_of(user_id: int) -> list[tuple[str, int]]:
    return [
        (e.kind, e.points)
        for e in db.session.scalars(
            select(LoyaltyEvent).where(LoyaltyEvent.user_id == user_id).order_by(LoyaltyEvent.id)
        )
    ]


def test_each_applied_cash_stake_earns_points_once(client, factory):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "12.34"))
    ok(table.bet("b1", "12.34"))  # the provider retries: same answer, no new points
    ok(table.bet("b2", "0.99", round_id="r2"))  # less than a unit: no points, no event
    ok(table.win("w1", "50.00"))  # wins earn nothing
    assert points_of(table.user_id) == 12
    assert events_of(table.user_id) == [("wager", 12)]
    # Points are not money: the wallet's ledger has only the deposit, bets and the win.
    types = db.session.scalars(
        select(LedgerTransaction.type).where(LedgerTransaction.user_id == table.user_id)
    ).all()
    assert sorted(types) == ["bet", "bet", "deposit", "win"]
    reconcile_clean()


def test_a_refund_takes_the_points_back_once_and_a_win_rollback_does_not(client, factory):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "20.00"))
    ok(table.bet("b2", "5.00", round_id="r2"))
    ok(table.win("w2", "1.00", round_id="r2"))
    assert points_of(table.user_id) == 25
    ok(table.refund("rf1", "b1"))
    ok(table.refund("rf1", "b1"))  # replay
    ok(table.rollback("rb1", "b1"))  # already refunded: a no-op
    ok(table.rollback("rb2", "w2"))  # undoing a win leaves the stake's points alone
    assert points_of(table.user_id) == 5
    assert events_of(table.user_id) == [("wager", 20), ("wager", 5), ("reversal", -20)]
    ok(table.rollback("rb3", "b2"))
    assert points_of(table.user_id) == 0
    reconcile_clean()


@pytest.fixture
def held(monkeypatch):
    """The after-commit step does not run (a process that dies right after the commit): the
    committed events are kept here instead."""
    kept: list[play_events.PlayEvent] = []
    monkeypatch.setattr(play_events, "_dispatch", kept.append)
    return kept


def wait_for_points(user_id: int, expected: int, within: float = 2.0) -> float:
    """Seconds until the player's points read ``expected`` (fails after ``within``)."""
    start = time.monotonic()
    while True:
        points = points_of(user_id)
        elapsed = time.monotonic() - start
        if points == expected:
            return elapsed
        assert elapsed < within, f"points {points}, expected {expected} within {within} s"
        time.sleep(0.01)


def test_points_are_written_after_the_bets_transaction_not_inside_it(client, factory, held):
    table = open_table(client, factory, cash=100_00)
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        ok(table.bet("b1", "12.34"))
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)
    assert not [s for s in seen if "loyalty" in s]
    assert points_of(table.user_id) == 0
    assert [(e.kind, e.transaction_id) for e in held] == [("bet", held[0].transaction_id)]
    play_events.run_after_commit(held)
    assert points_of(table.user_id) == 12


def test_points_reflect_a_bet_within_two_seconds_of_the_answer(client, factory):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "7.00"))
    assert wait_for_points(table.user_id, 7) < 2.0
    ok(table.refund("rf1", "b1"))
    assert wait_for_points(table.user_id, 0) < 2.0


def test_running_an_event_twice_counts_it_once(client, factory, held):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "20.00"))
    ok(table.refund("rf1", "b1"))
    play_events.run_after_commit(held)
    play_events.run_after_commit(held)  # the queue and the sweep both met them
    assert points_of(table.user_id) == 0
    assert events_of(table.user_id) == [("wager", 20), ("reversal", -20)]


def test_a_refund_run_before_its_bets_after_commit_work_undoes_exactly_the_bet(
    client, factory, held
):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "20.00"))
    ok(table.bet("b2", "5.00", round_id="r2"))
    ok(table.refund("rf1", "b1"))
    bet1, bet2, refund = held
    play_events.run_after_commit([refund])  # another worker drained the refund first
    assert points_of(table.user_id) == 0
    assert events_of(table.user_id) == [("wager", 20), ("reversal", -20)]
    play_events.run_after_commit([bet1])  # the bet's own run comes late: nothing twice
    play_events.run_after_commit([bet2])
    assert points_of(table.user_id) == 5
    assert events_of(table.user_id) == [("wager", 20), ("reversal", -20), ("wager", 5)]


def test_the_sweep_writes_what_a_crash_after_commit_lost_once(client, factory, held):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "12.34"))
    ok(table.bet("b2", "5.00", round_id="r2"))
    ok(table.rollback("rb2", "b2"))
    ok(table.bet("b3", "0.50", round_id="r3"))  # earns nothing: the sweep writes nothing
    assert points_of(table.user_id) == 0
    assert loyalty.sweep(grace=timedelta(0)) == 3
    assert points_of(table.user_id) == 12
    assert events_of(table.user_id) == [("wager", 12), ("wager", 5), ("reversal", -5)]
    loyalty.sweep(grace=timedelta(0))
    play_events.run_after_commit(held)  # the lost queue, had it survived, changes nothing
    assert points_of(table.user_id) == 12
    assert len(events_of(table.user_id)) == 3
    # Within the grace period the sweep leaves stakes to the after-commit step.
    ok(table.bet("b4", "3.00", round_id="r4"))
    loyalty.sweep()
    assert points_of(table.user_id) == 12
    reconcile_clean()


def test_the_sweep_reads_only_what_came_after_its_high_water_mark(client, factory, held):
    """The mark trails by SWEEP_SETTLED (15 min): a stake older than that was swept once and
    is not read again; a newer one still is."""
    from app.core import settings

    start = utcnow()
    with freeze_time(start):
        table = open_table(client, factory, cash=100_00)
        ok(table.bet("b1", "10.00"))
    with freeze_time(start + timedelta(minutes=20)):
        ok(table.bet("b2", "4.00", round_id="r2"))
        assert loyalty.sweep(grace=timedelta(0)) == 2
        b1 = db.session.scalar(
            select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == "b1")
        )
        b2 = db.session.scalar(
            select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == "b2")
        )
        assert b1 <= settings.get(loyalty.SWEEP_MARK) < b2
        # Behind the mark nothing is looked for again: b1's event, gone, is not rewritten.
        with atomic():
            db.session.execute(
                LoyaltyEvent.__table__.delete().where(
                    LoyaltyEvent.user_id == table.user_id, LoyaltyEvent.points == 10
                )
            )
        assert loyalty.sweep(grace=timedelta(0)) == 0
    assert points_of(table.user_id) == 14


def test_bonus_money_earns_no_points(client, factory):
    table = open_table(client, factory, cash=0, bonus=50_00)
    ok(table.bet("b1", "30.00"))
    assert points_of(table.user_id) == 0


def test_points_raise_the_level_and_a_rollback_lowers_it(client, factory, token_for, app):
    app.config["LOYALTY_POINTS_PER_UNIT"] = 100
    try:
        table = open_table(client, factory, cash=500_00)
        ok(table.bet("b1", "5.00"))  # 500 points: Bronze, half-way to Silver
        from app.identity.models import User

        headers = token_for(db.session.get(User, table.user_id))
        me = client.get("/api/user/loyalty", headers=headers).json["data"]
        assert me["points"] == 500
        assert me["level"]["code"] == "bronze"
        assert me["next_level"]["code"] == "silver"
        assert (me["points_to_next_level"], me["progress_percent"]) == (500, 50)
        assert [lv["code"] for lv in me["levels"]] == ["bronze", "silver", "gold", "platinum"]
        assert me["history"][0]["points"] == 500
        ok(table.bet("b2", "6.00", round_id="r2"))  # 1100 points: Silver
        profile = client.get("/api/user/profile", headers=headers).json["data"]
        assert profile["loyalty"]["level"]["code"] == "silver"
        assert profile["loyalty"]["next_level"]["code"] == "gold"
        assert profile["loyalty"]["progress_percent"] == 100 * 100 // 9000
        home = client.get("/api/home", headers=headers).json["data"]
        assert home["player"]["loyalty"]["points"] == 1100
        notes = db.session.scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == table.user_id, Notification.type == "loyalty"
            )
        )
        assert notes == 1
        ok(table.rollback("rb2", "b2"))
        me = client.get("/api/user/loyalty", headers=headers).json["data"]
        assert (me["points"], me["level"]["code"]) == (500, "bronze")
        assert me["history_total"] == 3
    finally:
        app.config["LOYALTY_POINTS_PER_UNIT"] = 1


def test_loyalty_needs_a_token_and_pages_are_checked(client, factory, token_for):
    assert client.get("/api/user/loyalty").status_code == 401
    headers = token_for(factory.player())
    assert client.get("/api/user/loyalty?limit=abc", headers=headers).status_code == 400
    empty = client.get("/api/user/loyalty", headers=headers).json["data"]
    assert (empty["points"], empty["level"]["code"], empty["history"]) == (0, "bronze", [])


def test_a_stale_round_refund_takes_the_points_back(client, factory):
    from datetime import timedelta

    import sqlalchemy as sa

    from app.core.base import utcnow
    from app.play import rounds
    from app.play.models import GameRound

    table = open_table(client, factory, cash=50_00)
    ok(table.bet("b1", "30.00", round_id="never-finished"))
    assert points_of(table.user_id) == 30
    with atomic():
        db.session.execute(sa.update(GameRound).values(updated_at=utcnow() - timedelta(hours=2)))
    report = rounds.settle_stale(timedelta(hours=1))
    assert report.refunded_bets == 1
    assert points_of(table.user_id) == 0
    assert events_of(table.user_id) == [("wager", 30), ("reversal", -30)]
    reconcile_clean()


def test_a_batch_of_two_players_bets_with_a_refund_inside_counts_each_stake_once(
    client, factory, monkeypatch
):
    """The after-commit queue hands listeners a batch: the bets of a run are written by one
    statement (PostgreSQL), a refund in the middle first flushes the bets before it, and the
    same batch run again (the queue and the sweep both met it) adds nothing."""
    first = open_table(client, factory, cash=100_00)
    second = open_table(client, factory, cash=100_00)
    held: list[play_events.PlayEvent] = []
    monkeypatch.setattr(play_events, "run_after_commit", held.extend)
    ok(first.bet("a1", "3.00", round_id="ra1"))
    ok(second.bet("c1", "5.00", round_id="rc1"))
    ok(first.bet("a2", "4.00", round_id="ra2"))
    ok(first.refund("a1r", "a1", round_id="ra1"))
    ok(first.bet("a3", "2.00", round_id="ra3"))
    ok(second.bet("c2", "1.00", round_id="rc2"))
    monkeypatch.undo()
    assert [e.kind for e in held] == ["bet", "bet", "bet", "refund", "bet", "bet"]
    assert points_of(first.user_id) == points_of(second.user_id) == 0  # nothing ran yet
    for _ in range(2):
        play_events.run_after_commit(held)
        assert points_of(first.user_id) == 4 + 2  # 3 earned, then taken back by the refund
        assert points_of(second.user_id) == 5 + 1
    assert events_of(second.user_id) == [("wager", 5), ("wager", 1)]
    assert sorted(events_of(first.user_id)) == sorted(
        [("wager", 3), ("wager", 4), ("wager", 2), ("reversal", -3)]
    )
    reconcile_clean()
