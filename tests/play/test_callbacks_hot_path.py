"""The callback hot path after its round trips were cut: every check that was folded into
fewer statements must still refuse exactly what it refused before."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.compliance import responsible_gaming as rg
from app.compliance.models import RgSession
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.play.callbacks import actions
from app.play.models import GameRound, ProviderCallback, ProviderTransaction
from app.wallet.models import LedgerEntry, LedgerTransaction
from tests.moneykit import Table, fund, make_game, open_table, reconcile_clean


@pytest.fixture
def table(client, factory) -> Table:
    return open_table(client, factory)


def _user(user_id: int) -> User:
    return db.session.get(User, user_id)


def test_callback_answers_carry_no_rate_limit_headers_but_the_provider_limit_still_bites(
    app, table, monkeypatch
):
    body = b'{"action":"balance","session_token":"%s"}' % table.token.encode()
    ok = table.raw(body)
    assert ok.status_code == 200
    assert ok.get_json()["status"] == "ok"
    assert not [h for h, _ in ok.headers if h.lower().startswith("x-ratelimit")]
    monkeypatch.setitem(app.config, "RATE_LIMIT_CALLBACK", "2 per minute")
    statuses = [table.raw(body) for _ in range(4)]
    codes = [a.status_code for a in statuses]
    assert codes[-1] == 429
    assert codes == sorted(codes)  # some (at most two) answered, then refused
    assert codes.count(200) <= 2
    assert statuses[-1].headers.get("Retry-After")


def test_a_bet_extends_the_play_session_at_most_once_per_touch_interval(table):
    """RG_SESSION_TOUCH_SECONDS (15): a spinning player costs one UPDATE per interval."""
    start = utcnow() + timedelta(seconds=20)  # the launch opened the session just now

    def last_seen():
        db.session.expire_all()
        return db.session.scalar(
            sa.select(sa.func.max(RgSession.last_seen_at)).where(RgSession.user_id == table.user_id)
        )

    with freeze_time(start):
        assert table.bet("t1", "1.00", round_id="t1")["status"] == "ok"
    assert last_seen() == start
    with freeze_time(start + timedelta(seconds=10)):
        assert table.bet("t2", "1.00", round_id="t2")["status"] == "ok"
    assert last_seen() == start  # within the interval: not written again
    with freeze_time(start + timedelta(seconds=16)):
        assert table.bet("t3", "1.00", round_id="t3")["status"] == "ok"
    assert last_seen() == start + timedelta(seconds=16)


def test_every_movement_writes_balanced_entries_with_a_null_wallet_on_the_house_leg(table):
    assert table.bet("b1", "2.50")["status"] == "ok"
    assert table.win("w1", "4.00")["status"] == "ok"
    for key, wallet_leg in (("b1", -2_50), ("w1", 4_00)):
        tx_id = db.session.scalar(
            sa.select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == key)
        )
        legs = db.session.execute(
            sa.select(LedgerEntry.account, LedgerEntry.wallet_id, LedgerEntry.amount)
            .where(LedgerEntry.transaction_id == tx_id)
            .order_by(LedgerEntry.id)
        ).all()
        assert [(a, w is None, amount) for a, w, amount in legs] == [
            ("cash", False, wallet_leg),
            ("house:games", True, -wallet_leg),
        ]
    reconcile_clean()


def test_bets_extend_one_play_session_instead_of_opening_one_per_bet(table):
    start = utcnow()
    with freeze_time(start + timedelta(minutes=1)):
        assert table.bet("b1", "1.00")["status"] == "ok"
    with freeze_time(start + timedelta(minutes=5)):
        assert table.bet("b2", "1.00", round_id="r2")["status"] == "ok"
    sessions = db.session.scalars(
        sa.select(RgSession).where(RgSession.user_id == table.user_id)
    ).all()
    assert len(sessions) == 1
    assert sessions[0].last_seen_at >= start + timedelta(minutes=5)


def test_a_bet_after_the_idle_gap_opens_a_new_play_session(table):
    start = utcnow()
    with freeze_time(start + timedelta(hours=3)):
        assert table.bet("b1", "1.00")["status"] == "ok"
    count = db.session.scalar(
        sa.select(sa.func.count()).select_from(RgSession).where(RgSession.user_id == table.user_id)
    )
    assert count == 2  # the launch's session went idle; the late bet started another


def test_used_up_session_time_limit_refuses_the_bet_callback(table):
    player = _user(table.user_id)
    rg.set_limit(player, limit_type="session_time", period="daily", value=30)
    start = utcnow()
    with freeze_time(start + timedelta(minutes=20)):
        assert table.bet("b1", "1.00")["status"] == "ok"
    with freeze_time(start + timedelta(minutes=40)):
        assert table.bet("b2", "1.00", round_id="r2")["status"] == "ok"  # 40 min now used
        refused = table.bet("b3", "1.00", round_id="r3")
    assert refused["code"] == "LIMIT_EXCEEDED"
    reconcile_clean()


def test_a_limit_in_another_currency_does_not_bind_this_bet(table):
    player = _user(table.user_id)
    rg.set_limit(player, limit_type="wager", period="daily", value=1_00, currency="USD")
    assert table.bet("b1", "5.00")["status"] == "ok"
    rg.set_limit(player, limit_type="wager", period="daily", value=6_00, currency="EUR")
    assert table.bet("b2", "1.01", round_id="r2")["code"] == "LIMIT_EXCEEDED"
    assert table.bet("b3", "1.00", round_id="r3")["status"] == "ok"


def test_time_out_blocks_bets_at_once_and_not_after_it_ends(app, client, factory, monkeypatch):
    monkeypatch.setitem(app.config, "GAME_SESSION_SECONDS", 3 * 24 * 3600)
    fresh = open_table(client, factory, cash=10_00)
    player = _user(fresh.user_id)
    rg.time_out(player, "24_hours")
    assert fresh.bet("b1", "1.00")["code"] == "PLAYER_BLOCKED"
    with freeze_time(utcnow() + timedelta(days=2)):
        assert fresh.bet("b2", "1.00", round_id="r2")["status"] == "ok"


def test_a_status_change_blocks_the_very_next_bet(table):
    assert table.bet("b1", "1.00")["status"] == "ok"
    with atomic():
        db.session.execute(
            sa.update(User).where(User.id == table.user_id).values(status="suspended")
        )
    assert table.bet("b2", "1.00", round_id="r2")["code"] == "PLAYER_BLOCKED"


def test_win_refusals_still_name_the_reason(client, factory, table):
    assert table.bet("b1", "1.00")["status"] == "ok"
    other = make_game(table.provider_code, "other-game")
    assert table.win("w1", "1.00", game_id=other.external_id)["code"] == "ROUND_NOT_FOUND"
    assert table.win("w2", "1.00", round_id="nope")["code"] == "ROUND_NOT_FOUND"
    with atomic():
        db.session.execute(
            sa.update(GameRound)
            .where(GameRound.external_round_id == "r1")
            .values(status="cancelled")
        )
    assert table.win("w3", "1.00")["code"] == "ROUND_CLOSED"
    stranger = open_table(client, factory)
    assert stranger.bet("sb1", "1.00", round_id="theirs")["status"] == "ok"
    stolen = table.win("w4", "1.00", round_id="theirs")
    assert stolen["code"] in ("ROUND_NOT_FOUND", "INVALID_SESSION")
    total_win = db.session.scalar(
        sa.select(GameRound.total_win).where(GameRound.external_round_id == "theirs")
    )
    assert total_win == 0
    reconcile_clean()


def test_a_taken_key_under_the_lock_replays_and_moves_nothing_more(factory):
    from app.wallet import ledger as wallet
    from tests.moneykit import fund

    player = factory.player()
    fund(player.id, 10_00)
    with atomic():
        first = wallet.post(
            player.id,
            "EUR",
            "bet",
            cash_delta=-3_00,
            source="t",
            idempotency_key="k",
            locked=wallet.lock(player.id, "EUR"),
        )
        again = wallet.post(
            player.id,
            "EUR",
            "bet",
            cash_delta=-3_00,
            source="t",
            idempotency_key="k",
            locked=wallet.lock(player.id, "EUR"),
        )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.transaction_id == first.transaction_id
    w = wallet.wallet_for(player.id, "EUR")
    assert w.balance == 7_00
    legs = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.transaction_id == first.transaction_id)
    )
    assert legs == 2
    reconcile_clean()


def _statements_of(app, call) -> list[str]:
    """The callback's own statements (not the tests' savepoints, the provider and game that
    production caches per process and tests re-read, or the after-commit loyalty and
    tournament work)."""
    seen: list[str] = []

    def count(_conn, _cursor, sql, *_args):
        seen.append(sql)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert call()["status"] == "ok"
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    skip = (
        "SAVEPOINT",
        "FROM game_providers",
        "FROM games",
        "loyalty_",
        "FROM tournaments JOIN provider_transactions",
    )
    return [s for s in seen if not any(x in s for x in skip)]


@pytest.mark.usefixtures("requires_postgres")
def test_the_round_trip_budget_of_a_plain_bet_and_win(app, table):
    """A player with no special state (no bonus, pool or tournament; the play session fresh).
    Bet: session read + claim + lock; posting + round upsert + log row. Win: session read;
    claim + lock + round update (its split needs the round's stakes); posting + log row."""
    assert table.bet("warm", "1.00", round_id="warm")["status"] == "ok"
    bet = _statements_of(app, lambda: table.bet("b1", "1.00"))
    assert len(bet) <= 2, [s[:60] for s in bet]
    assert sum("FOR UPDATE" in s for s in bet) == 1
    win = _statements_of(app, lambda: table.win("w1", "2.00"))
    assert len(win) <= 3, [s[:60] for s in win]
    assert not [s for s in bet + win if "tournaments" in s]  # scored after commit
    # One log row per callback, written with the money.
    for tx in ("b1", "w1"):
        logged = db.session.scalars(
            sa.select(ProviderCallback).where(ProviderCallback.transaction_id == tx)
        ).all()
        assert [(c.verdict, c.balance_after is not None) for c in logged] == [("ok", True)]


def test_a_bet_refused_by_its_round_leaves_no_money_and_one_refusal_in_the_log(table):
    """The round, the posting and the log row ride in one statement: a round that refuses the
    bet (closed, another player's) rolls the posting and that log row back."""
    assert table.bet("b1", "1.00", round_id="r9")["status"] == "ok"
    assert table.end_round("r9")["status"] == "ok"
    before = table.balances()
    refused = table.bet("b2", "1.00", round_id="r9")
    assert refused["status"] == "error"
    assert refused["code"] == "ROUND_CLOSED"
    assert table.balances() == before
    logged = db.session.scalars(
        sa.select(ProviderCallback).where(ProviderCallback.transaction_id == "b2")
    ).all()
    assert [c.verdict for c in logged] == ["ROUND_CLOSED"]
    reconcile_clean()


def _claims(tx: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count(ProviderTransaction.id)).where(
            ProviderTransaction.external_id == tx
        )
    )


@pytest.mark.usefixtures("requires_postgres")
def test_a_bet_refused_after_the_session_read_claimed_it_leaves_no_claim(table):
    """The session read claims a first bet and locks the wallet before the bet checks run in
    Python: a refusal (no funds, a blocked player, a limit) rolls the claim back, so the same
    transaction id is checked anew when the provider sends it again, and applied once."""
    cash, bonus = table.balances()
    assert table.bet("big", "500.00")["code"] == "INSUFFICIENT_FUNDS"
    assert _claims("big") == 0
    player = _user(table.user_id)
    with atomic():
        player.status = "suspended"
    assert table.bet("s1", "1.00", round_id="s1")["code"] == "PLAYER_BLOCKED"
    assert _claims("s1") == 0
    assert table.balances() == (cash, bonus)
    with atomic():
        player.status = "active"
    fund(table.user_id, 500_00)
    for tx, amount in (("big", "500.00"), ("s1", "1.00")):
        assert table.bet(tx, amount, round_id=tx)["status"] == "ok"
        assert table.bet(tx, amount, round_id=tx)["status"] == "ok"  # a replay
        assert _claims(tx) == 1
    assert table.balances() == (cash + 500_00 - 501_00, bonus)
    rg.set_limit(player, limit_type="wager", period="daily", value=50, currency="EUR")
    assert table.bet("l1", "1.00", round_id="l1")["code"] == "LIMIT_EXCEEDED"
    assert _claims("l1") == 0
    reconcile_clean()


@pytest.mark.usefixtures("requires_postgres")
def test_the_claim_made_with_the_session_carries_the_handlers_fingerprint(app, table):
    """Quotes, backslashes and non-ASCII in the round id go into the fingerprint the session
    read computes in SQL; the handler applies the bet only when it equals its own."""
    round_id = 'r"\\é😀'
    statements = _statements_of(app, lambda: table.bet("f1", "1.00", round_id=round_id))
    assert len(statements) <= 2
    stored = db.session.scalar(
        sa.select(ProviderTransaction.fingerprint).where(ProviderTransaction.external_id == "f1")
    )
    assert stored == actions._fingerprint(
        "bet", table.user_id, round_id, table.game_external, 1_00, table.currency
    )
    assert table.bet("f1", "1.00", round_id=round_id)["status"] == "ok"  # its replay
    assert _claims("f1") == 1
    reconcile_clean()
