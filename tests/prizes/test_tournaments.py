"""Tournaments: scores from play, the tie rule, settlement paid exactly once."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core.base import utcnow
from app.core.bus import subscribe
from app.core.extensions import db
from app.prizes import tournament_board, tournaments
from app.prizes.models import Tournament, TournamentParticipant
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction
from tests.moneykit import Table, open_table, reconcile_clean


def make_tournament(factory, **kw) -> Tournament:
    now = utcnow()
    data = {
        "name": "Dice Sprint",
        "currency": "EUR",
        "starts_at": now - timedelta(minutes=1),
        "ends_at": now + timedelta(hours=1),
        "prizes": ["50.00", "20.00"],
    }
    data.update(kw)
    return tournaments.create(data, actor=factory.staff("admin"))


def end_now(tour_id: int) -> None:
    db.session.execute(
        sa.update(Tournament)
        .where(Tournament.id == tour_id)
        .values(ends_at=utcnow() - timedelta(seconds=1))
    )


def board(tour_id: int) -> list[tuple[int, int]]:
    db.session.expire_all()
    return [(p.user_id, p.score) for p in tournament_board.leaderboard(tour_id, 10)]


def bet(table: Table, tx: str, amount: str) -> None:
    """A bet in a round of its own (round ids belong to one player)."""
    assert table.bet(tx, amount, round_id=f"r-{tx}")["status"] == "ok"


def second_player_on(table: Table, client, factory) -> Table:
    """Another funded player at the same provider and game."""
    from app.play import games
    from app.play.models import Game
    from tests.moneykit import fund

    player = factory.player()
    fund(player.id, 100_00)
    game = db.session.scalar(sa.select(Game).where(Game.external_id == table.game_external))
    launched = games.launch(player, game.id)
    return Table(
        client, table.provider_code, table.game_external, player.id, launched.session_token
    )


def test_wagered_leaderboard_orders_by_score_and_ties_go_to_who_got_there_first(client, factory):
    tour = make_tournament(factory)
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    c = second_player_on(a, client, factory)
    bet(a, "a1", "5.00")
    bet(b, "b1", "5.00")
    bet(c, "c1", "2.00")
    assert board(tour.id) == [(a.user_id, 5_00), (b.user_id, 5_00), (c.user_id, 2_00)]
    bet(b, "b2", "0.01")
    bet(a, "a2", "0.01")  # same score again, but later than b
    assert board(tour.id) == [(b.user_id, 5_01), (a.user_id, 5_01), (c.user_id, 2_00)]
    rank, _ = tournament_board.position(tour.id, c.user_id)
    assert rank == 3


def test_bets_outside_the_rules_do_not_score(client, factory):
    tour = make_tournament(factory, min_bet="1.00", game_ids=[-1])
    other = make_tournament(factory, currency="USD")
    table = open_table(client, factory)
    bet(table, "b1", "5.00")
    assert board(tour.id) == []
    assert board(other.id) == []
    later = make_tournament(
        factory, starts_at=utcnow() + timedelta(hours=1), ends_at=utcnow() + timedelta(hours=2)
    )
    bet(table, "b2", "5.00")
    assert board(later.id) == []


def test_opt_in_counts_only_after_joining_and_respects_the_cap(client, factory, token_for):
    tour = make_tournament(factory, entry="opt_in", max_participants=1)
    table = open_table(client, factory)
    bet(table, "b1", "5.00")
    assert board(tour.id) == []
    from app.identity.models import User

    player = db.session.get(User, table.user_id)
    r = client.post(f"/api/tournaments/{tour.id}/join", headers=token_for(player))
    assert r.status_code == 200, r.get_json()
    assert (
        client.post(f"/api/tournaments/{tour.id}/join", headers=token_for(player)).status_code
        == 200
    )
    bet(table, "b2", "3.00")
    assert board(tour.id) == [(table.user_id, 3_00)]
    late = factory.player()
    r = client.post(f"/api/tournaments/{tour.id}/join", headers=token_for(late))
    assert r.status_code == 409


def test_multiplier_and_net_scoring(client, factory):
    mult = make_tournament(factory, scoring="multiplier")
    net = make_tournament(factory, scoring="net")
    table = open_table(client, factory)
    table.bet("b1", "2.00")
    table.win("w1", "10.00")
    table.bet("b2", "4.00", round_id="r2")
    table.win("w2", "6.00", round_id="r2")
    assert board(mult.id) == [(table.user_id, 5 * tournaments.MULTIPLIER_SCALE)]
    assert board(net.id) == [(table.user_id, 10_00)]
    table.bet("b3", "1.00", round_id="r3")
    table.refund("f3", "b3")
    assert board(net.id) == [(table.user_id, 10_00)]


def test_settlement_pays_the_prize_table_once_even_when_rerun(client, factory):
    tour = make_tournament(factory, prizes=["50.00", "20.00"])
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    c = second_player_on(a, client, factory)
    bet(b, "b1", "9.00")
    bet(a, "a1", "7.00")
    bet(c, "c1", "1.00")
    end_now(tour.id)
    bet(a, "a2", "50.00")  # after the end: does not score
    seen = []
    unsubscribe = subscribe(seen.append)
    try:
        tournaments.settle(tour.id)
        tournaments.settle(tour.id)
        # A crash after paying but before marking settled: the rerun pays nothing twice.
        db.session.execute(
            sa.update(Tournament).where(Tournament.id == tour.id).values(status="scheduled")
        )
        tournaments.settle_due()
    finally:
        unsubscribe()
    prizes = db.session.execute(
        sa.select(LedgerTransaction.user_id, LedgerTransaction.cash_delta).where(
            LedgerTransaction.type == "tournament_prize"
        )
    ).all()
    assert sorted(prizes) == sorted([(b.user_id, 50_00), (a.user_id, 20_00)])
    assert b.balances() == (100_00 - 9_00 + 50_00, 0)
    parts = {
        p.user_id: (p.rank, p.prize)
        for p in db.session.scalars(
            sa.select(TournamentParticipant).where(TournamentParticipant.tournament_id == tour.id)
        )
    }
    assert parts == {b.user_id: (1, 50_00), a.user_id: (2, 20_00), c.user_id: (3, None)}
    assert any(e.name == "tournament.update" and e.room == f"tournament:{tour.id}" for e in seen)
    reconcile_clean()


def test_settlement_refuses_before_the_end(client, factory):
    tour = make_tournament(factory)
    r = None
    try:
        tournaments.settle(tour.id)
    except Exception as exc:
        r = exc
    assert type(r).__name__ == "Conflict"
    assert db.session.get(Tournament, tour.id).status == "scheduled"


def test_leaderboard_api_gives_top_n_and_my_position(client, factory, token_for):
    tour = make_tournament(factory)
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    bet(a, "a1", "3.00")
    bet(b, "b1", "1.00")
    from app.identity.models import User

    me = db.session.get(User, b.user_id)
    r = client.get(f"/api/tournaments/{tour.id}/leaderboard?limit=1", headers=token_for(me))
    assert r.status_code == 200, r.get_json()
    data = r.get_json()["data"]
    assert [e["score"] for e in data["top"]] == ["3.00"]
    assert data["me"]["rank"] == 2
    assert data["me"]["score"] == "1.00"
    active = client.get("/api/tournaments/active").get_json()["data"]
    assert [(t["id"], t["state"], t["participants"]) for t in active] == [(tour.id, "running", 2)]


def test_staff_create_and_delete_only_before_start(client, factory, token_for):
    manager = factory.staff("manager")
    start = utcnow() + timedelta(hours=1)
    body = {
        "name": "Weekend Race",
        "currency": "EUR",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=2)).isoformat(),
        "scoring": "won",
        "prizes": ["100", "50.5"],
        "min_bet": "0.10",
    }
    assert (
        client.post(
            "/api/admin/tournaments", json=body, headers=token_for(factory.player())
        ).status_code
        == 403
    )
    r = client.post("/api/admin/tournaments", json=body, headers=token_for(manager))
    assert r.status_code == 201, r.get_json()
    data = r.get_json()["data"]
    assert [p["amount"] for p in data["prizes"]] == ["100.00", "50.50"]
    bad = client.post(
        "/api/admin/tournaments", json={**body, "prizes": ["1.001"]}, headers=token_for(manager)
    )
    assert bad.status_code == 400
    r = client.put(
        f"/api/admin/tournaments/{data['id']}", json={"name": "Renamed"}, headers=token_for(manager)
    )
    assert r.get_json()["data"]["name"] == "Renamed"
    assert (
        client.delete(
            f"/api/admin/tournaments/{data['id']}", headers=token_for(manager)
        ).status_code
        == 204
    )
    running = make_tournament(factory)
    r = client.delete(f"/api/admin/tournaments/{running.id}", headers=token_for(manager))
    assert r.status_code == 409
    r = client.put(
        f"/api/admin/tournaments/{running.id}", json={"scoring": "net"}, headers=token_for(manager)
    )
    assert r.status_code == 409


def test_prize_posting_balances_in_the_ledger(client, factory):
    tour = make_tournament(factory, prizes=["5.00"])
    table = open_table(client, factory)
    bet(table, "b1", "1.00")
    end_now(tour.id)
    tournaments.settle(tour.id)
    wallet_rows = wallet.balances(table.user_id)
    assert [w.balance for w in wallet_rows] == [100_00 - 1_00 + 5_00]
    reconcile_clean()


@pytest.mark.postgres
def test_racing_first_bets_fill_a_capped_free_tournament_exactly_without_deadlock(
    app, requires_postgres, committed_db, client, factory
):
    tour = make_tournament(factory, max_participants=3)
    tables = [open_table(client, factory) for _ in range(8)]
    barrier = threading.Barrier(8, timeout=30)

    def send(table: Table) -> str:
        body = json.dumps(
            {
                "action": "bet",
                "session_token": table.token,
                "game_id": table.game_external,
                "currency": "EUR",
                "transaction_id": "t1",
                "round_id": "r1",
                "amount": "1.00",
            }
        ).encode()
        with app.test_client() as c:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            r = c.post(
                f"/api/provider-callback/{table.provider_code}",
                data=body,
                headers={"Content-Type": "application/json", "X-Signature": table.sign(body)},
            )
            db.session.remove()
            return r.get_json()["status"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, tables))
    assert statuses == ["ok"] * 8
    assert len(board(tour.id)) == 3
    reconcile_clean()


def test_live_board_pushes_are_throttled_per_tournament(app, client, factory, monkeypatch):
    monkeypatch.setitem(
        app.config, "TOURNAMENT_TICK_SECONDS", 60
    )  # a slow machine stays in the window
    tour = make_tournament(factory)
    table = open_table(client, factory)
    seen = []
    unsubscribe = subscribe(seen.append)
    try:
        for n in range(4):
            bet(table, f"b{n}", "1.00")
    finally:
        unsubscribe()
    pushes = [e for e in seen if e.name == "tournament.update"]
    assert len(pushes) == 1
    assert pushes[0].room == f"tournament:{tour.id}"
    assert pushes[0].data["top"][0]["score"] == "1.00"


def test_a_refund_takes_back_only_what_its_bet_scored(client, factory):
    """A provider refund names the bet, not the game: it must undo exactly that bet's score —
    nothing for a bet under the minimum, on another game, or placed before the start."""
    from app.play.models import Game

    table = open_table(client, factory)
    game_id = db.session.scalar(sa.select(Game.id).where(Game.external_id == table.game_external))
    bet(table, "early", "3.00")  # before the tournament exists
    tour = make_tournament(factory, min_bet="1.00", game_ids=[game_id], starts_at=utcnow())
    bet(table, "big", "5.00")
    bet(table, "small", "0.50")  # under the minimum: not scored
    assert board(tour.id) == [(table.user_id, 5_00)]
    for tx in ("small", "early"):
        assert table.refund(f"rf-{tx}", tx, round_id=f"r-{tx}")["status"] == "ok"
    assert board(tour.id) == [(table.user_id, 5_00)]
    assert table.refund("rf-big", "big", round_id="r-big")["status"] == "ok"
    assert board(tour.id) == [(table.user_id, 0)]
