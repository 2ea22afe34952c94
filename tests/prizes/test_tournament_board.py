"""Live leaderboard in Redis sorted sets: never a different order from PostgreSQL's."""

from __future__ import annotations

import dataclasses
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.base import utcnow
from app.core.extensions import db
from app.identity.models import User
from app.prizes import tournament_board, tournaments
from app.prizes.models import TournamentParticipant
from app.prizes.tournament_board import MAX_EXACT_SCORE, Entry
from tests.moneykit import open_table
from tests.prizes.test_tournaments import bet, end_now, make_tournament, second_player_on

P = TournamentParticipant


def keys_of(app, tid: int) -> set[str]:
    return {k.decode() for k in app.extensions["redis"].keys(f"jx:tboard:{{{tid}}}*")}


def redis_board(tour, user_id=None, limit=10):
    board = tournament_board.read(tour.id, tour.ends_at, user_id, limit)
    assert board is not None
    assert board.source == "redis"
    return board


def pg_board(tour, user_id=None, limit=10):
    db.session.expire_all()
    return tournament_board.postgres(tour.id, user_id, limit)


def assert_same_boards(tour, user_ids, limits=(1, 3, 10, 100)) -> None:
    for limit in limits:
        assert redis_board(tour, None, limit).top == pg_board(tour, None, limit).top, limit
    for uid in user_ids:
        assert redis_board(tour, uid, 1).me == pg_board(tour, uid, 1).me, uid


def entry(row: TournamentParticipant) -> Entry:
    return tournament_board.entry_of(row)


def insert_participants(tour, users, rng: random.Random) -> list[TournamentParticipant]:
    """Rows with many ties: few distinct scores and few distinct score_at instants."""
    base = utcnow() - timedelta(minutes=30)
    instants = [base + timedelta(microseconds=rng.choice([0, 1, 2, 999_999])) for _ in range(3)]
    scores = [0, 1, 100, 100, 250, -50, MAX_EXACT_SCORE, -MAX_EXACT_SCORE, MAX_EXACT_SCORE - 1]
    rows = []
    for user in rng.sample(users, rng.randint(1, len(users))):
        row = P(
            tournament_id=tour.id,
            user_id=user.id,
            score=rng.choice(scores),
            score_at=rng.choice(instants),
            bets=rng.randint(0, 3),
            won=rng.randint(0, 500),
            wagered=rng.randint(0, 500),
        )
        db.session.add(row)
        rows.append(row)
    db.session.flush()
    return rows


@pytest.fixture
def players(factory):
    return [factory.player() for _ in range(14)]


def test_redis_and_postgres_boards_agree_on_random_data_with_ties(factory, players):
    rng = random.Random(9)
    for _ in range(12):
        tour = make_tournament(factory, scoring="net")
        rows = insert_participants(tour, players, rng)
        assert_same_boards(tour, [u.id for u in players])  # first read rebuilds from PostgreSQL
        # Then live updates, mirrored in a shuffled order with duplicates, as late hooks would.
        writes = []
        for row in rng.sample(rows, rng.randint(1, len(rows))):
            writes.append(entry(row))
            row.bets += 1
            row.score = rng.choice([row.score, 0, 100, 250])
            row.score_at = rng.choice([row.score_at, utcnow()])
            db.session.flush()
            writes.append(entry(row))
        rng.shuffle(writes)
        tournament_board.mirror(tour.id, tour.ends_at, writes + writes[: len(writes) // 2])
        assert_same_boards(tour, [u.id for u in players])


def test_equal_scores_rank_by_who_got_there_first_then_by_enrolment(factory, players):
    tour = make_tournament(factory)
    t0 = utcnow() - timedelta(minutes=5)
    a, b, c, d = players[:4]
    rows = [
        P(tournament_id=tour.id, user_id=d.id, score=500, score_at=t0 + timedelta(microseconds=1)),
        P(tournament_id=tour.id, user_id=c.id, score=500, score_at=t0),
        P(tournament_id=tour.id, user_id=b.id, score=500, score_at=t0),
        P(tournament_id=tour.id, user_id=a.id, score=900, score_at=t0 + timedelta(seconds=9)),
    ]
    for row in rows:  # c enrols before b: the same instant goes to the smaller row id
        db.session.add(row)
        db.session.flush()
    expected = [(a.id, 900), (c.id, 500), (b.id, 500), (d.id, 500)]
    assert redis_board(tour).top == expected == pg_board(tour).top
    assert redis_board(tour, d.id).me == (4, 500)


def test_callback_scores_reach_redis_and_match_postgres(app, client, factory):
    tour = make_tournament(factory)
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    c = second_player_on(a, client, factory)
    bet(a, "a1", "5.00")
    bet(b, "b1", "5.00")
    bet(c, "c1", "2.00")
    # Mirrored after commit; the live push never rebuilds (it runs inside the callback), so
    # the board becomes ready at the first read.
    assert app.extensions["redis"].zscore(f"jx:tboard:{{{tour.id}}}", "!ready") is None
    redis_board(tour)
    bet(b, "b2", "0.01")
    bet(a, "a2", "0.01")
    assert c.refund("c1-back", "c1")["status"] == "ok"
    expected = [(b.user_id, 5_01), (a.user_id, 5_01), (c.user_id, 0)]
    assert redis_board(tour).top == expected == pg_board(tour).top
    raw = app.extensions["redis"].zrevrange(f"jx:tboard:{{{tour.id}}}", 0, -1, withscores=True)
    assert [(tournament_board.user_of(m), s) for m, s in raw if not m.startswith(b"!")] == [
        (uid, float(score)) for uid, score in expected
    ]


def test_a_replayed_callback_and_late_mirror_writes_do_not_drift(app, client, factory):
    tour = make_tournament(factory)
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    bet(a, "a1", "1.00")
    redis_board(tour)
    states = []
    for i, amount in enumerate(["2.00", "3.00", "4.00"]):
        bet(a, f"a-next-{i}", amount)
        db.session.expire_all()
        states.append(entry(db.session.scalar(sa.select(P).where(P.user_id == a.user_id))))
    bet(b, "b1", "9.00")
    before = redis_board(tour, a.user_id)
    # The provider replays a bet: same answer, no money, no score, no Redis write.
    assert a.bet("a-next-1", "3.00", round_id="r-a-next-1")["status"] == "ok"
    # Hooks of older transactions arrive late and in any order, some twice.
    for stale in [states[0], states[1], states[0], states[2], states[1]]:
        tournament_board.mirror(tour.id, tour.ends_at, [stale])
    after = redis_board(tour, a.user_id)
    assert after == before
    assert after.top == pg_board(tour).top == [(a.user_id, 10_00), (b.user_id, 9_00)]
    assert after.me == (1, 10_00)


def test_board_versions_only_grow(client, factory):
    """Every kind of score update (bet, win, refund, rollback) moves the version forward:
    the property that lets a late mirror write lose against a newer one."""
    make_tournament(factory, scoring="net")
    a = open_table(client, factory)
    seen = []

    def version():
        db.session.expire_all()
        row = db.session.scalar(sa.select(P).where(P.user_id == a.user_id))
        seen.append(entry(row).version)

    bet(a, "x1", "2.00")
    version()
    assert a.win("x1-win", "3.00", round_id="r-x1")["status"] == "ok"
    version()
    bet(a, "x2", "1.00")
    version()
    assert a.refund("x2-back", "x2")["status"] == "ok"
    version()
    bet(a, "x3", "1.00")
    version()
    assert a.rollback("x3-back", "x3")["status"] == "ok"
    version()
    assert a.win("x1-win2", "0.01", round_id="r-x1")["status"] == "ok"
    version()
    assert seen == sorted(set(seen)), seen


def test_concurrent_mirror_writes_keep_the_newest_entry(app, factory, players):
    tour = make_tournament(factory)
    now = utcnow()
    versions = [
        Entry(1000 + players[0].id, players[0].id, n * 10, now + timedelta(seconds=n), n, 0, n * 10)
        for n in range(1, 41)
    ]
    rng = random.Random(3)
    workers = []
    for _ in range(6):
        mine = versions[:]
        rng.shuffle(mine)
        workers.append(
            threading.Thread(
                target=lambda items=mine: [
                    tournament_board._upsert(
                        app.extensions["redis"], tour.id, 2_000_000_000, [item]
                    )
                    for item in items
                ]
            )
        )
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    r = app.extensions["redis"]
    assert r.zrange(f"jx:tboard:{{{tour.id}}}", 0, -1, withscores=True) == [
        (versions[-1].member.encode(), 400.0)
    ]


def test_the_board_is_rebuilt_after_a_flush(app, factory, players):
    tour = make_tournament(factory)
    insert_participants(tour, players, random.Random(1))
    first = redis_board(tour, players[3].id, 5)
    app.extensions["redis"].flushdb()
    assert redis_board(tour, players[3].id, 5) == first
    assert app.extensions["redis"].zscore(f"jx:tboard:{{{tour.id}}}", "!ready") == float("-inf")
    # A lost per-player key (the next write adds the player a second time) is not served.
    r = app.extensions["redis"]
    top_user = first.top[0][0]
    r.delete(f"jx:tboard:{{{tour.id}}}:u:{top_user}")
    db.session.execute(
        sa.update(P)
        .where(P.tournament_id == tour.id, P.user_id == top_user)
        .values(bets=P.bets + 1)
    )
    row = db.session.scalar(sa.select(P).where(P.tournament_id == tour.id, P.user_id == top_user))
    db.session.refresh(row)
    tournament_board.mirror(tour.id, tour.ends_at, [entry(row)])
    assert redis_board(tour, players[3].id, 5) == first


def test_while_another_process_rebuilds_postgres_answers(app, factory, players, client, token_for):
    tour = make_tournament(factory)
    insert_participants(tour, players, random.Random(2))
    app.extensions["redis"].set(f"jx:tboard:{{{tour.id}}}:lock", "someone-else", px=5_000)
    assert tournament_board.read(tour.id, tour.ends_at, players[0].id, 10) is None
    live = tournaments.live_board(tour, players[0].id, 10)
    assert live.source == "postgres"
    assert live == pg_board(tour, players[0].id, 10)


def test_redis_down_answers_from_postgres_and_play_goes_on(
    app, client, factory, token_for, monkeypatch
):
    tour = make_tournament(factory)
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    bet(a, "a1", "3.00")
    bet(b, "b1", "1.00")
    assert redis_board(tour).top == [(a.user_id, 3_00), (b.user_id, 1_00)]
    dead = redis_lib.Redis(port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(tournament_board, "redis_store", type("Down", (), {"client": lambda: dead}))
    bet(b, "b2", "4.00")  # the mirror fails after commit; the bet stands
    me = db.session.get(User, a.user_id)
    r = client.get(f"/api/tournaments/{tour.id}/leaderboard?limit=1", headers=token_for(me))
    assert r.status_code == 200, r.get_json()
    data = r.get_json()["data"]
    assert [e["score"] for e in data["top"]] == ["5.00"]
    assert (data["me"]["rank"], data["me"]["score"]) == (2, "3.00")
    monkeypatch.undo()
    # Redis back, still holding b's 1.00: the process remembered the failed write, so its next
    # read rebuilds from the truth instead of serving the stale board.
    assert redis_board(tour).top == pg_board(tour).top == [(b.user_id, 5_00), (a.user_id, 3_00)]


def test_a_failed_mirror_write_makes_the_next_read_rebuild(app, client, factory, monkeypatch):
    tour = make_tournament(factory)
    a = open_table(client, factory)
    bet(a, "a1", "1.00")
    redis_board(tour)

    def broken(*args, **kwargs):
        raise redis_lib.exceptions.ConnectionError("gone")

    monkeypatch.setattr(tournament_board, "_upsert", broken)
    bet(a, "a2", "2.00")
    monkeypatch.undo()
    assert app.extensions["redis"].zscore(f"jx:tboard:{{{tour.id}}}", "!ready") is None
    assert redis_board(tour).top == pg_board(tour).top == [(a.user_id, 3_00)]


def test_my_position_outside_the_top_n(client, factory, players, token_for):
    tour = make_tournament(factory)
    t0 = utcnow() - timedelta(minutes=1)
    for i, user in enumerate(players):
        db.session.add(
            P(tournament_id=tour.id, user_id=user.id, score=(i + 1) * 100, score_at=t0, bets=1)
        )
    db.session.flush()
    me = players[2]  # third lowest of 14: rank 12
    assert redis_board(tour, me.id, 3).me == (12, 300) == pg_board(tour, me.id, 3).me
    r = client.get(f"/api/tournaments/{tour.id}/leaderboard?limit=3", headers=token_for(me))
    data = r.get_json()["data"]
    assert [e["score"] for e in data["top"]] == ["14.00", "13.00", "12.00"]
    assert (data["me"]["rank"], data["me"]["score"], data["me"]["bets"]) == (12, "3.00", 1)
    assert data["me"]["player"] == me.username[:2] + "***"
    last = client.get(
        f"/api/tournaments/{tour.id}/leaderboard?limit=3", headers=token_for(players[0])
    ).get_json()["data"]
    assert (last["me"]["rank"], last["me"]["score"]) == (14, "1.00")
    stranger = client.get(
        f"/api/tournaments/{tour.id}/leaderboard?limit=3", headers=token_for(factory.player())
    ).get_json()["data"]
    assert stranger["me"] is None
    assert len(stranger["top"]) == 3


def test_scores_beyond_double_precision_are_ranked_by_postgres(app, factory, players):
    tour = make_tournament(factory)
    t0 = utcnow() - timedelta(minutes=1)
    a, b = players[:2]
    # 2**53 + 1 is not a double: it would round to 2**53 and tie with a's score.
    db.session.add(P(tournament_id=tour.id, user_id=a.id, score=MAX_EXACT_SCORE, score_at=t0))
    db.session.add(
        P(tournament_id=tour.id, user_id=b.id, score=MAX_EXACT_SCORE + 1, score_at=t0, bets=1)
    )
    db.session.flush()
    assert tournament_board.read(tour.id, tour.ends_at, a.id, 10) is None
    assert app.extensions["redis"].zscore(f"jx:tboard:{{{tour.id}}}", "!pg") == float("-inf")
    live = tournaments.live_board(tour, a.id, 10)
    assert live.source == "postgres"
    assert live.top == [(b.id, MAX_EXACT_SCORE + 1), (a.id, MAX_EXACT_SCORE)]
    assert live.me == (2, MAX_EXACT_SCORE)


def test_a_live_score_passing_the_bound_switches_the_board_to_postgres(app, factory, players):
    tour = make_tournament(factory)
    row = P(tournament_id=tour.id, user_id=players[0].id, score=5, score_at=utcnow(), bets=1)
    db.session.add(row)
    db.session.flush()
    redis_board(tour)
    row.score, row.bets = MAX_EXACT_SCORE + 3, 2
    db.session.flush()
    tournament_board.mirror(tour.id, tour.ends_at, [entry(row)])
    assert tournament_board.read(tour.id, tour.ends_at, None, 10) is None
    assert tournaments.live_board(tour, None, 10).top == [(players[0].id, MAX_EXACT_SCORE + 3)]


def test_settlement_ranks_from_postgres_and_drops_the_board(app, client, factory):
    tour = make_tournament(factory)
    a = open_table(client, factory)
    b = second_player_on(a, client, factory)
    bet(a, "a1", "1.00")
    bet(b, "b1", "2.00")
    redis_board(tour)
    # Redis lies (say a stale copy): settlement must not care.
    app.extensions["redis"].zadd(f"jx:tboard:{{{tour.id}}}", {_member_of(app, tour, a): 10**9})
    end_now(tour.id)
    tournaments.settle(tour.id)
    db.session.expire_all()
    ranks = dict(
        db.session.execute(sa.select(P.user_id, P.rank).where(P.tournament_id == tour.id)).all()
    )
    assert ranks == {b.user_id: 1, a.user_id: 2}
    assert keys_of(app, tour.id) <= {
        f"jx:tboard:{{{tour.id}}}:u:{a.user_id}",
        f"jx:tboard:{{{tour.id}}}:u:{b.user_id}",
    }
    settled = tournaments.board_json(db.session.get(type(tour), tour.id), a.user_id, 10)
    assert settled["state"] == "settled"
    assert [e["prize"] for e in settled["top"]] == ["50.00", "20.00"]


def _member_of(app, tour, table) -> str:
    raw = app.extensions["redis"].get(f"jx:tboard:{{{tour.id}}}:u:{table.user_id}")
    return tournament_board.Stored.parse(raw).member


def test_keys_expire_a_day_after_the_end(app, factory, players):
    tour = make_tournament(factory)
    insert_participants(tour, players, random.Random(4))
    redis_board(tour)
    r = app.extensions["redis"]
    deadline = int((tour.ends_at + timedelta(days=1)).timestamp())
    for key in keys_of(app, tour.id):
        assert r.expiretime(key) == deadline, key


def test_the_job_repairs_a_board_that_missed_writes(app, client, factory, players):
    tour = make_tournament(factory)
    rows = insert_participants(tour, players, random.Random(5))
    redis_board(tour)
    # Another process lost these writes while Redis was unreachable (and died).
    for row in rows[:3]:
        row.bets += 1
        row.score = 777
        row.score_at = utcnow()
    db.session.flush()
    assert redis_board(tour, None, 100).top != pg_board(tour, None, 100).top
    from app.prizes.jobs import refresh_tournament_boards

    assert refresh_tournament_boards() >= 1
    assert_same_boards(tour, [u.id for u in players])


def test_the_job_drops_a_board_with_an_orphan_member(app, factory, players):
    tour = make_tournament(factory)
    insert_participants(tour, players, random.Random(6))
    redis_board(tour)
    app.extensions["redis"].zadd(f"jx:tboard:{{{tour.id}}}", {"0000:999999": 5})
    from app.prizes.jobs import refresh_tournament_boards

    refresh_tournament_boards()
    assert app.extensions["redis"].exists(f"jx:tboard:{{{tour.id}}}") == 0
    assert_same_boards(tour, [u.id for u in players])


_EPOCH_2026 = 1_767_225_600_000_000  # µs


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, -1, 250, MAX_EXACT_SCORE, -MAX_EXACT_SCORE, MAX_EXACT_SCORE - 1])
            | st.integers(-MAX_EXACT_SCORE, MAX_EXACT_SCORE),
            st.sampled_from([0, 1, 2]) | st.integers(0, 10**12),
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from([1, 2, 2**31, 2**63 - 30]),
)
def test_real_redis_orders_encoded_entries_exactly_like_the_postgres_order_by(app, items, first):
    """The encoding against the real server, extremes included: score desc, score_at asc,
    participant id asc (``tournament_board.ordering()``)."""
    r = app.extensions["redis"]
    entries = [
        Entry(
            first + i,
            first + i,
            score,
            datetime.fromtimestamp(0, UTC) + timedelta(microseconds=_EPOCH_2026 + micros),
            0,
            0,
            0,
        )
        for i, (score, micros) in enumerate(items)
    ]
    r.delete("jx:test:order")
    r.zadd("jx:test:order", {e.member: e.score for e in entries})
    got = [
        (tournament_board.user_of(m), int(s))
        for m, s in r.zrevrange("jx:test:order", 0, -1, withscores=True)
    ]
    want = sorted(entries, key=lambda e: (-e.score, e.score_at, e.participant_id))
    assert got == [(e.user_id, e.score) for e in want]
    for rank, e in enumerate(want):
        assert r.zrevrank("jx:test:order", e.member) == rank


def test_an_opt_in_join_is_on_the_redis_board_with_score_zero(app, factory, players, token_for):
    tour = make_tournament(factory, entry="opt_in")
    redis_board(tour)  # built (empty) before anyone joins
    client = app.test_client()
    for user in players[:3]:
        r = client.post(f"/api/tournaments/{tour.id}/join", headers=token_for(user))
        assert r.status_code == 200, r.get_json()
    expected = [(u.id, 0) for u in players[:3]]  # joined in this order: earlier is better
    assert redis_board(tour).top == expected == pg_board(tour).top
    assert redis_board(tour, players[2].id).me == (3, 0)


def test_concurrent_play_reads_and_flushes_end_on_the_postgres_board(
    app, requires_postgres, committed_db, client, factory
):
    """Real commits on separate connections: players bet, win, get refunds and replay while
    readers rebuild and the board is deleted under them; at rest Redis equals PostgreSQL."""
    tour = make_tournament(factory, scoring="net")
    tables = [open_table(client, factory, cash=1_000_00) for _ in range(5)]
    tid = tour.id  # plain id for the threads (the ORM object expires at each commit)
    stop = threading.Event()
    failures: list[str] = []

    def play(table, seed: int) -> None:
        rng = random.Random(seed)
        mine = dataclasses.replace(table, client=app.test_client())
        try:
            for i in range(10):
                stake = rng.choice(["0.50", "1.00", "2.00"])
                answers = [mine.bet(f"b{i}", stake, round_id=f"r{i}")]
                roll = rng.random()
                if roll < 0.5:
                    answers.append(
                        mine.win(f"w{i}", rng.choice(["1.50", "3.00"]), round_id=f"r{i}")
                    )
                elif roll < 0.7:
                    answers.append(mine.refund(f"x{i}", f"b{i}"))
                if rng.random() < 0.3:
                    answers.append(mine.bet(f"b{i}", stake, round_id=f"r{i}"))  # provider retry
                failures.extend(str(a) for a in answers if a["status"] != "ok")
        except Exception as exc:
            failures.append(repr(exc))

    def read() -> None:
        with app.app_context():
            live = tournaments.get(tid)
            while not stop.is_set():
                try:
                    tournaments.live_board(live, tables[0].user_id, 3)
                except Exception as exc:
                    failures.append(repr(exc))
                db.session.rollback()
            db.session.remove()

    def flush() -> None:
        r = app.extensions["redis"]
        for _ in range(20):
            r.delete(f"jx:tboard:{{{tid}}}")
            stop.wait(0.05)

    helpers = [threading.Thread(target=read), threading.Thread(target=read)]
    helpers.append(threading.Thread(target=flush))
    for h in helpers:
        h.start()
    players = [threading.Thread(target=play, args=(t, n)) for n, t in enumerate(tables)]
    for p in players:
        p.start()
    for p in players:
        p.join()
    stop.set()
    for h in helpers:
        h.join()
    assert failures == []
    db.session.remove()
    tour = tournaments.get(tid)
    assert_same_boards(tour, [t.user_id for t in tables], limits=(1, 5))
    assert len(redis_board(tour).top) == 5
