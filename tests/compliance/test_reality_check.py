"""Reality checks: reminders at the player's interval, with session time and net result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.compliance import reality_check
from app.core import presence
from app.core.db import atomic
from app.core.errors import ValidationError
from app.core.extensions import db
from app.core.models import AuditLog, Notification


@pytest.fixture
def ledger_source():
    calls = []

    def source(user_id, since):
        calls.append((user_id, since))
        return [{"currency": "EUR", "wagered": 50_00, "won": 37_50, "net": -12_50}]

    previous = reality_check._net_result_source
    reality_check.register_net_result_source(source)
    yield calls
    reality_check.register_net_result_source(previous)


@pytest.fixture
def no_ledger_source():
    previous = reality_check._net_result_source
    reality_check.register_net_result_source(None)
    yield
    reality_check.register_net_result_source(previous)


def _reminders(user_id: int) -> list[Notification]:
    return list(
        db.session.scalars(
            db.select(Notification)
            .where(Notification.user_id == user_id, Notification.type == "reality_check")
            .order_by(Notification.id)
        )
    )


def _enable(player, minutes: int = 30) -> None:
    with atomic():
        reality_check.set_interval(player.id, minutes, actor=player)


def test_the_interval_is_validated_and_its_change_audited(factory):
    player = factory.player()
    for bad in (0, 4, 1441, "30", True):
        with pytest.raises(ValidationError), atomic():
            reality_check.set_interval(player.id, bad)
    _enable(player, 45)
    assert reality_check.get_interval(player.id) == 45
    with atomic():
        reality_check.set_interval(player.id, None)
    assert reality_check.get_interval(player.id) is None
    rows = db.session.scalars(
        db.select(AuditLog).where(AuditLog.action == "responsible_gaming.reality_check")
    ).all()
    assert [r.after["interval_minutes"] for r in rows] == [45, None]


def test_a_connected_player_gets_one_reminder_per_interval_with_the_net_result(
    factory, ledger_source
):
    player = factory.player()
    _enable(player, 30)
    presence.add(player.id, "sid-1")
    later = datetime.now(UTC) + timedelta(minutes=61)

    assert reality_check.send_due(now=later) == 1
    assert reality_check.send_due(now=later) == 0  # the scan ran twice: one reminder
    (reminder,) = _reminders(player.id)
    assert reminder.title == "Reality check"
    assert "1h 01m" in reminder.message
    assert "-12.50 EUR" in reminder.message
    assert reminder.data["session_minutes"] == 61
    assert reminder.data["net_result"] == [
        {"currency": "EUR", "wagered": "50.00", "won": "37.50", "net": "-12.50"}
    ]

    assert reality_check.send_due(now=later + timedelta(minutes=30)) == 1
    assert len(_reminders(player.id)) == 2


def test_no_reminder_before_the_first_interval_or_when_offline_or_disabled(factory, ledger_source):
    online, offline, disabled = factory.player(), factory.player(), factory.player()
    _enable(online, 30)
    _enable(offline, 30)
    presence.add(online.id, "sid-a")
    presence.add(disabled.id, "sid-b")
    now = datetime.now(UTC)
    assert reality_check.send_due(now=now + timedelta(minutes=29)) == 0
    assert reality_check.send_due(now=now + timedelta(minutes=31)) == 1
    assert _reminders(offline.id) == []
    assert _reminders(disabled.id) == []


def test_the_session_starts_at_the_last_login_when_that_is_later(factory, ledger_source):
    player = factory.player()
    _enable(player, 30)
    presence.add(player.id, "sid-1")
    login = datetime.now(UTC) + timedelta(minutes=20)
    with atomic():
        player.last_login_at = login
    assert reality_check.send_due(now=login + timedelta(minutes=29)) == 0
    assert reality_check.send_due(now=login + timedelta(minutes=31)) == 1
    assert ledger_source[-1][1] == login.replace(microsecond=0)


def test_without_a_ledger_source_the_reminder_says_the_result_is_unavailable(
    factory, no_ledger_source
):
    player = factory.player()
    _enable(player, 30)
    presence.add(player.id, "sid-1")
    assert reality_check.send_due(now=datetime.now(UTC) + timedelta(minutes=31)) == 1
    (reminder,) = _reminders(player.id)
    assert "not available" in reminder.message
    assert reminder.data["net_result"] is None


def test_the_wallet_ledger_is_the_registered_source_of_session_results(client, factory):
    from app.compliance import responsible_gaming
    from tests import moneykit

    assert reality_check._net_result_source is responsible_gaming.session_results
    started = datetime.now(UTC) - timedelta(seconds=1)
    table = moneykit.open_table(client, factory, cash=100_00)
    table.bet("b1", "20.00")
    table.win("w1", "5.00")
    assert responsible_gaming.session_results(table.user_id, started) == [
        {"currency": "EUR", "wagered": 20_00, "won": 5_00, "net": -15_00}
    ]
