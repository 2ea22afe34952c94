"""The commission job: hand-computed figures from the ledger, idempotent re-runs, negative
carry-over across periods, CPA once per referral."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.affiliates import commissions
from app.affiliates.models import CommissionCpa, CommissionPlan, CommissionStatement
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import AGENT, User
from app.payments.models import PaymentTransaction
from app.wallet.models import LedgerTransaction
from tests.moneykit import fund, open_table, reconcile_clean
from tests.payments_helpers import sandbox_gateway


@pytest.fixture(autouse=True)
def weekly(app):
    before = app.config["COMMISSION_PERIOD"]
    app.config["COMMISSION_PERIOD"] = "7"
    yield
    app.config["COMMISSION_PERIOD"] = before


def closed_periods(n: int):
    """The ``n`` last closed weekly periods, oldest first."""
    current, _ = commissions.period_containing(utcnow())
    return [
        (current - timedelta(days=7 * i), current - timedelta(days=7 * (i - 1)))
        for i in range(n, 0, -1)
    ]


def plan(agent_id, share=0, level2=0, cpa=0, min_deposit=0):
    with atomic():
        row = CommissionPlan(
            agent_id=agent_id,
            revenue_share_bps=share * 100,
            level2_share_bps=level2 * 100,
            cpa_amount=cpa,
            cpa_currency="EUR",
            cpa_min_deposit=min_deposit,
        )
        db.session.add(row)
    return row


def attach(user_id, agent_id):
    with atomic():
        db.session.get(User, user_id).agent_id = agent_id


def completed_deposit(user_id, amount, at):
    gateway = (
        db.session.scalar(select(PaymentTransaction.gateway_id).limit(1)) or sandbox_gateway().id
    )
    with atomic():
        db.session.add(
            PaymentTransaction(
                public_id=secrets.token_hex(8),
                user_id=user_id,
                gateway_id=gateway,
                type="deposit",
                status="completed",
                amount_minor=amount,
                currency="EUR",
                processed_at=at,
                created_at=at,
            )
        )


def commission_rows(agent_id=None):
    q = select(LedgerTransaction).where(LedgerTransaction.type == "commission")
    if agent_id is not None:
        q = q.where(LedgerTransaction.user_id == agent_id)
    return list(db.session.scalars(q.order_by(LedgerTransaction.id)))


def statement(agent_id, start):
    db.session.expire_all()
    return db.session.scalar(
        select(CommissionStatement).where(
            CommissionStatement.agent_id == agent_id, CommissionStatement.period_start == start
        )
    )


def test_two_agents_and_a_sub_agent_are_paid_what_the_ledger_says(
    client, factory, token_for, runner
):
    ((start, _end),) = closed_periods(1)
    a, b = factory.staff("agent"), factory.staff("agent")
    s = factory.staff("agent", agent_id=a.id)  # A's sub-agent
    plan(a.id, share=25, level2=10, cpa=20_00, min_deposit=10_00)
    plan(None, share=30)  # the default plan: B and S
    p1, p2, p3, p4 = (open_table(client, factory, cash=200_00) for _ in range(4))
    for table, agent in ((p1, a), (p2, a), (p3, b), (p4, s)):
        attach(table.user_id, agent.id)
    with freeze_time(start + timedelta(days=1)):
        p1.bet("b1", "100.00")
        p1.win("w1", "30.00")  # NGR 70.00
        p2.bet("b1", "50.00")
        p2.win("w1", "80.00")
        p2.bet("b2", "20.00", round_id="r2")
        p2.refund("rf2", "b2")  # NGR -30.00 (the refunded stake counts for nothing)
        p3.bet("b1", "40.00")
        fund(p3.user_id, bonus=5_00)  # bonus cost: NGR 35.00
        p4.bet("b1", "60.00")
        p4.win("w1", "10.00")  # NGR 50.00
        completed_deposit(p1.user_id, 25_00, utcnow())  # first deposit >= 10.00: CPA
        completed_deposit(p2.user_id, 5_00, utcnow())  # first deposit < 10.00: no CPA
    p1.bet("b-now", "7.00", round_id="later")  # the open period: not in this statement
    report = commissions.run()
    assert report["statements"] == 3
    assert report["paid"] == {"EUR": "60.50"}  # A 35.00 + B 10.50 + S 15.00

    sa_ = statement(a.id, start)
    assert (sa_.stakes, sa_.refunds, sa_.wins, sa_.bonus_cost, sa_.ngr) == (
        170_00,
        20_00,
        110_00,
        0,
        40_00,
    )
    assert (sa_.commission_l1, sa_.ngr_l2, sa_.commission_l2) == (10_00, 50_00, 5_00)
    assert (sa_.cpa_count, sa_.cpa_total, sa_.total) == (1, 20_00, 35_00)
    sb = statement(b.id, start)
    assert (sb.ngr, sb.bonus_cost, sb.commission_l1, sb.total) == (35_00, 5_00, 10_50, 10_50)
    ss = statement(s.id, start)
    assert (ss.ngr, ss.commission_l1, ss.commission_l2, ss.total) == (50_00, 15_00, 0, 15_00)
    by_agent = {
        agent.id: sorted(
            (r.idempotency_key.rsplit(":", 1)[1], r.cash_delta) for r in commission_rows(agent.id)
        )
        for agent in (a, b, s)
    }
    assert by_agent == {
        a.id: [("cpa", 20_00), ("l1", 10_00), ("l2", 5_00)],
        b.id: [("l1", 10_50)],
        s.id: [("l1", 15_00)],
    }

    # Run again (job, then the CLI for the same period): nothing more is paid.
    again = commissions.run()
    assert (again["statements"], again["already_settled"]) == (0, 3)
    cli = runner.invoke(
        args=["jackpotx", "affiliates", "pay-commissions", "--period", start.date().isoformat()]
    )
    assert cli.exit_code == 0, cli.output
    assert "statements=0" in cli.output
    assert len(commission_rows()) == 5
    assert db.session.scalar(select(func.count(CommissionCpa.id))) == 1
    reconcile_clean()

    # The agent sees the statement; staff see it and the stats.
    mine = client.get("/api/affiliate/commissions", headers=token_for(a)).json["data"]
    assert [(m["total"], m["commission_l1"], m["cpa_count"]) for m in mine] == [
        ("35.00", "10.00", 1)
    ]
    manager = token_for(factory.staff("manager"))
    staff = client.get(f"/api/admin/affiliate/commissions?agent_id={b.id}", headers=manager)
    assert [row["total"] for row in staff.json["data"]] == ["10.50"]
    stats = {
        row["agent_id"]: row
        for row in client.get("/api/admin/affiliate/stats", headers=manager).json["data"]
    }
    assert stats[a.id]["referrals"] == 2
    assert stats[a.id]["qualified"] == 2
    assert stats[a.id]["commissions"] == [{"currency": "EUR", "amount": "35.00"}]
    # All time NGR of A's players, including the open period's 7.00 stake.
    assert stats[a.id]["ngr"] == [{"currency": "EUR", "amount": "47.00"}]


def test_negative_ngr_is_carried_over_until_it_is_earned_back(client, factory):
    p1, p2, p3 = closed_periods(3)
    agent = factory.staff("agent")
    plan(agent.id, share=50)
    table = open_table(client, factory, cash=200_00)
    attach(table.user_id, agent.id)
    with freeze_time(p1[0] + timedelta(hours=1)):
        table.bet("b1", "10.00")
        table.win("w1", "50.00")  # NGR -40.00
    with freeze_time(p2[0] + timedelta(hours=1)):
        table.bet("b2", "30.00", round_id="r2")  # NGR +30.00: base -10.00
    with freeze_time(p3[1] - timedelta(hours=1)):
        table.bet("b3", "50.00", round_id="r3")  # NGR +50.00: base 40.00
    for start, _end in (p1, p2, p3):
        commissions.run(period_start=start)
    first, second, third = (statement(agent.id, p[0]) for p in (p1, p2, p3))
    assert (first.ngr, first.carry_in_l1, first.commission_l1, first.carry_out_l1) == (
        -40_00,
        0,
        0,
        -40_00,
    )
    assert (second.ngr, second.carry_in_l1, second.commission_l1, second.carry_out_l1) == (
        30_00,
        -40_00,
        0,
        -10_00,
    )
    assert (third.ngr, third.carry_in_l1, third.commission_l1, third.carry_out_l1) == (
        50_00,
        -10_00,
        20_00,
        0,
    )
    assert [r.cash_delta for r in commission_rows(agent.id)] == [20_00]
    # Re-running a settled period changes nothing.
    commissions.run(period_start=p2[0])
    commissions.run(period_start=p3[0])
    assert [r.cash_delta for r in commission_rows(agent.id)] == [20_00]


def test_a_period_without_play_still_carries_the_loss_forward(client, factory):
    p1, p2, p3 = closed_periods(3)
    agent = factory.staff("agent")
    plan(agent.id, share=50)
    table = open_table(client, factory, cash=100_00)
    attach(table.user_id, agent.id)
    with freeze_time(p1[0] + timedelta(hours=1)):
        table.bet("b1", "10.00")
        table.win("w1", "30.00")  # -20.00
    with freeze_time(p3[0] + timedelta(hours=1)):
        table.bet("b3", "30.00", round_id="r3")  # +30.00
    for start, _end in (p1, p2, p3):
        commissions.run(period_start=start)
    assert statement(agent.id, p2[0]).carry_out_l1 == -20_00
    assert statement(agent.id, p3[0]).commission_l1 == 5_00


def test_cpa_is_paid_once_per_referral(client, factory):
    p1, p2 = closed_periods(2)
    agent = factory.staff("agent")
    plan(agent.id, cpa=15_00, min_deposit=20_00)
    qualifies = factory.player(agent_id=agent.id)
    small_first = factory.player(agent_id=agent.id)
    completed_deposit(qualifies.id, 20_00, p1[0] + timedelta(hours=2))
    completed_deposit(small_first.id, 10_00, p1[0] + timedelta(hours=2))
    # A later big deposit does not make a small first deposit qualify.
    completed_deposit(small_first.id, 500_00, p2[0] + timedelta(hours=2))
    completed_deposit(qualifies.id, 50_00, p2[0] + timedelta(hours=2))
    for start, _end in (p1, p2, p1, p2):
        commissions.run(period_start=start)
    rows = commission_rows(agent.id)
    assert [(r.cash_delta, r.idempotency_key.endswith(":cpa")) for r in rows] == [(15_00, True)]
    assert db.session.scalar(select(CommissionCpa.player_id)) == qualifies.id
    with pytest.raises(IntegrityError), atomic():
        db.session.add(
            CommissionCpa(
                player_id=qualifies.id,
                agent_id=agent.id,
                statement_id=statement(agent.id, p1[0]).id,
                amount=1,
                currency="EUR",
                first_deposit=1,
            )
        )


def test_an_open_period_cannot_be_settled(factory):
    current, _ = commissions.period_containing(utcnow())
    from app.core.errors import ValidationError

    with pytest.raises(ValidationError):
        commissions.run(period_start=current)


def test_periods_are_epoch_aligned_or_calendar_months(app):
    from datetime import UTC, datetime

    at = datetime(2026, 3, 15, 12, tzinfo=UTC)
    app.config["COMMISSION_PERIOD"] = "monthly"
    assert commissions.period_containing(at) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert commissions.last_closed_period(at)[0] == datetime(2026, 2, 1, tzinfo=UTC)
    app.config["COMMISSION_PERIOD"] = "7"
    start, end = commissions.period_containing(at)
    assert (end - start, (start - datetime(1970, 1, 1, tzinfo=UTC)).days % 7) == (
        timedelta(days=7),
        0,
    )
    assert start <= at < end


def test_inactive_agents_and_agents_without_a_plan_are_not_paid(client, factory):
    ((start, _end),) = closed_periods(1)
    no_plan = factory.staff("agent")
    banned = factory.staff("agent", status="banned")
    plan(banned.id, share=50)
    for agent in (no_plan, banned):
        table = open_table(client, factory, cash=100_00)
        attach(table.user_id, agent.id)
        with freeze_time(start + timedelta(hours=1)):
            table.bet("b1", "10.00")
    report = commissions.run()
    assert (report["statements"], report["skipped_inactive"]) == (0, 1)
    assert commission_rows() == []
    assert db.session.get(User, banned.id).role_id == AGENT


# --- concurrency -----------------------------------------------------------------------------


def _race(app, n, work):
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def attempt() -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcomes.append(work())
            except Exception as exc:  # the outcome is what the test asserts
                outcomes.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.mark.usefixtures("requires_postgres")
def test_racing_commission_runs_pay_once(app, committed_db):
    from app.wallet import ledger as wallet
    from tests.conftest import Factory

    with app.app_context():
        ((start, _end),) = closed_periods(1)
        agent = Factory().staff("agent")
        player = Factory().player(agent_id=agent.id)
        plan(agent.id, share=40, cpa=10_00)
        fund(player.id, cash=100_00)
        with freeze_time(start + timedelta(hours=1)), atomic():
            wallet.post(player.id, "EUR", "bet", cash_delta=-50_00, source="test",
                        idempotency_key="race-bet")  # fmt: skip
        completed_deposit(player.id, 20_00, start + timedelta(hours=1))
        agent_id = agent.id
        db.session.remove()
    outcomes = _race(app, 4, lambda: str(commissions.run()["statements"]))
    assert sorted(outcomes) == ["0", "0", "0", "1"]
    with app.app_context():
        rows = commission_rows(agent_id)
        assert sorted(r.cash_delta for r in rows) == [10_00, 20_00]  # CPA, 40 % of 50.00
        assert db.session.scalar(select(func.count(CommissionStatement.id))) == 1
        reconcile_clean()
        db.session.remove()


@pytest.mark.usefixtures("requires_postgres")
def test_racing_applications_leave_one_pending(app, committed_db):
    from app.affiliates import program as affiliates
    from tests.conftest import Factory

    with app.app_context():
        uid = Factory().player().id
        db.session.remove()

    def apply() -> str:
        user = db.session.get(User, uid)
        return affiliates.apply(user, channel="social").status

    outcomes = _race(app, 6, apply)
    assert sorted(outcomes) == ["Conflict"] * 5 + ["pending"]
    with app.app_context():
        from app.affiliates.models import AffiliateApplication

        assert db.session.scalar(select(func.count(AffiliateApplication.id))) == 1
        db.session.remove()
