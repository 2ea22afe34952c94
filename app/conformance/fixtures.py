"""The runner's own players, providers, game and sessions, set up in the deployment's database
through the domain services, idempotently, all named ``conformance-<protocol>...``.

Every run resets the test players' balances (audited staff-style adjustments without an
actor), reactivates them, and issues fresh game sessions the way ``POST /api/games/play``
does (``app.play.games.launch``). A self-excluded player cannot be un-excluded, so each run
creates one more (``conformance-<protocol>-excluded-<run>``). Runs against one deployment
must not overlap.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from app.bonus import promotions
from app.bonus.models import FreeSpinGrant, Promotion
from app.compliance import responsible_gaming
from app.conformance.aggregator import AggregatorApi
from app.conformance.base import Credentials, PlayerSession
from app.core import audit, settings
from app.core.base import utcnow
from app.core.crypto import decrypt, encrypt, generate_rsa_private_key, rsa_public_pem
from app.core.db import atomic
from app.core.extensions import db
from app.identity import users as users_service
from app.identity.models import PLAYER, User
from app.play import aggregator_api, games
from app.play.callbacks.adapters import ADAPTERS
from app.play.models import Game, GameSession, Provider
from app.wallet import ledger as wallet

CURRENCY = "EUR"
GAME = "conformance-slot"
#: Balances every run starts from (minor units).
START = 100_00
RACER_START = 5_00
#: The limited player's daily wager limit.
WAGER_LIMIT = 1_00


class SetupError(Exception):
    """The deployment cannot host the runner's fixtures (a name taken by something else)."""


@dataclass
class Setup:
    run_id: str
    creds: Credentials
    other: Credentials
    main: PlayerSession
    second: PlayerSession
    racer: PlayerSession
    suspended: PlayerSession
    excluded: PlayerSession
    limited: PlayerSession
    #: The main player's session that has expired.
    expired: PlayerSession
    #: The main player's session with the other provider.
    foreign: PlayerSession

    #: The aggregator's API played by the runner (protocols with free rounds through it).
    aggregator: AggregatorApi | None = None
    #: The free-spins promotion on the provider's game that grants through ``aggregator``.
    free_rounds_promotion: int | None = None

    def suspend(self, s: PlayerSession) -> None:
        _set_status(s.user_id, "suspended")

    def close(self) -> None:
        if self.aggregator is not None:
            self.aggregator.close()


def provider_code(protocol: str, suffix: str = "") -> str:
    return f"conformance-{protocol}{suffix}"


def prepare(protocol: str) -> Setup:
    """Create or refresh everything a run needs; returns the sessions and credentials."""
    run_id = secrets.token_hex(4)
    code, other_code = provider_code(protocol), provider_code(protocol, "-other")
    creds, changed = _provider(code, protocol)
    other, other_changed = _provider(other_code, protocol)
    if changed or other_changed:
        # A running server caches provider configuration this long: let it see the new key.
        time.sleep(float(current_app.config.get("PROVIDER_CACHE_SECONDS", 5.0)) + 0.5)
    game = _game(code)
    other_game = _game(other_code)

    def player(label: str, balance: int = START) -> User:
        user = _player(f"{code}-{label}")
        _set_status(user.id, "active")
        _set_balance(user.id, balance, run_id)
        return user

    def session(user: User, on: Game, label: str) -> PlayerSession:
        token = games.launch(user, on.id, currency=CURRENCY).session_token
        return PlayerSession(user.id, token, CURRENCY, on.external_id, label)

    main = player("main")
    second = player("second")
    racer = player("racer", RACER_START)
    suspended = player("suspended")
    limited = player("limited")
    with atomic():
        responsible_gaming.set_limit(
            limited, limit_type="wager", period="daily", value=WAGER_LIMIT, currency=CURRENCY
        )
    excluded_user = player(f"excluded-{run_id}")
    excluded = session(excluded_user, game, "excluded")
    responsible_gaming.self_exclude(excluded_user, "24_hours", reason="conformance runner")
    expired = session(main, game, "expired")
    with atomic():
        db.session.execute(
            update(GameSession)
            .where(GameSession.token == expired.token)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    aggregator = promotion = None
    if protocol in aggregator_api.CLIENTS:
        # The provider's API is the runner's listener for this run (set like staff would).
        aggregator = AggregatorApi(protocol, creds)
        if not current_app.config.get("OUTBOUND_ALLOW_LOOPBACK"):
            aggregator.close()
            raise SetupError(
                "the runner's aggregator listens on 127.0.0.1: set OUTBOUND_ALLOW_LOOPBACK=true "
                "for the server and the runner (a staging deployment, never real production; the "
                "production profile also needs OUTBOUND_LOOPBACK_IN_PRODUCTION)"
            )
        games.update_provider(games.provider_by_code(code).id, {"api_url": aggregator.url})
        promotion = _free_rounds_promotion(code, game)
    return Setup(
        aggregator=aggregator,
        free_rounds_promotion=promotion,
        run_id=run_id,
        creds=creds,
        other=other,
        main=session(main, game, "main"),
        second=session(second, game, "second"),
        racer=session(racer, game, "racer"),
        suspended=session(suspended, game, "suspended"),
        excluded=excluded,
        limited=session(limited, game, "limited"),
        expired=expired,
        foreign=session(main, other_game, "foreign"),
    )


def _provider(code: str, protocol: str) -> tuple[Credentials, bool]:
    """The provider's signing credentials, and whether its key just changed."""
    adapter = ADAPTERS[protocol]
    row = db.session.scalar(select(Provider).where(Provider.code == code))
    if row is not None and row.protocol != protocol:
        raise SetupError(f"provider {code} exists with protocol {row.protocol}")
    changed = False
    if adapter.uses_key_pair:
        key = _aggregator_key(code)
        public = rsa_public_pem(key)
        if row is None:
            games.create_provider(
                code=code,
                name=f"Conformance {protocol}",
                protocol=protocol,
                peer_public_key=public,
                currencies=[CURRENCY],
            )
        elif (row.peer_public_key or "").strip() != public.strip():
            games.update_provider(row.id, {"peer_public_key": public})
            changed = True
        creds = Credentials(code, private_key=key, answer_key=games.provider_public_key(code))
    else:
        if row is None:
            games.create_provider(
                code=code,
                name=f"Conformance {protocol}",
                protocol=protocol,
                secret=secrets.token_urlsafe(32),
                currencies=[CURRENCY],
            )
        secret = decrypt(games.provider_by_code(code).secret_enc)
        creds = Credentials(code, secret=secret)
    provider = games.provider_by_code(code)
    if not provider.active:
        games.update_provider(provider.id, {"active": True})
        changed = True
    return creds, changed


def _aggregator_key(code: str) -> str:
    """The private key the runner signs with as the aggregator, kept (encrypted) in the
    settings so that reruns match the provider's registered public key."""
    name = f"conformance.{code}.aggregator_key"
    stored = settings.get(name)
    if stored:
        return decrypt(stored)
    key = generate_rsa_private_key()
    with atomic():
        settings.put(name, encrypt(key), reason="conformance runner: simulated aggregator key")
    return key


def _game(code: str) -> Game:
    item = {"external_id": GAME, "name": "Conformance Slot", "category": "slots"}
    provider = games.provider_by_code(code)
    existing = db.session.scalar(
        select(Game).where(Game.provider_id == provider.id, Game.external_id == GAME)
    )
    if existing is None or existing.status != "active":
        games.import_games(code, [{**item, "status": "active"}])
    return db.session.scalars(
        select(Game).where(Game.provider_id == provider.id, Game.external_id == GAME)
    ).one()


def _player(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None:
        if user.role_id != PLAYER:
            raise SetupError(f"user {username} exists and is not a player")
        return user
    with atomic():
        user = users_service.create_user(
            username=username,
            email=f"{username}@conformance.invalid",
            password=secrets.token_urlsafe(24),
            currency=CURRENCY,
            enforce_policy=False,
        )
    return user


def _set_status(user_id: int, status: str) -> None:
    with atomic():
        user = db.session.get_one(User, user_id)
        if user.status == status:
            return
        before = {"status": user.status}
        user.status, user.status_until = status, None
        user.status_reason = "conformance runner" if status != "active" else None
        audit.record(
            "conformance.player_status",
            target_type="user",
            target_id=user_id,
            before=before,
            after={"status": status},
        )


def _set_balance(user_id: int, cash: int, run_id: str) -> None:
    """Bring the player's wallet to ``cash`` and no bonus, with audited adjustments."""
    w = wallet.get_or_create_wallet(user_id, CURRENCY)
    db.session.refresh(w)
    for balance_type, have, want in (("cash", w.balance, cash), ("bonus", w.bonus_balance, 0)):
        if have != want:
            wallet.adjust(
                user_id,
                CURRENCY,
                want - have,
                reason="conformance runner: test balance",
                balance_type=balance_type,
                idempotency_key=f"conformance:{run_id}:{user_id}:{balance_type}",
            )


#: The free-spins promotion's terms: no wagering, so a free-round win is cash at once.
FREE_SPINS = 3
FREE_SPIN_VALUE = 1_00


def _free_rounds_promotion(code: str, game: Game) -> int:
    name = f"{code} free rounds"
    row = db.session.scalar(
        select(Promotion).where(Promotion.name == name, Promotion.free_spins_game_id == game.id)
    )
    if row is None:
        row = promotions.create_promotion(
            {
                "name": name,
                "description": "conformance runner: free rounds through the aggregator's API",
                "type": "free_spins",
                "currency": CURRENCY,
                "free_spins_count": FREE_SPINS,
                "free_spins_game_id": game.id,
                "free_spin_value_minor": FREE_SPIN_VALUE,
                "wagering_multiplier": 0,
                "max_claims_per_player": 1,
            }
        )
    if row.status != "active":
        promotions.set_status(row.id, "active")
    return row.id


def grant_free_rounds(setup: Setup, protocol: str, label: str) -> tuple[PlayerSession, int]:
    """A new player of this run (no balance) with a game session, who claims the free-rounds
    promotion as a player would: the grant goes out through the aggregator's API once the
    claim commits. Answers the session and the grant's id."""
    if setup.free_rounds_promotion is None:
        raise SetupError(f"{protocol} has no free rounds through an aggregator's API")
    code = provider_code(protocol)
    user = _player(f"{code}-fr{label}-{setup.run_id}")
    game = _game(code)
    token = games.launch(user, game.id, currency=CURRENCY).session_token
    bonus = promotions.claim(user, setup.free_rounds_promotion)
    grant_id = db.session.scalars(
        select(FreeSpinGrant.id).where(FreeSpinGrant.bonus_id == bonus.id)
    ).one()
    return PlayerSession(user.id, token, CURRENCY, game.external_id, f"fr{label}"), grant_id


def grant_row(grant_id: int) -> FreeSpinGrant:
    """The grant as it stands now (the server and the after-commit issue changed it)."""
    db.session.expire_all()
    return db.session.get_one(FreeSpinGrant, grant_id)
