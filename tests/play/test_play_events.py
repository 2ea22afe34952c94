"""Other domains hear about applied stakes and wins, once, inside the money transaction."""

from __future__ import annotations

import pytest

from app.core.batchqueue import BatchQueue
from app.play import events as play_events
from tests import moneykit


@pytest.fixture
def heard():
    events: list[play_events.PlayEvent] = []
    play_events.register(events.append)
    yield events
    play_events.unregister(events.append)


def test_applied_bet_and_win_are_heard_once_and_replays_are_not(client, factory, heard):
    table = moneykit.open_table(client, factory, cash=10_00, bonus=5_00)
    assert table.bet("b1", "12.00")["status"] == "ok"
    assert table.bet("b1", "12.00")["status"] == "ok"  # provider retry
    assert table.win("w1", "3.00")["status"] == "ok"
    kinds = [(e.kind, e.amount, e.cash_part, e.bonus_part) for e in heard]
    assert kinds == [("bet", 12_00, 10_00, 2_00), ("win", 3_00, 2_50, 50)]
    assert {e.user_id for e in heard} == {table.user_id}
    assert heard[0].game_id is not None
    assert heard[0].round_id == "r1"


def test_refused_bet_is_not_heard(client, factory, heard):
    table = moneykit.open_table(client, factory, cash=1_00)
    assert table.bet("b1", "5.00")["code"] == "INSUFFICIENT_FUNDS"
    assert heard == []


def test_rollback_says_what_it_undid(client, factory, heard):
    table = moneykit.open_table(client, factory, cash=10_00)
    table.bet("b1", "4.00")
    table.rollback("rb1", "b1")
    assert [(e.kind, e.reverses, e.amount) for e in heard] == [
        ("bet", None, 4_00),
        ("rollback", "bet", 4_00),
    ]


def test_a_failing_listener_aborts_the_callback_and_moves_no_money(client, factory):
    table = moneykit.open_table(client, factory, cash=10_00)

    def broken(_event):
        raise RuntimeError("listener bug")

    play_events.register(broken)
    try:
        answer = table.bet("b1", "4.00")
    finally:
        play_events.unregister(broken)
    assert answer["status"] == "error"
    assert answer["code"] == "INTERNAL_ERROR"
    assert table.balances() == (10_00, 0)
    moneykit.reconcile_clean()


def test_the_after_commit_queue_is_bounded_and_leaves_the_overflow_to_the_sweep():
    """A worker whose queue cannot keep up does not grow without bound: past the limit an
    event is counted and left to the owner's sweep (which redoes what was never run)."""
    drainer = BatchQueue(
        None, play_events.run_after_commit, name="t", batch=10, limit=2,
        overflow=play_events._left_to_sweep, start=False,  # no thread: the queue stays full
    )  # fmt: skip
    event = play_events.PlayEvent("bet", 1, "EUR", 100, 100, 0, 1, None, "r", 1)
    for _ in range(5):
        drainer.submit(event)
    assert drainer.queue.qsize() == 2
    assert drainer.dropped == 3


def test_drain_waits_for_the_after_commit_queue_and_says_when_it_could_not():
    drainer = BatchQueue(None, print, name="t", batch=10, limit=10, start=False)
    play_events._drainers.queues[-1] = drainer
    try:
        assert play_events.drain(0.05)
        drainer.queue.put_nowait(object())  # nobody drains it
        assert not play_events.drain(0.05)
        drainer.queue.get_nowait()
        drainer.busy = True  # a batch in flight
        assert not play_events.drain(0.05)
        drainer.busy = False
        assert play_events.drain(0.05)
    finally:
        del play_events._drainers.queues[-1]
