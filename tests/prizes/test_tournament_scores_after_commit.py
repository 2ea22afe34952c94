"""Tournament scores are written after the callback commits: once per (tournament, claim,
kind), by the claim's time, a refund undoing exactly its bet whatever runs first, and
settlement (or the sweep) scoring what the after-commit step never ran."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from app.core.base import utcnow
from app.core.extensions import db
from app.identity.models import User
from app.play import events as play_events
from app.prizes import tournaments
from app.prizes.models import Tournament, TournamentParticipant, TournamentScoreEvent
from app.wallet.models import LedgerTransaction
from tests.moneykit import open_table, reconcile_clean
from tests.prizes.test_tournaments import board, make_tournament, second_player_on


def ok(answer: dict) -> dict:
    assert answer["status"] == "ok", answer
    return answer


@pytest.fixture
def held(monkeypatch):
    """The after-commit step does not run (a process that dies right after the commit): the
    committed events are kept here instead."""
    kept: list[play_events.PlayEvent] = []
    monkeypatch.setattr(play_events, "_dispatch", kept.append)
    return kept


def markers(tour_id: int) -> list[tuple[str, int]]:
    se = TournamentScoreEvent
    return [
        (kind, amount)
        for kind, amount in db.session.execute(
            sa.select(se.kind, se.amount).where(se.tournament_id == tour_id).order_by(se.id)
        )
    ]


def set_window(tour_id: int, **values) -> None:
    db.session.execute(sa.update(Tournament).where(Tournament.id == tour_id).values(**values))


def test_scores_are_written_after_the_bets_transaction_not_inside_it(client, factory, held):
    tour = make_tournament(factory)
    table = open_table(client, factory)
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        ok(table.bet("b1", "5.00", round_id="r1"))
        ok(table.win("w1", "2.00", round_id="r1"))
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)
    assert not [s for s in seen if "tournament" in s]
    assert board(tour.id) == []
    play_events.run_after_commit(held)
    assert board(tour.id) == [(table.user_id, 5_00)]
    assert markers(tour.id) == [("bet", 5_00), ("win", 2_00)]


def test_running_events_twice_scores_them_once(client, factory, held):
    wagered = make_tournament(factory)
    won = make_tournament(factory, scoring="won")
    table = open_table(client, factory)
    ok(table.bet("b1", "5.00", round_id="r1"))
    ok(table.win("w1", "7.00", round_id="r1"))
    ok(table.bet("b2", "3.00", round_id="r2"))
    ok(table.refund("f2", "b2", round_id="r2"))
    play_events.run_after_commit(held)
    play_events.run_after_commit(held)  # the queue and the sweep both met them
    assert tournaments.sweep(grace=timedelta(0)) == 0
    assert board(wagered.id) == [(table.user_id, 5_00)]
    assert board(won.id) == [(table.user_id, 7_00)]
    part = db.session.scalar(
        sa.select(TournamentParticipant).where(TournamentParticipant.tournament_id == wagered.id)
    )
    assert (part.bets, part.wagered, part.won) == (2, 5_00, 7_00)
    assert markers(wagered.id) == [("bet", 5_00), ("win", 7_00), ("bet", 3_00), ("reversal", 3_00)]


def test_a_refund_run_before_its_bet_undoes_exactly_the_bet(client, factory, held):
    tour = make_tournament(factory, scoring="net")
    table = open_table(client, factory)
    ok(table.bet("b1", "4.00", round_id="r1"))
    ok(table.bet("b2", "1.00", round_id="r2"))
    ok(table.refund("f1", "b1", round_id="r1"))
    bet1, bet2, refund = held
    play_events.run_after_commit([refund])  # another worker drained the refund first
    assert board(tour.id) == [(table.user_id, 0)]
    assert markers(tour.id) == [("bet", 4_00), ("reversal", 4_00)]
    play_events.run_after_commit([bet1])  # the bet's own run comes late: nothing twice
    play_events.run_after_commit([bet2])
    assert board(tour.id) == [(table.user_id, -1_00)]


def test_a_win_run_before_its_bet_scores_the_bet_first(client, factory, held):
    tour = make_tournament(factory, scoring="won", max_participants=5)
    table = open_table(client, factory)
    ok(table.bet("b1", "2.00", round_id="r1"))
    ok(table.win("w1", "9.00", round_id="r1"))
    bet, win = held
    play_events.run_after_commit([win])  # the bet enrols the player: it runs first
    assert board(tour.id) == [(table.user_id, 9_00)]
    play_events.run_after_commit([bet])
    assert board(tour.id) == [(table.user_id, 9_00)]
    assert markers(tour.id) == [("bet", 2_00), ("win", 9_00)]


def test_tournaments_are_chosen_by_the_claims_time_not_the_drains(client, factory, held):
    tour = make_tournament(factory)
    table = open_table(client, factory)
    ok(table.bet("b1", "5.00", round_id="r1"))
    set_window(tour.id, ends_at=utcnow())  # ended after the bet, before its after-commit run
    ok(table.bet("b2", "8.00", round_id="r2"))  # after the end
    play_events.run_after_commit(held)
    assert board(tour.id) == [(table.user_id, 5_00)]


def test_settlement_first_scores_every_claim_made_before_the_end(client, factory, held):
    """No after-commit run at all (the queue lost): settlement still ranks every bet placed
    before the end, minus what was refunded, and nothing placed after it."""
    tour = make_tournament(factory, prizes=["50.00", "20.00"])
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    ok(a.bet("a1", "7.00", round_id="ra1"))
    ok(b.bet("b1", "9.00", round_id="rb1"))
    ok(b.bet("b2", "4.00", round_id="rb2"))
    ok(b.refund("fb2", "b2", round_id="rb2"))
    set_window(tour.id, ends_at=utcnow())
    ok(a.bet("a2", "50.00", round_id="ra2"))  # after the end: does not score
    assert board(tour.id) == []
    tournaments.settle(tour.id)
    parts = {
        p.user_id: (p.rank, p.score, p.prize)
        for p in db.session.scalars(
            sa.select(TournamentParticipant).where(TournamentParticipant.tournament_id == tour.id)
        )
    }
    assert parts == {b.user_id: (1, 9_00, 50_00), a.user_id: (2, 7_00, 20_00)}
    play_events.run_after_commit(held)  # the lost queue, run late, changes nothing
    db.session.expire_all()
    assert [
        (p.user_id, p.score) for p in tournaments.tournament_board.leaderboard(tour.id, 10)
    ] == [
        (b.user_id, 9_00),
        (a.user_id, 7_00),
    ]
    prizes = db.session.scalars(
        sa.select(LedgerTransaction.cash_delta).where(LedgerTransaction.type == "tournament_prize")
    ).all()
    assert sorted(prizes) == [20_00, 50_00]
    reconcile_clean()


def test_opt_in_bets_before_joining_never_score_even_when_caught_up(
    client, factory, held, token_for
):
    tour = make_tournament(factory, entry="opt_in")
    table = open_table(client, factory)
    ok(table.bet("b1", "5.00", round_id="r1"))  # not joined yet
    player = db.session.get(User, table.user_id)
    assert (
        client.post(f"/api/tournaments/{tour.id}/join", headers=token_for(player)).status_code
        == 200
    )
    ok(table.bet("b2", "3.00", round_id="r2"))
    set_window(tour.id, ends_at=utcnow())
    tournaments.settle(tour.id)
    part = db.session.scalar(
        sa.select(TournamentParticipant).where(TournamentParticipant.tournament_id == tour.id)
    )
    assert (part.score, part.bets, part.rank) == (3_00, 1, 1)


def test_the_sweep_scores_what_a_crash_after_commit_lost_once(client, factory, held):
    tour = make_tournament(factory, scoring="net")
    table = open_table(client, factory)
    ok(table.bet("b1", "5.00", round_id="r1"))
    ok(table.win("w1", "2.00", round_id="r1"))
    ok(table.bet("b2", "1.00", round_id="r2"))
    ok(table.rollback("rb2", "b2", round_id="r2"))
    assert board(tour.id) == []
    assert tournaments.sweep(grace=timedelta(0)) == 4
    assert board(tour.id) == [(table.user_id, -3_00)]
    assert tournaments.sweep(grace=timedelta(0)) == 0
    play_events.run_after_commit(held)  # the lost queue, had it survived, changes nothing
    assert board(tour.id) == [(table.user_id, -3_00)]
    # Within the grace period the sweep leaves claims to the after-commit step.
    ok(table.bet("b3", "3.00", round_id="r3"))
    assert tournaments.sweep() == 0
    assert board(tour.id) == [(table.user_id, -3_00)]


def test_settlement_waits_out_the_grace_after_the_end(app, client, factory, monkeypatch):
    """A bet claimed just before the end may still be in flight: settlement (the job or by
    hand) waits ``TOURNAMENT_SETTLE_GRACE_SECONDS`` so its catch-up sees it committed."""
    monkeypatch.setitem(app.config, "TOURNAMENT_SETTLE_GRACE_SECONDS", 60)
    tour = make_tournament(factory, starts_at=utcnow() - timedelta(minutes=10))
    set_window(tour.id, ends_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(tournaments.Conflict):
        tournaments.settle(tour.id)
    assert tour.id not in tournaments.settle_due()
    set_window(tour.id, ends_at=utcnow() - timedelta(seconds=61))
    assert tour.id in tournaments.settle_due()
    assert db.session.get(Tournament, tour.id).status == "settled"


@pytest.mark.postgres
def test_two_workers_draining_the_same_events_at_once_score_them_once(
    app, requires_postgres, committed_db, client, factory, held
):
    """The queue of one worker and the sweep (or a second worker) meeting the same bets, win
    and refund at once: the markers' unique key makes the second wait, then add nothing."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    tour = make_tournament(factory, scoring="net")
    table = open_table(client, factory)
    ok(table.bet("b1", "5.00", round_id="r1"))
    ok(table.win("w1", "2.00", round_id="r1"))
    ok(table.bet("b2", "1.00", round_id="r2"))
    ok(table.refund("f2", "b2", round_id="r2"))
    events, tour_id, user_id = list(held), tour.id, table.user_id
    db.session.commit()
    db.session.remove()
    barrier = threading.Barrier(4, timeout=30)

    def drain(order: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                if order == 3:
                    tournaments.sweep(grace=timedelta(0))
                else:
                    play_events.run_after_commit(events if order % 2 else events[::-1])
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(drain, range(4)))
    assert board(tour_id) == [(user_id, 2_00 - 5_00 - 1_00 + 1_00)]
    assert sorted(markers(tour_id)) == sorted(
        [("bet", 5_00), ("win", 2_00), ("bet", 1_00), ("reversal", 1_00)]
    )
    reconcile_clean()
