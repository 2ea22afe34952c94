"""The home feed: what the lobby shows, in one call.

The public part (games, promotions, big wins) is the same for everyone, so it is cached in
Redis for ``HOME_CACHE_SECONDS`` (a cache outage only costs the queries). The personal part
(balances, bonus in progress, recent activity, quick stats) is never cached: it is money.
Big wins show a masked username only (privacy), never an id.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import desc, func, select

from app.bonus import bonuses, loyalty, promotions
from app.bonus.models import PlayerBonus
from app.core import notifications
from app.core.base import utcnow
from app.core.extensions import db, redis_store
from app.core.money import format_minor
from app.identity.models import User
from app.messaging.models import SupportTicket
from app.play.games import game_json
from app.play.models import Game, GameRound, Provider
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction

log = logging.getLogger(__name__)
CACHE_KEY = "jx:home:public:v1"
SECTION_SIZE = 12
#: A round is a big win when it paid at least this many times its stake.
BIG_WIN_MULTIPLIER = 10
BIG_WIN_WINDOW = timedelta(days=7)


def mask(username: str) -> str:
    if len(username) <= 2:
        return username[0] + "*"
    return f"{username[0]}{'*' * min(len(username) - 2, 5)}{username[-1]}"


def _games(order, *where) -> list[dict[str, Any]]:
    stmt = (
        select(Game)
        .join(Provider, Provider.id == Game.provider_id)
        .where(Game.status == "active", Provider.active.is_(True), *where)
        .order_by(*order)
        .limit(SECTION_SIZE)
    )
    return [game_json(g) for g in db.session.scalars(stmt).unique()]


def big_wins(limit: int = 10) -> list[dict[str, Any]]:
    since = utcnow() - BIG_WIN_WINDOW
    rows = db.session.execute(
        select(GameRound, Game.name, User.username)
        .join(Game, Game.id == GameRound.game_id)
        .join(User, User.id == GameRound.user_id)
        .where(
            GameRound.updated_at >= since,
            GameRound.total_bet > 0,
            GameRound.total_win >= GameRound.total_bet * BIG_WIN_MULTIPLIER,
        )
        .order_by(desc(GameRound.updated_at))
        .limit(limit)
    ).all()
    return [
        {
            "player": mask(username),
            "game_id": rnd.game_id,
            "game": name,
            "amount": format_minor(rnd.total_win, rnd.currency),
            "currency": rnd.currency,
            "multiplier": f"{rnd.total_win / rnd.total_bet:.1f}",
            "at": rnd.updated_at.isoformat(),
        }
        for rnd, name, username in rows
    ]


def _promotions() -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "name": p.name,
            "description": p.description,
            "image_url": p.image_url,
            "type": p.type,
            "currency": p.currency,
            "match_percent": p.match_percent,
            "max_bonus": None
            if p.max_bonus_minor is None
            else format_minor(p.max_bonus_minor, p.currency),
            "bonus_amount": format_minor(p.bonus_amount_minor, p.currency),
            "wagering_multiplier": p.wagering_multiplier,
            "ends_at": p.ends_at.isoformat() if p.ends_at else None,
        }
        for p in promotions.active_promotions()[:6]
    ]


def public_feed() -> dict[str, Any]:
    seconds = int(current_app.config.get("HOME_CACHE_SECONDS", 15))
    if seconds > 0:
        try:
            cached = redis_store.client().get(CACHE_KEY)
            if cached:
                return json.loads(cached)
        except RedisError:  # a cache outage must not take the lobby down
            log.warning("home cache unavailable", exc_info=True)
    feed = {
        "featured_games": _games((Game.sort_order, Game.id), Game.is_featured.is_(True)),
        "new_games": _games((desc(Game.created_at), desc(Game.id)), Game.is_new.is_(True)),
        "hot_games": _games((Game.sort_order, Game.id), Game.is_hot.is_(True)),
        "popular_games": _games((desc(Game.play_count), Game.id)),
        "promotions": _promotions(),
        "big_wins": big_wins(),
    }
    if seconds > 0:
        try:
            redis_store.client().set(CACHE_KEY, json.dumps(feed), ex=seconds)
        except RedisError:
            log.warning("home cache unavailable", exc_info=True)
    return feed


def personal_feed(user: User) -> dict[str, Any]:
    wallets = [
        {
            "currency": w.currency,
            "balance": format_minor(w.balance, w.currency),
            "bonus_balance": format_minor(w.bonus_balance, w.currency),
            "held_balance": format_minor(w.held_balance, w.currency),
        }
        for w in wallet.balances(user.id)
    ]
    bonus = db.session.scalar(
        select(PlayerBonus).where(PlayerBonus.user_id == user.id, PlayerBonus.status == "active")
    )
    recent = db.session.scalars(
        select(LedgerTransaction)
        .where(LedgerTransaction.user_id == user.id)
        .order_by(desc(LedgerTransaction.created_at), desc(LedgerTransaction.id))
        .limit(10)
    ).all()
    since = utcnow() - timedelta(days=30)
    wagered = db.session.execute(
        select(GameRound.currency, func.sum(GameRound.total_bet), func.count(GameRound.id))
        .where(GameRound.user_id == user.id, GameRound.created_at >= since)
        .group_by(GameRound.currency)
    ).all()
    open_tickets = db.session.scalar(
        select(func.count(SupportTicket.id)).where(
            SupportTicket.user_id == user.id, SupportTicket.status != "closed"
        )
    )
    return {
        "user": {"id": user.id, "username": user.username, "currency": user.currency},
        "wallets": wallets,
        "active_bonus": None if bonus is None else bonuses.bonus_json(bonus),
        "loyalty": loyalty.progress(user.id),
        "recent_activity": [
            {
                "id": tx.id,
                "type": tx.type,
                "amount": format_minor(tx.cash_delta + tx.bonus_delta, tx.currency),
                "currency": tx.currency,
                "description": tx.description,
                "at": tx.created_at.isoformat(),
            }
            for tx in recent
        ],
        "stats": {
            "wagered_30d": [
                {"currency": cur, "amount": format_minor(total or 0, cur), "rounds": n}
                for cur, total, n in wagered
            ],
            "unread_notifications": notifications.unread_count(user.id),
            "open_tickets": open_tickets,
        },
    }


def feed(user: User | None) -> dict[str, Any]:
    data = dict(public_feed())
    data["player"] = None if user is None else personal_feed(user)
    return data
