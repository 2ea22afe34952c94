"""Spending loyalty points on the operator's rewards (the redemption catalogue).

Rules:
* The catalogue is data (``LoyaltyReward``, operator-managed): each item costs ``points`` and
  buys a bonus on the terms of its promotion (currency, wagering multiplier, max bet, max
  cash-out, validity): ``bonus_amount_minor`` of bonus money (ledger ``bonus_grant`` through
  ``promotions.grant_reward``), or, for a ``free_spins`` promotion, its spins on its game
  (``free_spins.grant``). The promotion is a template: it need not be running, and claim
  limits and windows do not apply.
* One transaction per redemption: the player's wallet row (the reward's currency), then the
  loyalty account row are locked (``FOR UPDATE``); the balance is checked under the lock; the
  points are taken (a ``redemption`` event of ``-points``, ``points -= cost``,
  ``redeemed_points += cost``) and the bonus granted; all of it commits together or nothing
  does. Two redemptions racing wait on the account row: they never spend more than the
  balance (``CHECK points >= 0`` is the last guard).
* Spending points never lowers the level: the level follows the points earned
  (``points + redeemed_points``, see ``bonus.loyalty``).
* Refusals change nothing: unknown or inactive item 404; not enough points 409
  ``INSUFFICIENT_POINTS``; self-excluded 403 ``SELF_EXCLUDED``; blocked account or staff 403
  ``REWARD_NOT_AVAILABLE``; a bonus already open in that currency 409 ``BONUS_OPEN`` (one
  contract per wallet).
* Idempotent: with a request key the redemption event's ``reference`` is
  ``redemption:<user>:<key>`` (unique) and the bonus's ``trigger_ref`` is
  ``loyalty:<event id>``; the API's ``Idempotency-Key`` replays the first answer.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select, update

from app.bonus import bonuses, loyalty, promotions
from app.bonus.models import LoyaltyAccount, LoyaltyEvent, LoyaltyReward, PlayerBonus, Promotion
from app.core import audit
from app.core.base import utcnow
from app.core.db import atomic
from app.core.errors import AppError, NotFound, SelfExcluded, ValidationError
from app.core.extensions import db
from app.core.money import MoneyError, format_minor, parse_minor
from app.identity.models import User
from app.wallet import ledger as wallet


class InsufficientPoints(AppError):
    status, code, message = 409, "INSUFFICIENT_POINTS", "Not enough loyalty points"


class RewardUnavailable(AppError):
    status, code, message = 403, "REWARD_NOT_AVAILABLE", "This reward is not available to you"


class BonusOpen(AppError):
    status, code = 409, "BONUS_OPEN"
    message = "You already have a bonus in progress; finish or forfeit it first"


def _active_rewards() -> list[tuple[LoyaltyReward, Promotion]]:
    rows = db.session.execute(
        select(LoyaltyReward, Promotion)
        .join(Promotion, Promotion.id == LoyaltyReward.promotion_id)
        .where(LoyaltyReward.active.is_(True))
        .order_by(LoyaltyReward.points, LoyaltyReward.id)
    ).all()
    return [(r, p) for r, p in rows]


def reward_json(r: LoyaltyReward, p: Promotion, points: int | None = None) -> dict[str, Any]:
    free = p.type == "free_spins"
    out: dict[str, Any] = {
        "id": r.id,
        "code": r.code,
        "name": r.name,
        "points": r.points,
        "kind": "free_spins" if free else "bonus",
        "currency": p.currency,
        "bonus_amount": None if free else format_minor(r.bonus_amount_minor or 0, p.currency),
        "free_spins": p.free_spins_count if free else None,
        "free_spin_value": format_minor(p.free_spin_value_minor or 0, p.currency) if free else None,
        "game_id": p.free_spins_game_id if free else None,
        "wagering_multiplier": p.wagering_multiplier,
        "bonus_valid_days": p.bonus_valid_days,
    }
    if points is not None:
        out["affordable"] = points >= r.points
        out["points_missing"] = max(r.points - points, 0)
    return out


def catalogue(user_id: int | None) -> dict[str, Any]:
    """The active rewards, cheapest first, with what the player can afford."""
    account = db.session.get(LoyaltyAccount, user_id) if user_id else None
    points = account.points if account else 0
    return {
        "points": points,
        "items": [reward_json(r, p, points) for r, p in _active_rewards()],
    }


def _reward(key: int | str) -> LoyaltyReward:
    q = select(LoyaltyReward).where(LoyaltyReward.active.is_(True))
    if isinstance(key, int) or str(key).isdigit():
        q = q.where(LoyaltyReward.id == int(key))
    else:
        q = q.where(LoyaltyReward.code == str(key))
    found = db.session.scalar(q)
    if found is None:
        raise NotFound("Reward not found")
    return found


def _reference(user_id: int, request_key: str | None) -> str:
    if request_key is None:
        return f"redemption:{user_id}:{secrets.token_hex(16)}"
    digest = hashlib.sha256(request_key.encode()).hexdigest()[:40]
    return f"redemption:{user_id}:{digest}"


def redeem(user: User, reward_key: int | str, *, request_key: str | None = None) -> dict[str, Any]:
    """Spend points on one reward (see the module docstring); the redemption as JSON."""
    with atomic():
        reward = _reward(reward_key)
        promo = db.session.get_one(Promotion, reward.promotion_id)
        reference = _reference(user.id, request_key)
        done = db.session.scalar(select(LoyaltyEvent).where(LoyaltyEvent.reference == reference))
        if done is not None:  # the same request again: the first redemption
            return _redemption_json(done, reward, promo, user.id)
        wallet.lock(user.id, promo.currency)
        account = db.session.scalar(
            select(LoyaltyAccount)
            .where(LoyaltyAccount.user_id == user.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        refused = promotions.reward_refusal(user, promo.currency)
        if refused is not None:
            reason, detail = refused
            if reason == "self_excluded":
                raise SelfExcluded(detail)
            if reason == "bonus_open":
                raise BonusOpen(detail, reason=reason)
            raise RewardUnavailable(detail, reason=reason)
        have = account.points if account is not None else 0
        if account is None or have < reward.points:
            raise InsufficientPoints(
                f"This reward costs {reward.points} points; you have {have}",
                points=have,
                required=reward.points,
            )
        event = LoyaltyEvent(
            user_id=user.id,
            kind="redemption",
            points=-reward.points,
            currency=promo.currency,
            amount=reward.bonus_amount_minor or 0,
            reference=reference,
            created_at=utcnow(),
        )
        db.session.add(event)
        db.session.flush()
        db.session.execute(
            update(LoyaltyAccount)
            .where(LoyaltyAccount.user_id == user.id)
            .values(
                points=LoyaltyAccount.points - reward.points,
                redeemed_points=LoyaltyAccount.redeemed_points + reward.points,
                updated_at=utcnow(),
            )
        )
        db.session.expire(account)
        bonus = promotions.grant_reward(
            user,
            promo.id,
            reward.bonus_amount_minor,
            f"loyalty:{event.id}",
            description=reward.name,
        )
        audit.record(
            "loyalty.redeem",
            actor=user,
            target_type="loyalty_event",
            target_id=event.id,
            after={"reward": reward.code, "points": reward.points, "bonus": bonus.id},
        )
        return _redemption_json(event, reward, promo, user.id)


def _redemption_json(
    event: LoyaltyEvent, reward: LoyaltyReward, promo: Promotion, user_id: int
) -> dict[str, Any]:
    bonus = db.session.scalar(
        select(PlayerBonus).where(PlayerBonus.trigger_ref == f"loyalty:{event.id}")
    )
    return {
        "id": event.id,
        "reward": reward_json(reward, promo),
        "points_spent": -event.points,
        "bonus": bonuses.bonus_json(bonus) if bonus is not None else None,
        "loyalty": loyalty.progress(user_id),
        "created_at": event.created_at.isoformat(),
    }


# --- staff: the catalogue ---------------------------------------------------------------------


def admin_put(data: dict[str, Any], actor: Any = None) -> dict[str, Any]:
    """Create or update (by ``code``) a catalogue item; audited. ``bonus_amount`` (a decimal in
    the promotion's currency) is required for bonus money, ignored for free spins."""
    with atomic():
        promo = db.session.get(Promotion, data["promotion_id"])
        if promo is None:
            raise NotFound("Promotion not found")
        amount: int | None = None
        if promo.type != "free_spins":
            raw = data.get("bonus_amount")
            try:
                amount = parse_minor(raw, promo.currency) if raw is not None else 0
            except MoneyError as exc:
                raise ValidationError.field("bonus_amount", str(exc)) from None
            if amount <= 0:
                raise ValidationError.field("bonus_amount", "Required for a bonus-money reward")
        row = db.session.scalar(select(LoyaltyReward).where(LoyaltyReward.code == data["code"]))
        before = None
        if row is None:
            row = LoyaltyReward(code=data["code"], created_at=utcnow())
            db.session.add(row)
        else:
            before = {
                "points": row.points,
                "active": row.active,
                "name": row.name,
                "promotion": row.promotion_id,
                "bonus_amount": row.bonus_amount_minor,
            }
        row.name = data["name"]
        row.points = data["points"]
        row.promotion_id = promo.id
        row.bonus_amount_minor = amount
        row.active = data.get("active", True)
        db.session.flush()
        audit.record("loyalty.reward", actor=actor, target_type="loyalty_reward",
                     target_id=row.id, before=before,
                     after={"code": row.code, "points": row.points, "active": row.active,
                            "promotion": promo.id, "bonus_amount": amount})  # fmt: skip
        return reward_json(row, promo)
