"""A duplicate bet or win answered and logged by its session read (one statement, PostgreSQL):
the log row is the one the two-statement path writes, and whatever that path refuses is
refused the same way (the row the read would have written never stands)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.core.extensions import db
from app.core.money import format_minor
from app.play.callbacks import actions
from app.play.models import ProviderCallback
from tests.moneykit import Table, open_table, reconcile_clean, wallet_row_locked


@pytest.fixture
def table(client, factory) -> Table:
    return open_table(client, factory, cash=100_00, bonus=20_00)


def _rows(table: Table, tx: str) -> list[ProviderCallback]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(ProviderCallback)
            .where(ProviderCallback.transaction_id == tx)
            .order_by(ProviderCallback.id)
        )
    )


def _statements(app, call):
    seen: list[str] = []

    def count(_conn, _cursor, sql, *_args):
        seen.append(sql)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        answer = call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    # The test's savepoints and the provider config (re-read in tests) are not the callback's.
    return answer, [s for s in seen if not any(x in s for x in ("SAVEPOINT", "game_providers"))]


def _same_log(first: ProviderCallback, again: ProviderCallback, answer: dict) -> None:
    assert again.verdict == "ok"
    assert again.duplicate is True
    assert again.response == answer
    assert again.user_id == first.user_id
    assert again.balance_after == first.balance_after
    assert again.balance_before is None
    assert (again.provider_code, again.action, again.round_id) == (
        first.provider_code,
        first.action,
        first.round_id,
    )
    assert again.payload == first.payload
    assert again.signature_valid is True


@pytest.mark.parametrize("kind", ["bet", "win", "win_naming_its_bet"])
def test_a_duplicate_is_answered_and_logged_as_the_first_answer(app, table, kind):
    table.bet("b0", "40.00")  # takes the cash first, then the bonus: both balances move
    if kind == "bet":
        call = lambda: table.bet("b1", "2.50")  # noqa: E731
    elif kind == "win":
        call = lambda: table.win("w1", "3.00")  # noqa: E731
    else:
        call = lambda: table.win("w1", "3.00", reference_transaction_id="b0")  # noqa: E731
    tx = "b1" if kind == "bet" else "w1"
    first = call()
    assert first["status"] == "ok"
    again, statements = _statements(app, call)
    assert again == first
    rows = _rows(table, tx)
    assert len(rows) == 2
    _same_log(rows[0], rows[1], first)
    if db.engine.dialect.name == "postgresql":
        assert len(statements) == 1, statements
        # The stored text is the one SQLAlchemy stores for the first answer (json.dumps).
        texts = db.session.scalars(
            sa.select(sa.cast(ProviderCallback.response, sa.Text))
            .where(ProviderCallback.id.in_([rows[0].id, rows[1].id]))
            .order_by(ProviderCallback.id)
        ).all()
        assert texts[1] == texts[0]
    reconcile_clean()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": "2.51"}, "DUPLICATE_MISMATCH"),
        ({"round_id": "other"}, "DUPLICATE_MISMATCH"),
        ({"game_id": "elsewhere"}, "DUPLICATE_MISMATCH"),
        ({"currency": "USD"}, "VALIDATION_ERROR"),
        ({"currency": "GBP"}, "VALIDATION_ERROR"),
        ({"amount": "-1"}, "VALIDATION_ERROR"),
        ({"session_token": "nope"}, "INVALID_SESSION"),
    ],
)
def test_a_changed_duplicate_is_refused_and_only_the_refusal_is_logged(table, change, code):
    table.bet("b1", "2.50")
    fields = {"transaction_id": "b1", "round_id": "r1", "amount": "2.50", **change}
    answer = table.call("bet", **fields)
    assert answer["code"] == code
    rows = _rows(table, "b1")
    assert [r.verdict for r in rows] == ["ok", code]
    assert rows[1].duplicate is False
    assert table.balances() == (100_00 - 2_50, 20_00)


def test_a_win_duplicate_naming_another_bet_is_a_mismatch(table):
    table.bet("b0", "1.00")
    table.bet("b1", "1.00")
    table.win("w1", "3.00", reference_transaction_id="b0")
    answer = table.win("w1", "3.00", reference_transaction_id="b1")
    assert answer["code"] == "DUPLICATE_MISMATCH"
    assert [r.verdict for r in _rows(table, "w1")] == ["ok", "DUPLICATE_MISMATCH"]


def test_a_duplicate_of_a_tombstone_is_refused(table):
    table.refund("f1", "b9")  # leaves a tombstone under b9
    answer = table.bet("b9", "1.00")
    assert answer["code"] == "DUPLICATE_MISMATCH"
    assert [r.verdict for r in _rows(table, "b9")] == ["DUPLICATE_MISMATCH"]


@pytest.mark.usefixtures("requires_postgres")
@pytest.mark.parametrize("currency", ["EUR", "JPY", "BTC", "KWD"])
@pytest.mark.parametrize("minor", [0, 1, 9, 10, 99, 100, 12345, -1, -150, 10**15 + 7])
def test_the_sql_amount_format_is_format_minor(app, currency, minor):
    try:
        expected = format_minor(minor, currency)
    except Exception:
        pytest.skip(f"{currency} is not a currency here")
    exp = len(expected.split(".")[1]) if "." in expected else 0
    with app.app_context():
        got = db.session.scalar(
            sa.select(actions._format_minor_sql(sa.literal(minor, sa.BigInteger))),
            {"d_exp": exp, "d_scale": 10**exp},
        )
    assert got == expected


@pytest.mark.usefixtures("requires_postgres")
@pytest.mark.parametrize("nest", [None, "b0", 'quo"te', "ünï"])
def test_the_sql_fingerprint_is_the_python_one(app, nest):
    parts = ("r1", "g\u00e9", 250, "EUR")
    expected = actions._fingerprint("bet", 4242, *parts)
    if nest is not None:
        expected = actions._fingerprint(expected, nest)
    params = actions._fingerprint_params("bet", list(parts), nest)
    with app.app_context():
        got = db.session.scalar(
            sa.select(actions._fingerprint_sql(sa.literal(4242, sa.BigInteger))), params
        )
    assert got == expected


@pytest.mark.usefixtures("requires_postgres")
def test_only_a_transaction_that_logged_a_duplicate_skips_the_wal_flush(table):
    """``synchronous_commit`` is off for the transaction of a replay (it moves no money) and
    stays on for a first bet or a changed duplicate. The test's outer transaction holds the
    callbacks' (savepoints), so the transaction-local setting is still visible here."""

    def setting() -> str:
        return db.session.scalar(sa.text("SHOW synchronous_commit"))

    assert table.bet("s1", "1.00", round_id="sr1")["status"] == "ok"
    assert setting() == "on"
    assert table.bet("s1", "2.00", round_id="sr1")["code"] == "DUPLICATE_MISMATCH"
    assert setting() == "on"
    assert table.bet("s1", "1.00", round_id="sr1")["status"] == "ok"  # the replay
    assert setting() == "off"
    reconcile_clean()


@pytest.mark.parametrize("kind", ["bet", "win"])
def test_a_duplicate_answers_while_another_transaction_holds_the_wallet_lock(
    app, requires_postgres, committed_db, client, factory, kind
):
    """The replay's one statement claims and locks only when no claim exists: a duplicate
    takes no row lock, so a stuck transaction on the wallet does not hold up its answer
    (a lock wait would end in the retryable error after the lock timeout)."""
    table = open_table(client, factory, cash=100_00)
    table.bet("b0", "1.00")
    call = (lambda: table.bet("b1", "2.50")) if kind == "bet" else (lambda: table.win("w1", "3.00"))
    first = call()
    assert first["status"] == "ok"
    with wallet_row_locked(table.user_id):
        again = call()
    assert again == first
    reconcile_clean()
