"""The callback path's statements are PREPAREd once per connection (``app.core.prepared``):
the same answers and money as text, a statement PostgreSQL refuses still runs (as text, in
the same transaction), and a connection that lost its statements recovers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import prepared
from app.core.db import atomic, core_execute
from app.core.extensions import db
from app.play.models import ProviderCallback
from app.wallet.models import LedgerTransaction
from tests.moneykit import Table, open_table, reconcile_clean

pytestmark = pytest.mark.usefixtures("requires_postgres")


@pytest.fixture
def table(client, factory) -> Table:
    return open_table(client, factory)


def _prepared_here() -> dict[str, tuple[int, int]]:
    """This connection's prepared statements: name -> (generic plans, custom plans)."""
    rows = db.session.execute(
        sa.text("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements")
    ).all()
    return {name: (generic, custom) for name, generic, custom in rows}


def test_bets_and_wins_run_their_statements_prepared_with_generic_plans_and_answer_as_before(
    table,
):
    balances = []
    for i in range(8):
        bet = table.bet(f"pb{i}", "1.00", round_id=f"pr{i}")
        win = table.win(f"pw{i}", "0.50", round_id=f"pr{i}")
        assert bet["status"] == win["status"] == "ok"
        balances.append((bet["balance"], win["balance"]))
    assert balances[-1] == ("95.50", "96.00")  # 100.00 - 8 x 0.50
    assert table.bet("pb0", "1.00", round_id="pr0")["balance"] == balances[0][0]  # a replay
    mine = {plan.name for plan in prepared._plans.values() if plan is not None}
    here = _prepared_here()
    used = {name: plans for name, plans in here.items() if name in mine}
    # The session read, claim + lock and the posting of bets and wins, each prepared once.
    assert len(used) >= 3
    assert any(generic > 0 for generic, _ in used.values())  # past five runs: one plan
    reconcile_clean()


def test_turned_off_nothing_is_prepared_and_the_money_is_the_same(app, table, monkeypatch):
    assert table.bet("on0", "1.00", round_id="on0")["balance"] == "99.00"
    before = _prepared_here()
    monkeypatch.setitem(app.config, "DB_PREPARED_STATEMENTS", False)
    prepared.install(app)
    try:
        answer = table.bet("off1", "2.00", round_id="off1")
        assert answer.get("balance") == "97.00", answer
        assert _prepared_here() == before  # no statement prepared or executed prepared
    finally:
        monkeypatch.setitem(app.config, "DB_PREPARED_STATEMENTS", True)
        prepared.install(app)
    assert table.bet("on1", "2.00", round_id="on1")["balance"] == "95.00"
    assert _prepared_here() != before
    reconcile_clean()


def test_a_statement_postgres_cannot_prepare_runs_as_text_in_the_same_transaction(table):
    # ``unknown + unknown``: no operator without the literals' types, so PREPARE fails twice
    # (inferred, then SQLAlchemy's types: none known); the transaction must go on.
    stmt = sa.text("SELECT :a + :b AS v").bindparams(sa.bindparam("a"), sa.bindparam("b"))
    with atomic():
        db.session.add(
            ProviderCallback(provider_code="x", action="probe", verdict="ok", payload={})
        )
        db.session.flush()
        assert core_execute(stmt, {"a": 2, "b": 3}).scalar_one() == 5
        assert core_execute(stmt, {"a": 4, "b": 3}).scalar_one() == 7
    compiled = [text for text in prepared._plans if "+ %(b)s" in text]
    assert compiled
    assert prepared._plans[compiled[0]] is None
    assert (
        db.session.scalar(sa.select(sa.func.count()).where(ProviderCallback.action == "probe")) == 1
    )


def test_a_connection_that_lost_its_statements_answers_retryable_and_recovers(
    committed_db, client, factory
):
    table = open_table(client, factory)
    assert table.bet("lost1", "1.00", round_id="lr1")["status"] == "ok"
    discarded = []

    def discard(dbapi_connection, _record, _proxy):
        # What a pooling proxy's DISCARD ALL does to a connection between transactions.
        if not discarded:
            cursor = dbapi_connection.cursor()
            cursor.execute("DEALLOCATE ALL")
            cursor.close()
            dbapi_connection.commit()
            discarded.append(True)

    sa.event.listen(db.engine, "checkout", discard)
    try:
        first = table.bet("lost2", "1.00", round_id="lr2")
    finally:
        sa.event.remove(db.engine, "checkout", discard)
    assert discarded
    assert first["status"] == "error", first  # the protocol's retryable answer
    assert not db.session.scalar(
        sa.select(sa.func.count()).where(LedgerTransaction.idempotency_key == "lost2")
    )
    again = table.bet("lost2", "1.00", round_id="lr2")  # the provider's retry
    assert again["status"] == "ok", again
    assert again["balance"] == "98.00"
    reconcile_clean()


def test_a_hot_statement_runs_on_the_cursor_after_its_first_run_with_the_same_rows(table):
    from app.identity.models import User

    stmt = (
        sa.select(
            User.id,
            User.created_at,
            User.status,
            sa.literal("constant").label("c"),
            sa.cast(sa.bindparam("meta", type_=sa.JSON), sa.Text).label("meta"),
        )
        .where(User.id == sa.bindparam("uid"), User.status.in_(["active", "suspended"]))
        .execution_options(**{prepared.HOT: True})
    )
    params = {"uid": table.user_id, "meta": {"a": [1, "b"]}}
    expected = db.session.execute(stmt, params).one_or_none()
    executes, cursors = [], []
    engine = db.engine

    def on_execute(*_args):
        executes.append(1)

    def on_cursor(*_args):
        cursors.append(1)

    sa.event.listen(engine, "before_execute", on_execute)
    sa.event.listen(engine, "before_cursor_execute", on_cursor)
    try:
        first = core_execute(stmt, params).one_or_none()  # through SQLAlchemy: learns it
        assert id(stmt) in prepared._hot
        learned = len(executes)
        second = core_execute(stmt, params).one_or_none()  # on the cursor
        assert len(executes) == learned  # SQLAlchemy's execute layer was not entered
        assert len(cursors) == 2  # statement listeners see each statement
        missing = core_execute(stmt, {"uid": -1, "meta": None}).one_or_none()
    finally:
        sa.event.remove(engine, "before_execute", on_execute)
        sa.event.remove(engine, "before_cursor_execute", on_cursor)
    for row in (first, second):
        assert tuple(row) == tuple(expected)
        assert dict(row._mapping) == dict(expected._mapping)
        assert row.created_at.tzinfo is not None
    assert second.meta == '{"a": [1, "b"]}'
    assert missing is None
    # Other parameter names than the learned ones: through SQLAlchemy, same answer.
    other = core_execute(stmt, {"uid": table.user_id, "meta": {}, "other": 2}).one_or_none()
    assert other.id == table.user_id
    # A caller's parameter the SQL does not use is left out, as SQLAlchemy leaves it out.
    again = stmt.execution_options(**{prepared.HOT: True})  # another statement, same SQL
    extra = {"uid": table.user_id, "meta": {}, "extra": 1}
    learned_with_extra = core_execute(again, extra).one_or_none()
    assert id(again) in prepared._hot
    assert tuple(core_execute(again, extra).one_or_none()) == tuple(learned_with_extra)


_values = st.one_of(
    st.text(),
    st.text(alphabet="'\\\"%$;-\n\x00é€😀"),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.dates(),
    st.binary(max_size=8),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_values)
def test_an_execute_argument_is_rendered_exactly_as_psycopg2_renders_it(app, value):
    cursor = db.session.connection().connection.dbapi_connection.cursor()
    try:
        try:
            expected = cursor.mogrify("%s", (value,)).decode()
        except ValueError:  # a NUL in a string: refused the same way
            with pytest.raises(ValueError, match="NUL"):
                prepared._literal(cursor, value)
            return
        assert prepared._literal(cursor, value) == expected
    finally:
        cursor.close()


def test_rendered_arguments_reach_postgres_as_the_values_they_were(app):
    """Quotes, backslashes, comment and placeholder characters and non-ASCII text arrive
    intact through a prepared statement's rendered ``EXECUTE`` (no injection, no mangling)."""
    stmt = sa.text("SELECT CAST(:a AS text), CAST(:b AS bigint), CAST(:c AS timestamptz)")
    tricky = "O'Brien\\'; DROP TABLE users; -- %(b)s $1 é😀"
    when = datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=UTC)
    for _ in range(2):  # prepared the first time, executed with rendered arguments after
        row = core_execute(stmt, {"a": tricky, "b": -42, "c": when}).one()
        assert tuple(row) == (tricky, -42, when)
    mine = {plan.name for plan in prepared._plans.values() if plan is not None}
    assert mine & set(_prepared_here())


def test_a_claim_is_looked_up_by_its_unique_index_even_on_a_small_table(table):
    """The claim lookup (``provider_id`` + ``external_id``) must not pick the reference index:
    it did on a small table (equal costs), and a callback's prepared generic plan then kept
    scanning every claim of the provider as the table grew. That index is partial now (only
    rows naming a reference) and still serves the reference lookups."""
    for i in range(3):
        table.bet(f"ix{i}", "1.00", round_id=f"ixr{i}")
    provider_id = db.session.scalar(sa.text("SELECT max(provider_id) FROM provider_transactions"))

    def index_of(where: str, value: str) -> str:
        plan = db.session.execute(
            sa.text(
                "EXPLAIN (FORMAT JSON) SELECT id FROM provider_transactions "
                f"WHERE provider_id = :p AND {where} = :v"
            ),
            {"p": provider_id, "v": value},
        ).scalar_one()
        return plan[0]["Plan"].get("Index Name", "")

    assert index_of("external_id", "ix1") == "uq_provider_transactions_provider_external"
    assert index_of("reference_external_id", "ix1") == "ix_provider_transactions_reference"


def test_a_selected_parameter_keeps_its_type_only_when_the_statement_casts_it(app):
    """The rule in ``core.prepared``'s invariants: a prepared statement types a bare selected
    parameter as text (psycopg2's text statement read the unquoted number); a cast keeps it."""
    bare = sa.select(sa.bindparam("x", type_=sa.BigInteger).label("x"))
    cast = sa.select(sa.cast(sa.bindparam("x", type_=sa.BigInteger), sa.BigInteger).label("x"))
    assert core_execute(bare, {"x": 5}).scalar_one() == "5"
    assert core_execute(cast, {"x": 5}).scalar_one() == 5
