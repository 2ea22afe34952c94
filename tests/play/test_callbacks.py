"""Provider callbacks: what a flaky, retrying or hostile provider must never achieve."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.play import games
from app.play.models import GameRound, GameSession, ProviderCallback, ProviderTransaction
from app.wallet.models import LedgerTransaction
from tests.moneykit import Table, open_table, reconcile_clean


@pytest.fixture
def table(client, factory) -> Table:
    return open_table(client, factory)


def test_authenticate_answers_the_players_balance(table):
    answer = table.call("authenticate")
    assert answer["status"] == "ok"
    assert answer["balance"] == "100.00"
    assert answer["bonus_balance"] == "0.00"
    assert answer["currency"] == "EUR"
    assert answer["player_id"] == str(table.user_id)


def test_bet_then_win_moves_money_and_answers_our_transaction_id(table):
    bet = table.bet("t1", "2.50")
    assert bet["status"] == "ok"
    assert bet["balance"] == "97.50"
    assert bet["transaction_id"].isdigit()
    win = table.win("t2", 10)
    assert win["balance"] == "107.50"
    assert table.balances() == (107_50, 0)
    rnd = db.session.scalar(sa.select(GameRound).where(GameRound.user_id == table.user_id))
    assert (rnd.total_bet, rnd.total_win, rnd.status) == (2_50, 10_00, "open")
    reconcile_clean()


def test_replayed_bet_answers_the_first_answer_and_moves_no_money(table):
    first = table.bet("t1", "5.00")
    table.win("t2", "1.00")
    again = table.bet("t1", "5.00")
    assert again == first
    assert table.balances() == (96_00, 0)
    assert table.ledger_count() == 3  # deposit, bet, win
    reconcile_clean()


@pytest.mark.parametrize(
    "change",
    [{"amount": "5.01"}, {"round_id": "other"}, {"currency": "USD"}],
)
def test_same_transaction_id_with_different_content_is_a_duplicate_mismatch(table, change):
    table.bet("t1", "5.00")
    fields = {"amount": "5.00", "round_id": "r1", **change}
    answer = table.call("bet", transaction_id="t1", **fields)
    assert answer["status"] == "error"
    assert answer["code"] in {"DUPLICATE_MISMATCH", "VALIDATION_ERROR"}
    assert table.balances() == (95_00, 0)


def test_amount_change_on_retry_is_duplicate_mismatch(table):
    table.bet("t1", "5.00")
    assert table.bet("t1", "6.00")["code"] == "DUPLICATE_MISMATCH"
    assert table.win("t1", "5.00")["code"] == "DUPLICATE_MISMATCH"


def test_bet_over_funds_is_refused_with_nothing_written(table):
    answer = table.bet("t1", "100.01")
    assert answer["status"] == "error"
    assert answer["code"] == "INSUFFICIENT_FUNDS"
    assert answer["balance"] == "100.00"
    assert table.balances() == (100_00, 0)
    assert table.ledger_count() == 1
    assert db.session.scalar(sa.select(sa.func.count(ProviderTransaction.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(GameRound.id))) == 0


def test_bet_takes_cash_first_then_bonus_and_wins_return_in_the_same_proportion(client, factory):
    t = open_table(client, factory, cash=30_00, bonus=100_00)
    assert t.bet("b1", "40.00")["balance"] == "0.00"
    assert t.balances() == (0, 90_00)  # 30 cash + 10 bonus
    t.win("w1", "80.00")
    # stakes 30 cash : 10 bonus -> win 60 cash : 20 bonus
    assert t.balances() == (60_00, 110_00)
    reconcile_clean()


def test_bonus_first_order_is_configurable(client, factory, app):
    t = open_table(client, factory, cash=30_00, bonus=100_00)
    app.config["WALLET_BET_ORDER"] = "bonus_first"
    try:
        t.bet("b1", "40.00")
    finally:
        app.config.pop("WALLET_BET_ORDER")
    assert t.balances() == (30_00, 60_00)


@pytest.mark.parametrize(
    "amount", ["0.001", "-5", -5, "1e309", 1e308, "abc", True, None, "", "NaN"]
)
def test_malformed_amounts_are_refused_with_nothing_written(table, amount):
    answer = table.call("bet", transaction_id="t1", round_id="r1", amount=amount)
    if amount is None:
        answer = table.raw(
            json.dumps(
                {
                    "action": "bet",
                    "session_token": table.token,
                    "game_id": table.game_external,
                    "currency": "EUR",
                    "transaction_id": "t1",
                    "round_id": "r1",
                    "amount": None,
                }
            ).encode()
        ).get_json()
    assert answer["status"] == "error"
    assert answer["code"] == "VALIDATION_ERROR"
    assert table.balances() == (100_00, 0)
    assert db.session.scalar(sa.select(sa.func.count(ProviderTransaction.id))) == 0


def test_literal_1e309_in_the_body_is_refused(table):
    body = (
        f'{{"action":"bet","session_token":"{table.token}","game_id":"{table.game_external}","currency":"EUR",'
        '"transaction_id":"t1","round_id":"r1","amount":1e309}'
    ).encode()
    answer = table.raw(body).get_json()
    assert answer["code"] == "VALIDATION_ERROR"
    assert table.balances() == (100_00, 0)


@pytest.mark.parametrize("currency", ["USD", "XXX", "", 5])
def test_wrong_or_unknown_currency_is_refused(table, currency):
    answer = table.bet("t1", "1.00", currency=currency)
    assert answer["status"] == "error"
    assert answer["code"] == "VALIDATION_ERROR"
    assert table.balances() == (100_00, 0)


def test_forged_and_altered_signatures_are_refused_and_logged(table):
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
    good = table.sign(body)
    altered = body.replace(b'"1.00"', b'"9.00"')
    for response in (
        table.raw(body, signature="0" * 64),
        table.raw(body, signature=""),
        table.raw(altered, signature=good),
        table.raw(body, signature=good[:-1]),
        table.client.post(
            f"/api/provider-callback/{table.provider_code}",
            data=body,
            headers={"Content-Type": "application/json"},
        ),
    ):
        assert response.status_code == 200
        assert response.get_json()["code"] == "INVALID_SIGNATURE"
    assert table.balances() == (100_00, 0)
    logged = db.session.scalars(
        sa.select(ProviderCallback).where(ProviderCallback.verdict == "INVALID_SIGNATURE")
    ).all()
    assert len(logged) == 5
    assert not any(row.signature_valid for row in logged)


def test_signature_made_with_another_providers_secret_is_refused(client, factory):
    a = open_table(client, factory)
    b = open_table(client, factory, secret="another-providers-secret-xyz")
    body = json.dumps({"action": "balance", "session_token": a.token}).encode()
    response = a.raw(body, signature=b.sign(body))
    assert response.get_json()["code"] == "INVALID_SIGNATURE"


def test_unknown_provider_is_a_404(client):
    response = client.post("/api/provider-callback/nobody", data=b"{}")
    assert response.status_code == 404
    assert response.get_json()["status"] == "error"


def test_session_of_another_provider_is_invalid(client, factory):
    a = open_table(client, factory)
    b = open_table(client, factory)
    a.token = b.token
    assert a.call("balance")["code"] == "INVALID_SESSION"


def test_unknown_and_expired_sessions_cannot_bet(table):
    token = table.token
    table.token = "not-a-token"
    assert table.bet("t1", 1)["code"] == "INVALID_SESSION"
    table.token = token
    with atomic():
        db.session.execute(
            sa.update(GameSession)
            .where(GameSession.token == token)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert table.bet("t1", 1)["code"] == "INVALID_SESSION"
    assert table.balances() == (100_00, 0)


def test_settlement_needs_no_live_session_but_must_match_player_round_and_currency(client, factory):
    t = open_table(client, factory)
    t.bet("b1", "10.00")
    with atomic():
        db.session.execute(
            sa.update(GameSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert t.win("w1", "3.00")["balance"] == "93.00"
    assert t.win("w2", "3.00", round_id="nope")["code"] == "ROUND_NOT_FOUND"
    assert t.win("w3", "3.00", currency="USD")["code"] == "VALIDATION_ERROR"
    other = open_table(client, factory)
    other.provider_code, other.game_external = t.provider_code, t.game_external
    # Another player's session of the same provider cannot settle this player's round.
    with atomic():
        db.session.execute(
            sa.update(GameSession)
            .where(GameSession.user_id == other.user_id)
            .values(
                provider_id=db.session.scalar(
                    sa.select(GameSession.provider_id).where(GameSession.token == t.token)
                )
            )
        )
    assert other.win("w4", "3.00")["code"] == "ROUND_NOT_FOUND"
    assert other.refund("x1", "b1")["code"] == "INVALID_SESSION"
    assert t.balances() == (93_00, 0)
    reconcile_clean()


def test_refund_returns_the_stake_once_whatever_ids_arrive(table):
    table.bet("b1", "10.00")
    assert table.refund("f1", "b1")["balance"] == "100.00"
    assert table.refund("f1", "b1")["balance"] == "100.00"  # replay
    assert table.refund("f2", "b1")["status"] == "ok"  # another id, same bet: no money
    assert table.rollback("f3", "b1")["status"] == "ok"
    assert table.balances() == (100_00, 0)
    reconcile_clean()


def test_refund_returns_cash_and_bonus_exactly_as_staked(client, factory):
    t = open_table(client, factory, cash=5_00, bonus=20_00)
    t.bet("b1", "8.00")
    assert t.balances() == (0, 17_00)
    t.refund("f1", "b1")
    assert t.balances() == (5_00, 20_00)


def test_refund_amount_must_match_the_bet(table):
    table.bet("b1", "10.00")
    assert table.refund("f1", "b1", amount="9.00")["code"] == "VALIDATION_ERROR"
    assert table.refund("f1", "b1", amount="10.00")["balance"] == "100.00"


def test_rollback_of_unknown_bet_is_recorded_and_the_late_bet_refused(table):
    answer = table.rollback("rb1", "ghost")
    assert answer["status"] == "ok"
    assert answer["balance"] == "100.00"
    late = table.bet("ghost", "5.00")
    assert late["status"] == "error"
    assert late["code"] == "DUPLICATE_MISMATCH"
    assert table.balances() == (100_00, 0)
    # The rollback itself replays to its first answer.
    assert table.rollback("rb1", "ghost") == answer


def test_rollback_of_a_win_takes_it_back(table):
    table.bet("b1", "10.00")
    table.win("w1", "30.00")
    assert table.rollback("x1", "w1")["balance"] == "90.00"
    rnd = db.session.scalar(sa.select(GameRound))
    assert rnd.total_win == 0
    reconcile_clean()


def test_rollback_of_a_spent_win_is_refused_with_nothing_written(client, factory):
    t = open_table(client, factory, cash=10_00)
    t.bet("b1", "10.00")
    t.win("w1", "50.00")
    t.bet("b2", "50.00", round_id="r2")
    answer = t.rollback("x1", "w1")
    assert answer["code"] == "INSUFFICIENT_FUNDS"
    assert t.balances() == (0, 0)
    reconcile_clean()


def test_refund_cannot_reverse_a_win(table):
    table.bet("b1", "1.00")
    table.win("w1", "2.00")
    assert table.refund("f1", "w1")["code"] == "VALIDATION_ERROR"


def test_closed_round_takes_no_more_bets(table):
    table.bet("b1", "1.00")
    table.win("w1", "0.50")
    assert table.end_round("r1")["status"] == "ok"
    assert table.end_round("r1")["status"] == "ok"  # idempotent
    answer = table.bet("b2", "1.00")
    assert answer["code"] == "ROUND_CLOSED"
    assert table.balances() == (99_50, 0)
    # Late settlement of a closed round still pays.
    assert table.win("w2", "1.00")["balance"] == "100.50"


def test_end_round_of_unknown_round_is_round_not_found(table):
    assert table.end_round("nope")["code"] == "ROUND_NOT_FOUND"


def test_round_of_another_player_takes_no_bets_from_me(client, factory):
    a = open_table(client, factory)
    a.bet("b1", "1.00", round_id="shared")
    b = open_table(client, factory)
    b.provider_code, b.game_external = a.provider_code, a.game_external
    with atomic():
        db.session.execute(
            sa.update(GameSession)
            .where(GameSession.user_id == b.user_id)
            .values(
                provider_id=db.session.scalar(
                    sa.select(GameSession.provider_id).where(GameSession.token == a.token)
                ),
                game_id=db.session.scalar(
                    sa.select(GameSession.game_id).where(GameSession.token == a.token)
                ),
            )
        )
    assert b.bet("b2", "1.00", round_id="shared")["code"] == "ROUND_NOT_FOUND"


@pytest.mark.parametrize("status", ["suspended", "banned"])
def test_blocked_player_cannot_bet_but_is_still_paid(table, status):
    table.bet("b1", "5.00")
    with atomic():
        db.session.execute(sa.update(User).where(User.id == table.user_id).values(status=status))
    assert table.bet("b2", "1.00")["code"] == "PLAYER_BLOCKED"
    assert table.call("authenticate")["code"] == "PLAYER_BLOCKED"
    assert table.win("w1", "2.00")["balance"] == "97.00"


@pytest.mark.parametrize("status", ["suspended", "banned"])
def test_replay_of_an_applied_bet_for_a_since_blocked_player_gets_the_first_answer(table, status):
    # Idempotency: the provider retries a bet it saw no answer to; the bet was placed, so the
    # answer is the one it was given, not a refusal the provider would read as "never placed".
    first = table.bet("b1", "5.00")
    with atomic():
        db.session.execute(sa.update(User).where(User.id == table.user_id).values(status=status))
    assert table.bet("b1", "5.00") == first
    assert table.bet("b2", "1.00")["code"] == "PLAYER_BLOCKED"
    assert table.balances() == (95_00, 0)


def test_replay_of_an_applied_bet_after_the_session_expired_gets_the_first_answer(table):
    first = table.bet("b1", "5.00")
    with atomic():
        db.session.execute(
            sa.update(GameSession)
            .where(GameSession.token == table.token)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert table.bet("b1", "5.00") == first
    assert table.bet("b1", "6.00")["code"] == "DUPLICATE_MISMATCH"
    assert table.bet("b2", "1.00")["code"] == "INVALID_SESSION"


def test_a_refused_bet_is_never_recorded_so_its_replay_is_checked_again(table):
    with atomic():
        db.session.execute(
            sa.update(User).where(User.id == table.user_id).values(status="suspended")
        )
    assert table.bet("b1", "5.00")["code"] == "PLAYER_BLOCKED"
    with atomic():
        db.session.execute(sa.update(User).where(User.id == table.user_id).values(status="active"))
    # The refusal claimed nothing: the retry is a first bet, checked and applied now.
    assert table.bet("b1", "5.00")["status"] == "ok"
    assert table.balances() == (95_00, 0)
    assert table.bet("b2", "500.00")["code"] == "INSUFFICIENT_FUNDS"
    assert (
        db.session.scalar(
            sa.select(sa.func.count(ProviderTransaction.id)).where(
                ProviderTransaction.external_id == "b2"
            )
        )
        == 0
    )


def test_a_replayed_bet_reads_once_and_writes_only_its_log_row(table, app):
    table.bet("b1", "5.00")
    statements: list[str] = []

    def count(_conn, _cursor, sql, *_args):
        statements.append(sql)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert table.bet("b1", "5.00")["status"] == "ok"
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    # The test's savepoints and the provider's config (cached per process in production,
    # re-read here because tests change providers) are not the callback's own. On PostgreSQL
    # the read writes the log row too (one statement); elsewhere the row is its own INSERT.
    money = [
        s
        for s in statements
        if not any(x in s for x in ("SAVEPOINT", "FROM game_providers"))
        and not s.lstrip().startswith("INSERT INTO provider_callbacks")
    ]
    assert len(money) == 1, money
    text = " ".join(money[0].split())
    # No play-session touch, no write but the log row. On PostgreSQL a first bet's claim and
    # wallet lock ride in the same read, run only when no claim exists (a replay takes no
    # lock: ``test_a_duplicate_answers_while_another_transaction_holds_the_wallet_lock``).
    assert "UPDATE rg_sessions" not in text
    assert "UPDATE wallets" not in text
    if db.engine.dialect.name != "postgresql":
        assert "UPDATE" not in text
    assert text.startswith(("SELECT", "WITH s AS (SELECT"))


def test_bet_check_hook_refuses_with_limit_exceeded(table):
    from app.core.errors import LimitExceeded
    from app.play import guard as play_guard

    def deny_over_ten(user_id, amount, currency):
        if amount > 10_00:
            raise LimitExceeded("Loss limit reached")

    play_guard.register_bet_check(deny_over_ten)
    try:
        assert table.bet("b1", "10.01")["code"] == "LIMIT_EXCEEDED"
        assert table.bet("b2", "10.00")["status"] == "ok"
    finally:
        play_guard._bet_checks.remove(deny_over_ten)


def test_unknown_or_disabled_game_cannot_take_bets(table):
    assert table.bet("b1", "1.00", game_id="nope")["code"] == "GAME_NOT_FOUND"
    game = db.session.scalar(
        sa.select(games.Game).where(games.Game.external_id == table.game_external)
    )
    games.update_game(game.id, {"status": "inactive"})
    assert table.bet("b2", "1.00")["code"] == "GAME_NOT_FOUND"


def test_demo_session_moves_no_money(client, factory):
    t = open_table(client, factory)
    game = db.session.scalar(sa.select(games.Game).where(games.Game.external_id == t.game_external))
    player = db.session.get(User, t.user_id)
    t.token = games.launch(player, game.id, demo=True).session_token
    assert t.bet("b1", "1.00")["code"] == "INVALID_SESSION"
    assert t.balances() == (100_00, 0)


def test_ip_allow_list_refuses_other_addresses(client, factory):
    t = open_table(client, factory, ip_allowlist=["10.0.0.0/8"])
    assert t.call("balance")["code"] == "ACCESS_DENIED"
    allowed = t.client.post(
        f"/api/provider-callback/{t.provider_code}",
        data=json.dumps({"action": "balance", "session_token": t.token}).encode(),
        headers={
            "X-Signature": t.sign(
                json.dumps({"action": "balance", "session_token": t.token}).encode()
            )
        },
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert allowed.get_json()["status"] == "ok"


def test_every_callback_is_logged_with_verdict_balances_and_latency(table):
    table.bet("b1", "4.00")
    table.bet("b1", "4.00")
    table.bet("b9", "999.00")
    rows = db.session.scalars(sa.select(ProviderCallback).order_by(ProviderCallback.id)).all()
    assert [r.verdict for r in rows] == ["ok", "ok", "INSUFFICIENT_FUNDS"]
    assert [r.duplicate for r in rows] == [False, True, False]
    assert rows[0].balance_before == 100_00
    assert rows[0].balance_after == 96_00
    assert rows[0].latency_ms is not None
    assert rows[0].correlation_id
    assert rows[0].payload["transaction_id"] == "b1"
    assert rows[0].user_id == table.user_id


def test_unknown_action_and_bad_json_are_validation_errors(table):
    assert table.call("steal")["code"] == "VALIDATION_ERROR"
    assert table.raw(b"not json").get_json()["code"] == "VALIDATION_ERROR"
    assert table.raw(b"[1,2]").get_json()["code"] == "VALIDATION_ERROR"


def test_zero_bet_and_zero_win_open_and_settle_a_round_without_ledger_rows(table):
    assert table.bet("b0", 0)["status"] == "ok"
    assert table.win("w0", 0)["status"] == "ok"
    assert table.bet("b0", 0)["status"] == "ok"
    assert table.ledger_count() == 1
    assert db.session.scalar(sa.select(GameRound.bets_count)) == 1


def test_ledger_rows_reference_the_callback_and_are_append_only(table, requires_postgres):
    table.bet("b1", "1.00")
    tx = db.session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.type == "bet"))
    assert tx.source == f"provider:{table.provider_code}"
    assert tx.idempotency_key == "b1"
    assert tx.reference_type == "provider_transaction"
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), atomic():
        db.session.execute(sa.text("UPDATE ledger_transactions SET cash_delta = 0"))


@pytest.mark.parametrize(
    "pool_ref",
    ["²", "٣", "12345678901234567890", 12345678901234567890, "-5", " 7", "+7", "1_0", "7\n"],
)
def test_a_jackpot_id_that_is_not_plain_digits_is_a_validation_error(table, pool_ref):
    table.bet("b1", "1.00")
    before = table.balances()
    answer = table.call("jackpot_win", transaction_id="jp1", round_id="r1", amount="1.00",
                        jackpot_id=pool_ref)  # fmt: skip
    assert answer["code"] == "VALIDATION_ERROR", answer
    assert table.balances() == before
