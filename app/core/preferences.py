"""Notification preferences: per user, per category, per channel; honoured by every sender.

Invariants:
* Channels: ``email`` (``app.core.mail``), ``sms`` (``app.core.sms``), ``push`` (stored for
  the mobile apps; no push sender exists yet) and ``in_app`` (``app.core.notifications``:
  the stored inbox entry and its live Socket.IO push).
* Categories and whether a player may turn them off are :data:`CATEGORIES`. ``security``
  (sign-in and verification codes, password resets), ``account`` (e-mail verification,
  payments, KYC, support replies) and ``responsible_gaming`` (reality checks) are mandatory:
  they reach the player whatever is stored, and turning them off is a 400. ``rewards`` and
  ``marketing`` are the player's choice; marketing also needs ``users.marketing_consent``
  (the legal opt-in, checked by the senders as before).
* Every channel of every category is on until the player turns it off; only choices are
  stored (``notification_preferences``), written with an audit row.
* Senders ask :func:`allowed` at queueing time, inside their transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.core import audit
from app.core.base import utcnow
from app.core.errors import ValidationError
from app.core.extensions import db
from app.core.models import NotificationPreference

CHANNELS = ("email", "sms", "push", "in_app")

#: category -> (mandatory, what it covers)
CATEGORIES: dict[str, tuple[bool, str]] = {
    "security": (True, "sign-in and verification codes, password resets, new sign-ins"),
    "account": (True, "e-mail verification, deposits and withdrawals, KYC, support replies"),
    "responsible_gaming": (True, "reality checks and limit notices"),
    "rewards": (False, "bonuses, free spins, loyalty, jackpots, lotteries, tournaments, referrals"),
    "marketing": (False, "promotions and newsletters (also needs marketing consent)"),
}
MANDATORY = frozenset(name for name, (mandatory, _) in CATEGORIES.items() if mandatory)

#: Stored notification types (``Notification.type``) -> category; anything else: ``account``.
TYPE_CATEGORIES: dict[str, str] = {
    "promotion": "marketing",
    "reality_check": "responsible_gaming",
    "loyalty": "rewards",
    "referral": "rewards",
    "commission": "account",
    "lottery_win": "rewards",
    "tournament_prize": "rewards",
    "jackpot_win": "rewards",
}
#: Prefixes of notification types -> category (bonus kinds: ``bonus_granted`` ...).
TYPE_PREFIXES: tuple[tuple[str, str], ...] = (("bonus", "rewards"), ("free_spin", "rewards"))


def category_of_type(type_: str) -> str:
    if type_ in TYPE_CATEGORIES:
        return TYPE_CATEGORIES[type_]
    for prefix, category in TYPE_PREFIXES:
        if type_.startswith(prefix):
            return category
    return "account"


def allowed(user_id: int | None, category: str, channel: str) -> bool:
    """May ``channel`` carry a ``category`` message to this user? Mandatory: always."""
    if user_id is None or category in MANDATORY:
        return True
    enabled = db.session.scalar(
        select(NotificationPreference.enabled).where(
            NotificationPreference.user_id == user_id,
            NotificationPreference.category == category,
            NotificationPreference.channel == channel,
        )
    )
    return enabled is None or bool(enabled)


def of(user_id: int) -> list[dict[str, Any]]:
    """Every category with its channels' state, for the player and the API."""
    stored = {
        (row.category, row.channel): row.enabled
        for row in db.session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user_id)
        )
    }
    return [
        {
            "category": name,
            "mandatory": mandatory,
            "description": description,
            "channels": {
                channel: True if mandatory else stored.get((name, channel), True)
                for channel in CHANNELS
            },
        }
        for name, (mandatory, description) in CATEGORIES.items()
    ]


def update(user_id: int, changes: dict[str, Any], *, actor: Any) -> list[dict[str, Any]]:
    """Apply ``{category: {channel: bool}}`` (caller's transaction); all validated first."""
    if not isinstance(changes, dict) or not changes:
        raise ValidationError.field("preferences", "Give {category: {channel: true|false}}")
    clean: list[tuple[str, str, bool]] = []
    for category, channels in changes.items():
        if category not in CATEGORIES:
            raise ValidationError.field(
                category, f"Unknown category; one of {', '.join(CATEGORIES)}"
            )
        if not isinstance(channels, dict) or not channels:
            raise ValidationError.field(category, "Give {channel: true|false}")
        for channel, enabled in channels.items():
            if channel not in CHANNELS:
                raise ValidationError.field(
                    f"{category}.{channel}", f"Unknown channel; one of {', '.join(CHANNELS)}"
                )
            if not isinstance(enabled, bool):
                raise ValidationError.field(f"{category}.{channel}", "true or false")
            if category in MANDATORY and not enabled:
                raise ValidationError.field(
                    f"{category}.{channel}",
                    f"{category} messages cannot be turned off (they protect the account)",
                )
            clean.append((category, channel, enabled))
    before = of(user_id)
    now = utcnow()
    for category, channel, enabled in clean:
        if category in MANDATORY:
            continue
        row = db.session.scalar(
            select(NotificationPreference).where(
                NotificationPreference.user_id == user_id,
                NotificationPreference.category == category,
                NotificationPreference.channel == channel,
            )
        )
        if row is None:
            db.session.add(
                NotificationPreference(
                    user_id=user_id,
                    category=category,
                    channel=channel,
                    enabled=enabled,
                    updated_at=now,
                )
            )
        elif row.enabled != enabled:
            row.enabled, row.updated_at = enabled, now
    db.session.flush()
    after = of(user_id)
    audit.record(
        "user.notification_preferences",
        actor=actor,
        target_type="user",
        target_id=user_id,
        before={c["category"]: c["channels"] for c in before},
        after={c["category"]: c["channels"] for c in after},
    )
    return after
