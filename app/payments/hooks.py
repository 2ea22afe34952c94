"""What other domains add to payments: checks before money moves, hooks after.

Every list is filled by ``app.hooks`` (bonus wagering, responsible-gaming deposit limits, AML
flags); payments never imports those domains. Each hook runs inside the payment's
transaction, so what it writes commits or rolls back with the payment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.identity.models import User
from app.payments.models import PaymentTransaction

#: ``check(user, amount_minor, currency)`` raises an ``AppError`` to refuse a deposit before
#: it is created (responsible-gaming exclusions and deposit limits). The caller holds the
#: player's row lock, so two creations cannot both pass a limit.
DepositCheck = Callable[[User, int, str], None]
#: Called inside a deposit's credit transaction, right after the wallet credit (wallet row
#: locked): ``hook(payment)``. Hooks must not raise for business reasons (a deposit is never
#: refused because of a bonus).
DepositHook = Callable[[PaymentTransaction], None]
#: Extra withdrawal rules (e.g. open bonus wagering): ``check(user_id, amount_minor,
#: currency)`` raises an ``AppError`` to refuse.
WithdrawalCheck = Callable[[int, int, str], None]
#: Called when the player asks to give up restricted funds (``forfeit_bonus``) with a
#: withdrawal: ``hook(user_id, currency, actor)``, inside the withdrawal's transaction and
#: before the checks, so a refused withdrawal forfeits nothing.
WithdrawalForfeit = Callable[[int, str, Any], None]
#: ``hook(kind, user_id=, reference=, severity=, details=)``: a refused webhook that staff
#: should review (late success, amount mismatch), written in the refusal's own transaction.
RefusalFlag = Callable[..., object]

_deposit_checks: list[DepositCheck] = []
_deposit_credited: list[DepositHook] = []
_deposit_completed: list[DepositHook] = []
_withdrawal_forfeits: list[WithdrawalForfeit] = []
_withdrawal_checks: list[WithdrawalCheck] = []
_withdrawal_requested: list[DepositHook] = []
_refusal_flags: list[RefusalFlag] = []


def _add(hooks: list[Any], hook: Any) -> None:
    if hook not in hooks:
        hooks.append(hook)


def register_deposit_check(check: DepositCheck) -> None:
    _add(_deposit_checks, check)


def register_deposit_credited(hook: DepositHook) -> None:
    """Runs right after the wallet credit (bonus deposit offers)."""
    _add(_deposit_credited, hook)


def register_deposit_completed(hook: DepositHook) -> None:
    """Runs once the deposit is recorded as completed and audited (AML velocity checks)."""
    _add(_deposit_completed, hook)


def register_withdrawal_forfeit(hook: WithdrawalForfeit) -> None:
    _add(_withdrawal_forfeits, hook)


def register_withdrawal_check(check: WithdrawalCheck) -> None:
    _add(_withdrawal_checks, check)


def register_withdrawal_requested(hook: DepositHook) -> None:
    """Runs once a withdrawal request holds its funds and is audited (AML checks)."""
    _add(_withdrawal_requested, hook)


def register_refusal_flag(hook: RefusalFlag) -> None:
    _add(_refusal_flags, hook)


def check_deposit(user: User, amount_minor: int, currency: str) -> None:
    for check in _deposit_checks:
        check(user, amount_minor, currency)


def deposit_credited(txn: PaymentTransaction) -> None:
    for hook in _deposit_credited:
        hook(txn)


def deposit_completed(txn: PaymentTransaction) -> None:
    for hook in _deposit_completed:
        hook(txn)


def forfeit_for_withdrawal(user_id: int, currency: str, actor: Any) -> None:
    for hook in _withdrawal_forfeits:
        hook(user_id, currency, actor)


def check_withdrawal(user_id: int, amount_minor: int, currency: str) -> None:
    for check in _withdrawal_checks:
        check(user_id, amount_minor, currency)


def withdrawal_requested(txn: PaymentTransaction) -> None:
    for hook in _withdrawal_requested:
        hook(txn)


def flag_refusal(flag: dict[str, Any]) -> None:
    for hook in _refusal_flags:
        hook(**flag)
