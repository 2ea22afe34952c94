"""What a referring *player* earns when the player they referred qualifies.

The referral programme (docs/engagement.md, "Referrals and affiliates") promises:
* a referrer who is an **Agent** earns the CPA of their commission plan (``cpa_amount`` for a
  referral whose first completed deposit reaches ``cpa_min_deposit``), paid with the period's
  commission statement (``affiliates.commissions``: once per referral ever);
* a referrer who is a **player** earns ``REFERRAL_REWARD_POINTS`` loyalty points (default 500)
  when the player they referred makes a first completed deposit of at least
  ``REFERRAL_MIN_DEPOSIT`` (default ``10.00``, in the deposit's currency); the points buy
  bonus money or free spins from the redemption catalogue (``bonus.redemption``).

Invariants:
* Runs in the deposit's transaction (``payments.hooks.deposit_completed``): the reward and the
  deposit commit together. Only the *first* completed deposit counts (a later, larger deposit
  does not qualify a small first one), as for the CPA.
* Once per referred player: the loyalty event's ``reference`` is ``referral:<referred id>``
  (unique, inserted ``ON CONFLICT DO NOTHING``), so a replayed webhook or a second run awards
  nothing. Audited (``referral.reward``).
* A self-excluded or blocked referrer earns nothing (marketing incentives are not offered to
  them); the decision is audited (``referral.reward_skipped``) and final.
* Points are not money: nothing here touches a wallet.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.bonus import loyalty
from app.compliance import responsible_gaming as rg
from app.core import audit, notifications
from app.core.errors import SelfExcluded
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import MoneyError, format_minor, parse_minor
from app.identity.models import PLAYER, User
from app.payments.models import PaymentTransaction
from app.play import guard as play_guard

log = logging.getLogger(__name__)


def rules() -> dict[str, Any]:
    cfg = current_app.config
    return {
        "points": int(cfg["REFERRAL_REWARD_POINTS"]),
        "min_deposit": str(cfg["REFERRAL_MIN_DEPOSIT"]),
    }


def reference_for(referred_id: int) -> str:
    return f"referral:{referred_id}"


def on_deposit_completed(txn: PaymentTransaction) -> None:
    """Payments hook, inside the deposit's transaction."""
    if txn.type != "deposit":
        return
    player = db.session.get(User, txn.user_id)
    if player is None or player.referred_by_id is None:
        return
    referrer = db.session.get(User, player.referred_by_id)
    if referrer is None or referrer.role_id != PLAYER:
        return  # an Agent's referral earns the CPA with the commission statement
    completed = db.session.scalar(
        select(func.count(PaymentTransaction.id)).where(
            PaymentTransaction.user_id == player.id,
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
        )
    )
    if completed != 1:
        return  # not the first deposit
    rule = rules()
    try:
        minimum = parse_minor(rule["min_deposit"], txn.currency)
    except MoneyError:
        # A misconfigured minimum never refuses a deposit; it pays no reward until fixed.
        log.error("REFERRAL_MIN_DEPOSIT %r is not an amount in %s", rule["min_deposit"],
                  txn.currency)  # fmt: skip
        return
    if rule["points"] <= 0 or txn.amount_minor < minimum:
        return
    reason = _skip_reason(referrer)
    if reason is not None:
        audit.record("referral.reward_skipped", target_type="user", target_id=referrer.id,
                     after={"referred": player.id, "reason": reason})  # fmt: skip
        return
    event_id = loyalty.award(
        referrer.id,
        rule["points"],
        kind="referral",
        reference=reference_for(player.id),
        currency=txn.currency,
        amount=txn.amount_minor,
    )
    if event_id is None:
        return  # already awarded
    audit.record(
        "referral.reward",
        target_type="user",
        target_id=referrer.id,
        after={
            "referred": player.id,
            "points": rule["points"],
            "loyalty_event": event_id,
            "first_deposit": format_minor(txn.amount_minor, txn.currency),
            "currency": txn.currency,
        },
    )
    notifications.notify(
        referrer.id,
        "referral",
        Msg("Referral reward"),
        Msg(
            "%(player)s made their first deposit: you earned %(points)s loyalty points.",
            player=player.username,
            points=rule["points"],
        ),
        data={"points": rule["points"]},
        dedupe_key=reference_for(player.id),
    )


def _skip_reason(referrer: User) -> str | None:
    try:
        rg.check_promotions_allowed(referrer)
    except SelfExcluded:
        return "self_excluded"
    if play_guard.status_blocks(referrer.status, referrer.status_until):
        return "restricted"
    return None
