"""Game catalog, providers, favorites and launching a game session.

Invariants:
* A provider's callback secret is stored only encrypted and never leaves the service.
* A launch checks the player (status, play guard), the game and its provider (active), and the
  currency (provider plays it) before it creates a session; the session token is 256 random
  bits and expires (``GAME_SESSION_SECONDS``, default 4 h). Demo sessions move no money.
* ``favorite_count``/``play_count`` change with atomic SQL increments, never read-modify-write.
* Imports upsert by (provider, external_id): re-importing the same file changes nothing. An
  aggregator's list is mapped item by item (``game_lists``); a bad item fails alone.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from flask import current_app
from sqlalchemy import delete, func, or_, select, update

from app.core import audit, outbound
from app.core.base import utcnow
from app.core.crypto import (
    BadKey,
    check_rsa_public_pem,
    decrypt,
    encrypt,
    generate_rsa_private_key,
    rsa_public_pem,
)
from app.core.db import atomic, dialect_insert
from app.core.errors import AppError, Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor
from app.identity.models import PLAYER, User
from app.play import game_lists
from app.play import guard as play_guard
from app.play.callbacks import protocol as callback_protocol
from app.play.callbacks.adapters import ADAPTERS
from app.play.models import GAME_STATUSES, Game, GameCategory, GameFavorite, GameSession, Provider
from app.wallet import ledger as wallet

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,31}$")


class GameUnavailable(AppError):
    status, code, message = 400, "GAME_UNAVAILABLE", "This game is not available right now"


# --- providers -------------------------------------------------------------------------------


def _currencies(values: Iterable[str] | None) -> list[str]:
    out = []
    for value in values or []:
        try:
            out.append(normalize_currency(value))
        except MoneyError as exc:
            raise ValidationError.field("currencies", str(exc)) from None
    return sorted(set(out))


def _allowlist(values: Iterable[str] | None) -> list[str]:
    import ipaddress

    out = []
    for value in values or []:
        try:
            out.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise ValidationError.field("ip_allowlist", f"{value!r} is not an IP or CIDR") from None
    return out


def create_provider(
    *,
    code: str,
    name: str,
    secret: str | None = None,
    currencies: Iterable[str] | None = None,
    launch_url: str | None = None,
    protocol: str = "native",
    ip_allowlist: Iterable[str] | None = None,
    stale_round_policy: str = "refund",
    active: bool = True,
    peer_public_key: str | None = None,
    api_url: str | None = None,
    actor: Any = None,
) -> Provider:
    """Register a provider. A shared-secret protocol needs ``secret``; a key-pair protocol
    (Hub88) needs the aggregator's ``peer_public_key`` and gets a private key of ours,
    generated here (``provider_public_key`` gives its public half to the aggregator)."""
    code = (code or "").strip().lower()
    if not CODE_RE.match(code):
        raise ValidationError.field("code", "2-32 characters: a-z, 0-9, - and _")
    if not name or not name.strip():
        raise ValidationError.field("name", "A name is required")
    if protocol not in ADAPTERS:
        raise ValidationError.field("protocol", f"One of: {', '.join(ADAPTERS)}")
    key_pair = ADAPTERS[protocol].uses_key_pair
    private_key_enc = None
    if key_pair:
        peer_public_key = _peer_key(peer_public_key)
        if secret:
            raise ValidationError.field("secret", f"{protocol} signs with keys, not a secret")
        private_key_enc = encrypt(generate_rsa_private_key())
    else:
        if peer_public_key:
            raise ValidationError.field("public_key", f"{protocol} signs with a shared secret")
        if not secret or len(secret) < 16:
            raise ValidationError.field(
                "secret", "The callback secret needs at least 16 characters"
            )
    if stale_round_policy not in ("refund", "close"):
        raise ValidationError.field("stale_round_policy", "refund or close")
    with atomic():
        if db.session.scalar(select(Provider.id).where(Provider.code == code)):
            raise Conflict(f"Provider {code} already exists")
        provider = Provider(
            code=code,
            name=name.strip(),
            # A key-pair protocol has no shared secret: an empty one, encrypted like any.
            secret_enc=encrypt(secret or ""),
            peer_public_key=peer_public_key,
            private_key_enc=private_key_enc,
            api_url=_api_url(api_url),
            protocol=protocol,
            currencies=_currencies(currencies),
            ip_allowlist=_allowlist(ip_allowlist),
            launch_url=_launch_template(launch_url),
            stale_round_policy=stale_round_policy,
            active=active,
        )
        db.session.add(provider)
        db.session.flush()
        audit.record(
            "provider.create",
            actor=actor,
            target_type="provider",
            target_id=provider.id,
            after=provider_json(provider),
        )
    callback_protocol.clear_caches()
    return provider


def _peer_key(pem: str | None) -> str:
    text = (pem or "").strip()
    if not text:
        raise ValidationError.field("public_key", "The aggregator's public key (PEM) is required")
    try:
        return check_rsa_public_pem(text + "\n")
    except BadKey as exc:
        raise ValidationError.field("public_key", str(exc)) from None


def _api_url(url: str | None) -> str | None:
    text = (url or "").strip()
    if not text:
        return None
    if not text.startswith(("https://", "http://")) or len(text) > 500:
        raise ValidationError.field("api_url", "An http(s) URL of at most 500 characters")
    try:
        outbound.check_url(text)
    except outbound.OutboundRefused as exc:
        raise ValidationError.field("api_url", str(exc)) from None
    return text.rstrip("/")


def provider_public_key(code: str) -> str:
    """Our public key (PEM) for a key-pair provider: what the aggregator verifies us with."""
    provider = provider_by_code(code)
    if not provider.private_key_enc:
        raise ValidationError(f"Provider {provider.code} ({provider.protocol}) has no key pair")
    return rsa_public_pem(decrypt(provider.private_key_enc))


def _launch_template(url: str | None) -> str | None:
    if not url:
        return None
    url = url.strip()
    if not url.startswith(("http://", "https://", "/")):
        raise ValidationError.field("launch_url", "An absolute http(s) URL or a path")
    try:
        url.format_map(_TemplateProbe())
    except (ValueError, KeyError, IndexError) as exc:
        raise ValidationError.field("launch_url", f"Bad placeholder: {exc}") from None
    return url


class _TemplateProbe(dict):
    _KNOWN = frozenset({"token", "game", "currency", "lang", "demo", "provider"})

    def __missing__(self, key: str) -> str:
        if key not in self._KNOWN:
            raise KeyError(f"unknown placeholder {{{key}}}")
        return "x"


def update_provider(provider_id: int, changes: dict[str, Any], *, actor: Any = None) -> Provider:
    with atomic():
        provider = db.session.get(Provider, provider_id)
        if provider is None:
            raise NotFound("No such provider")
        before = provider_json(provider)
        if changes.get("name"):
            provider.name = changes["name"].strip()
        if "active" in changes and changes["active"] is not None:
            provider.active = bool(changes["active"])
        if "currencies" in changes and changes["currencies"] is not None:
            provider.currencies = _currencies(changes["currencies"])
        if "ip_allowlist" in changes and changes["ip_allowlist"] is not None:
            provider.ip_allowlist = _allowlist(changes["ip_allowlist"])
        if "launch_url" in changes:
            provider.launch_url = _launch_template(changes["launch_url"])
        if changes.get("stale_round_policy"):
            if changes["stale_round_policy"] not in ("refund", "close"):
                raise ValidationError.field("stale_round_policy", "refund or close")
            provider.stale_round_policy = changes["stale_round_policy"]
        if changes.get("secret"):
            if ADAPTERS[provider.protocol].uses_key_pair:
                raise ValidationError.field("secret", "This protocol signs with keys")
            if len(changes["secret"]) < 16:
                raise ValidationError.field("secret", "At least 16 characters")
            provider.secret_enc = encrypt(changes["secret"])
        if changes.get("peer_public_key"):
            if not ADAPTERS[provider.protocol].uses_key_pair:
                raise ValidationError.field("public_key", "This protocol signs with a secret")
            provider.peer_public_key = _peer_key(changes["peer_public_key"])
        if "api_url" in changes:
            provider.api_url = _api_url(changes["api_url"])
        provider.updated_at = utcnow()
        after = provider_json(provider)
        if changes.get("secret"):
            after["secret_rotated"] = True
        if changes.get("peer_public_key"):
            after["peer_key_changed"] = True
        audit.record(
            "provider.update",
            actor=actor,
            target_type="provider",
            target_id=provider.id,
            before=before,
            after=after,
        )
    callback_protocol.clear_caches()
    return provider


def provider_json(provider: Provider, *, staff: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": provider.id,
        "code": provider.code,
        "name": provider.name,
        "logo_url": provider.logo_url,
        "currencies": list(provider.currencies or []),
    }
    if staff:
        data.update(
            protocol=provider.protocol,
            active=provider.active,
            ip_allowlist=list(provider.ip_allowlist or []),
            launch_url=provider.launch_url,
            api_url=provider.api_url,
            stale_round_policy=provider.stale_round_policy,
            created_at=provider.created_at,
        )
    return data


def list_providers(*, active_only: bool) -> list[Provider]:
    stmt = select(Provider).order_by(Provider.name)
    if active_only:
        stmt = stmt.where(Provider.active.is_(True))
    return list(db.session.scalars(stmt))


def provider_by_code(code: str) -> Provider:
    provider = db.session.scalar(select(Provider).where(Provider.code == code.strip().lower()))
    if provider is None:
        raise NotFound(f"No provider {code}")
    return provider


# --- categories and games --------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")[:50] or "other"


def category_for(name_or_slug: str | None) -> GameCategory | None:
    if not name_or_slug:
        return None
    slug = _slug(name_or_slug)
    category = db.session.scalar(select(GameCategory).where(GameCategory.slug == slug))
    if category is None:
        category = GameCategory(slug=slug, name=name_or_slug.strip().title()[:100])
        db.session.add(category)
        db.session.flush()
    return category


def list_categories() -> list[dict[str, Any]]:
    counts = (
        select(Game.category_id, func.count(Game.id).label("n"))
        .where(Game.status == "active")
        .group_by(Game.category_id)
        .subquery()
    )
    rows = db.session.execute(
        select(GameCategory, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.category_id == GameCategory.id)
        .order_by(GameCategory.sort_order, GameCategory.name)
    ).all()
    return [
        {"id": c.id, "slug": c.slug, "name": c.name, "icon": c.icon, "games_count": n}
        for c, n in rows
    ]


_GAME_FIELDS = {
    "name": str,
    "game_type": str,
    "description": str,
    "volatility": str,
    "thumbnail_url": str,
    "banner_url": str,
    "is_featured": bool,
    "is_new": bool,
    "is_hot": bool,
    "has_demo": bool,
    "sort_order": int,
}


def _rtp(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        rtp = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError.field("rtp", "RTP must be a number of percent") from None
    if not rtp.is_finite() or rtp <= 0 or rtp > 100 or rtp != rtp.quantize(Decimal("0.01")):
        raise ValidationError.field("rtp", "RTP is a percentage above 0, at most 100.00")
    return rtp


def _bet_limit(value: Any, name: str) -> int:
    # Stake limits are stored in minor units of a 2-decimal currency (the catalog default).
    if value is None or value == "":
        return 0
    try:
        return parse_minor(value, "EUR")
    except MoneyError as exc:
        raise ValidationError.field(name, str(exc)) from None


def apply_game_fields(game: Game, data: dict[str, Any]) -> None:
    for key, kind in _GAME_FIELDS.items():
        if key in data and data[key] is not None:
            setattr(game, key, kind(data[key]))
    if data.get("thumbnail"):
        game.thumbnail_url = str(data["thumbnail"])
    if data.get("type"):
        game.game_type = str(data["type"])
    if "rtp" in data:
        game.rtp = _rtp(data["rtp"])
    if "min_bet" in data:
        game.min_bet = _bet_limit(data["min_bet"], "min_bet")
    if "max_bet" in data:
        game.max_bet = _bet_limit(data["max_bet"], "max_bet")
    if (game.max_bet or 0) < (game.min_bet or 0):
        raise ValidationError.field("max_bet", "max_bet must not be below min_bet")
    if "status" in data and data["status"] is not None:
        if data["status"] not in GAME_STATUSES:
            raise ValidationError.field("status", f"one of {', '.join(GAME_STATUSES)}")
        game.status = data["status"]
    if data.get("category"):
        category = category_for(str(data["category"]))
        if category is None:  # only for an empty name, which a truthy value never gives
            raise ValidationError.field("category", "A category name is required")
        game.category_id = category.id


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] | None = None
    games: list[dict[str, Any]] | None = None


def game_list_items(
    provider_code: str, payload: Any, format: str | None = "native"
) -> tuple[str, list[Any]]:
    """The format (``None``: the provider's protocol, so a list goes in as downloaded) and the
    items of a game list; ``game_lists.NotAGameList`` when the payload holds none."""
    if format is None:
        format = provider_by_code(provider_code).protocol
    fmt = game_lists.get_format(format)
    return fmt.name, game_lists.unwrap(fmt, payload)


def import_games(
    provider_code: str,
    items: Any,
    *,
    format: str | None = "native",
    actor: Any = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert a provider's games by ``external_id``. ``items`` is a game list in ``format``
    (``game_lists.FORMATS``; ``None``: the provider's protocol): each item is mapped onto our
    fields, a bad one is reported with its index and the others still import."""
    format, items = game_list_items(provider_code, items, format)
    map_item = game_lists.FORMATS[format].map_item
    errors: list[dict[str, Any]] = []
    games: list[dict[str, Any]] = []
    report = ImportReport(errors=errors, games=games)
    with atomic():
        provider = provider_by_code(provider_code)
        existing = {
            g.external_id: g
            for g in db.session.scalars(select(Game).where(Game.provider_id == provider.id))
        }
        for index, item in enumerate(items):
            try:
                item = map_item(item)
                external = str(item.get("external_id") or item.get("id") or "").strip()
                name = str(item.get("name") or "").strip()
                if not external or not name:
                    raise ValidationError("external_id and name are required")
                with atomic():
                    game = existing.get(external)
                    created = game is None
                    if game is None:
                        game = Game(provider_id=provider.id, external_id=external[:100], name=name)
                        db.session.add(game)
                    apply_game_fields(game, item)
                    game.slug = game.slug or _slug(f"{provider.code}-{name}")[:200]
                    db.session.flush()
                existing[external] = game
                if created:
                    report.imported += 1
                else:
                    report.updated += 1
                games.append(
                    {
                        "id": game.id,
                        "external_id": external,
                        "name": game.name,
                        "status": "imported" if created else "updated",
                    }
                )
            except AppError as exc:
                report.failed += 1
                errors.append({"index": index, "message": exc.message, "errors": exc.errors or []})
            if progress:
                progress(1)
        audit.record(
            "games.import",
            actor=actor,
            target_type="provider",
            target_id=provider.id,
            after={
                "format": format,
                "imported": report.imported,
                "updated": report.updated,
                "failed": report.failed,
            },
        )
    callback_protocol.clear_caches()
    return report


def update_game(game_id: int, data: dict[str, Any], *, actor: Any = None) -> Game:
    with atomic():
        game = db.session.get(Game, game_id)
        if game is None:
            raise NotFound("No such game")
        before = game_json(game, staff=True)
        apply_game_fields(game, data)
        game.updated_at = utcnow()
        db.session.flush()
        audit.record(
            "game.update",
            actor=actor,
            target_type="game",
            target_id=game.id,
            before=before,
            after=game_json(game, staff=True),
        )
    callback_protocol.clear_caches()
    return game


def game_json(game: Game, *, staff: bool = False, favorite: bool | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": game.id,
        "external_id": game.external_id,
        "name": game.name,
        "slug": game.slug,
        "provider": game.provider.name,
        "provider_code": game.provider.code,
        "category": game.category.slug if game.category else None,
        "type": game.game_type,
        "description": game.description,
        "rtp": None if game.rtp is None else str(game.rtp),
        "volatility": game.volatility,
        "min_bet": format_minor(game.min_bet or 0, "EUR"),
        "max_bet": format_minor(game.max_bet or 0, "EUR"),
        "thumbnail": game.thumbnail_url,
        "banner": game.banner_url,
        "is_featured": game.is_featured,
        "is_new": game.is_new,
        "is_hot": game.is_hot,
        "has_demo": game.has_demo,
        "play_count": game.play_count,
        "favorite_count": game.favorite_count,
    }
    if favorite is not None:
        data["is_favorite"] = favorite
    if staff:
        data.update(
            status=game.status,
            sort_order=game.sort_order,
            created_at=game.created_at,
            updated_at=game.updated_at,
        )
    return data


@dataclass
class GameFilter:
    provider: str | None = None
    category: str | None = None
    featured: bool | None = None
    new: bool | None = None
    hot: bool | None = None
    search: str | None = None
    status: str | None = "active"
    type: str | None = None


def search_games(f: GameFilter, *, offset: int, limit: int) -> tuple[list[Game], int]:
    stmt = select(Game).join(Provider, Provider.id == Game.provider_id)
    if f.status:
        stmt = stmt.where(Game.status == f.status)
    if f.status == "active":
        stmt = stmt.where(Provider.active.is_(True))
    if f.provider:
        value = f.provider.strip().lower()
        stmt = stmt.where(or_(Provider.code == value, func.lower(Provider.name) == value))
    if f.category:
        stmt = stmt.join(GameCategory, GameCategory.id == Game.category_id).where(
            or_(
                GameCategory.slug == _slug(f.category),
                func.lower(GameCategory.name) == f.category.strip().lower(),
            )
        )
    for flag, column in (
        (f.featured, Game.is_featured),
        (f.new, Game.is_new),
        (f.hot, Game.is_hot),
    ):
        if flag is not None:
            stmt = stmt.where(column.is_(flag))
    if f.type:
        stmt = stmt.where(Game.game_type == f.type)
    if f.search:
        term = f"%{f.search.strip().lower().replace('%', '').replace('_', '')}%"
        stmt = stmt.where(
            or_(func.lower(Game.name).like(term), func.lower(Provider.name).like(term))
        )
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = db.session.scalars(
        stmt.order_by(Game.sort_order, Game.is_featured.desc(), Game.play_count.desc(), Game.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), int(total or 0)


def get_game(game_id: int, *, include_inactive: bool = False) -> Game:
    game = db.session.get(Game, game_id)
    if game is None or (
        not include_inactive and (game.status != "active" or not game.provider.active)
    ):
        raise NotFound("No such game")
    return game


def favorites(user_id: int) -> list[Game]:
    return list(
        db.session.scalars(
            select(Game)
            .join(GameFavorite, GameFavorite.game_id == Game.id)
            .where(GameFavorite.user_id == user_id)
            .order_by(GameFavorite.created_at.desc(), GameFavorite.id.desc())
        )
    )


def add_favorite(user_id: int, game_id: int) -> bool:
    with atomic():
        get_game(game_id)
        added = db.session.execute(
            dialect_insert(GameFavorite)
            .values(user_id=user_id, game_id=game_id, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["user_id", "game_id"])
            .returning(GameFavorite.id)
        ).scalar_one_or_none()
        if added is not None:
            db.session.execute(
                update(Game)
                .where(Game.id == game_id)
                .values(favorite_count=Game.favorite_count + 1)
                .execution_options(synchronize_session=False)
            )
    return added is not None


def remove_favorite(user_id: int, game_id: int) -> bool:
    with atomic():
        removed = db.session.execute(
            delete(GameFavorite)
            .where(GameFavorite.user_id == user_id, GameFavorite.game_id == game_id)
            .returning(GameFavorite.id)
        ).scalar_one_or_none()
        if removed is not None:
            db.session.execute(
                update(Game)
                .where(Game.id == game_id, Game.favorite_count > 0)
                .values(favorite_count=Game.favorite_count - 1)
                .execution_options(synchronize_session=False)
            )
    return removed is not None


def toggle_favorite(user_id: int, game_id: int) -> bool:
    """Add the game to favorites, or remove it if it is there; returns the new state."""
    with atomic():
        if remove_favorite(user_id, game_id):
            return False
        return add_favorite(user_id, game_id)


# --- launch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    launch_url: str
    session_token: str
    expires_at: datetime
    demo: bool
    currency: str
    game_id: int


def session_ttl() -> int:
    return int(current_app.config.get("GAME_SESSION_SECONDS", 4 * 3600))


def launch(
    user: User,
    game_id: int,
    *,
    demo: bool = False,
    currency: str | None = None,
    lang: str | None = None,
    ip: str | None = None,
) -> Launch:
    """Open a game session for the player and build the provider's launch URL."""
    if user.role_id != PLAYER:
        raise ValidationError("Only player accounts can play")
    try:
        play_guard.check_play_allowed(user.id, user.status, user.status_until)
    except play_guard.PlayerBlocked:
        raise play_guard.PlayerBlocked("This account may not play right now") from None
    try:
        currency = normalize_currency(currency or user.currency)
    except MoneyError as exc:
        raise ValidationError.field("currency", str(exc)) from None
    with atomic():
        game = db.session.get(Game, game_id)
        if game is None:
            raise NotFound("No such game")
        provider = game.provider
        if game.status != "active" or not provider.active:
            raise GameUnavailable()
        if demo and not game.has_demo:
            raise ValidationError.field("demo", "This game has no demo mode")
        if provider.currencies and currency not in provider.currencies:
            raise ValidationError.field("currency", f"{provider.name} does not offer {currency}")
        if not demo:
            wallet.get_or_create_wallet(user.id, currency)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        session = GameSession(
            token=token,
            user_id=user.id,
            game_id=game.id,
            provider_id=provider.id,
            currency=currency,
            demo=demo,
            ip=ip,
            created_at=now,
            expires_at=now + timedelta(seconds=session_ttl()),
        )
        db.session.add(session)
        db.session.execute(
            update(Game)
            .where(Game.id == game.id)
            .values(play_count=Game.play_count + 1)
            .execution_options(synchronize_session=False)
        )
        url = build_launch_url(
            provider, game, token, currency=currency, demo=demo, lang=lang or user.language or "en"
        )
    return Launch(url, token, session.expires_at, demo, currency, game.id)


def build_launch_url(
    provider: Provider, game: Game, token: str, *, currency: str, demo: bool, lang: str
) -> str:
    values = {
        "token": quote(token, safe=""),
        "game": quote(game.external_id, safe=""),
        "currency": quote(currency, safe=""),
        "lang": quote(lang, safe=""),
        "demo": "1" if demo else "0",
        "provider": quote(provider.code, safe=""),
    }
    template = provider.launch_url or (
        f"{current_app.config['PUBLIC_URL']}/play/{{provider}}/{{game}}"
        "?token={token}&currency={currency}&lang={lang}&demo={demo}"
    )
    url = template.format_map(values)
    if "{token}" not in template:
        url += ("&" if "?" in url else "?") + f"token={values['token']}"
    if template.startswith("/"):
        url = current_app.config["PUBLIC_URL"] + url
    return url
