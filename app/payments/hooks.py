"""What other domains add to payments: checks before money moves, hooks after.

Every point is filled by ``app.hooks`` (bonus wagering, responsible-gaming deposit limits, AML
flags); payments never imports those domains. Each runs inside the payment's transaction, so
what a hook writes commits or rolls back with the payment; a check refuses by raising an
``AppError``.
"""

from __future__ import annotations

from typing import Any

from app.core.registry import Hooks
from app.identity.models import User
from app.payments.models import PaymentTransaction

#: ``(user, amount_minor, currency)`` before a deposit is created (exclusions, deposit
#: limits). The caller holds the player's row lock: two creations cannot both pass a limit.
deposit_checks: Hooks[[User, int, str]] = Hooks()
#: ``(payment)`` right after the wallet credit (wallet row locked). Must not raise for
#: business reasons: a deposit is never refused because of a bonus.
deposit_credited: Hooks[[PaymentTransaction]] = Hooks()
#: ``(payment)`` once the deposit is recorded as completed and audited (AML velocity).
deposit_completed: Hooks[[PaymentTransaction]] = Hooks()
#: ``(user_id, currency, actor)`` when the player gives up restricted funds with a withdrawal
#: (``forfeit_bonus``), before the checks: a refused withdrawal forfeits nothing.
withdrawal_forfeits: Hooks[[int, str, Any]] = Hooks()
#: ``(user_id, amount_minor, currency)`` extra withdrawal rules (open bonus wagering).
withdrawal_checks: Hooks[[int, int, str]] = Hooks()
#: ``(payment)`` once a withdrawal request holds its funds and is audited (AML checks).
withdrawal_requested: Hooks[[PaymentTransaction]] = Hooks()
#: ``(kind, user_id=, reference=, severity=, details=)``: a refused webhook staff should
#: review (late success, amount mismatch), written in the refusal's own transaction.
refusal_flags: Hooks[...] = Hooks()
