"""Status machines: each object's table of transitions is the only way its status moves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.bonus.models import BONUS_STATES, BONUS_STATUSES
from app.compliance.models import SUBMISSION_STATES, SUBMISSION_STATUSES
from app.core.states import IllegalTransition, StateMachine
from app.payments.models import DEPOSIT_STATES, PAYMENT_STATUSES, WITHDRAWAL_STATES
from app.play.models import ROUND_STATES, ROUND_STATUSES
from app.prizes.models import TOURNAMENT_STATES, TOURNAMENT_STATUSES

MACHINES = [
    (DEPOSIT_STATES, PAYMENT_STATUSES),
    (WITHDRAWAL_STATES, PAYMENT_STATUSES),
    (SUBMISSION_STATES, SUBMISSION_STATUSES),
    (ROUND_STATES, ROUND_STATUSES),
    (TOURNAMENT_STATES, TOURNAMENT_STATUSES),
    (BONUS_STATES, BONUS_STATUSES),
]


@pytest.mark.parametrize(("machine", "allowed"), MACHINES, ids=lambda m: getattr(m, "name", ""))
def test_every_state_of_a_machine_is_one_the_table_constraint_accepts(machine, allowed):
    assert machine.states <= set(allowed)


def test_a_move_the_table_allows_sets_the_status():
    txn = SimpleNamespace(status="pending")
    WITHDRAWAL_STATES.move(txn, "approved")
    WITHDRAWAL_STATES.move(txn, "processing")
    WITHDRAWAL_STATES.move(txn, "completed")
    assert txn.status == "completed"


@pytest.mark.parametrize(
    ("machine", "current", "to"),
    [
        (WITHDRAWAL_STATES, "completed", "failed"),  # a settled payout never fails afterwards
        (WITHDRAWAL_STATES, "processing", "cancelled"),  # submitted: the player cannot cancel
        (WITHDRAWAL_STATES, "rejected", "approved"),
        (WITHDRAWAL_STATES, "pending", "processing"),  # no payout without approval
        (DEPOSIT_STATES, "failed", "completed"),  # a late success goes to staff, not the wallet
        (DEPOSIT_STATES, "completed", "expired"),  # a paid deposit never expires
        (DEPOSIT_STATES, "expired", "pending"),  # expired is not reopened (a payment completes it)
        (SUBMISSION_STATES, "rejected", "approved"),
        (ROUND_STATES, "closed", "open"),
        (ROUND_STATES, "cancelled", "closed"),
        (TOURNAMENT_STATES, "settled", "cancelled"),  # prizes paid: no refund of fees after
        (TOURNAMENT_STATES, "cancelled", "settled"),  # fees refunded: no prizes after
        (BONUS_STATES, "completed", "forfeited"),  # converted money is cash, not bonus
        (BONUS_STATES, "expired", "active"),
    ],
)
def test_a_move_the_table_forbids_raises_409_and_changes_nothing(machine, current, to):
    row = SimpleNamespace(status=current)
    with pytest.raises(IllegalTransition) as refused:
        machine.move(row, to)
    assert refused.value.status == 409
    assert row.status == current


def test_sources_name_every_state_a_bulk_update_may_start_from():
    assert ROUND_STATES.sources("cancelled") == ("open",)
    assert WITHDRAWAL_STATES.sources("failed") == ("approved", "processing")
    assert WITHDRAWAL_STATES.sources("pending") == ()


def test_states_are_the_union_of_sources_and_targets():
    machine = StateMachine("thing", {"a": {"b"}, "b": {"c"}})
    assert machine.states == {"a", "b", "c"}
    assert machine.allows("a", "b")
    assert not machine.allows("c", "a")
