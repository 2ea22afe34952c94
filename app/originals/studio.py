"""JxOriginals studio service: launch, play, seed rotation, verification, recovery.

Invariants:
* The studio never touches the casino's wallet tables: every money movement is a signed
  callback (``wallet_client``) over HTTP. No database transaction is open while a callback is
  in flight; each step commits its own progress first so a crash leaves a recoverable round.
* A round's randomness is fixed before the bet is sent: (seed pair, nonce) is reserved under the
  seed row lock, the outcome computed and stored with the round. Nonces of a pair are unique
  (DB constraint), so no outcome can be drawn twice or chosen after the fact.
* Bet refused -> nothing moved, the round is ``rejected``. Bet answer unknown (network, 5xx) ->
  the bet is rolled back (same ``reference_transaction_id``, retried; the wallet makes it
  idempotent). Bet accepted -> the win (possibly 0) is owed and retried until acknowledged, then
  ``end_round``. ``retry_pending`` finishes whatever a crash or an outage left behind.
* Demo play moves only the session's play-money balance and never calls the wallet.
* Free rounds (``OriginalsFreeRound``, registered by the casino through ``StudioFreeRounds``)
  are played like any round with the grant's stake, but the bet callback carries
  ``free_round_id`` and amount 0: the player's stake is never taken. The studio counts the
  spins under the row lock; the casino consumes each again and is the authority (a refused or
  rolled-back free bet gives the studio's spin back).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.core import crypto
from app.core.base import iso_or_none as _iso
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, lock_one
from app.core.errors import (
    AccessDenied,
    AppError,
    AuthenticationError,
    InsufficientBalance,
    LimitExceeded,
    NotFound,
    ServiceUnavailable,
    ValidationError,
)
from app.core.extensions import db
from app.core.money import MoneyError, exponent, format_minor, normalize_currency, parse_minor
from app.originals import engine
from app.originals.games import GAMES, Dice, GameRuleError, get_game, outcome
from app.originals.models import (
    OriginalsCredential,
    OriginalsFreeRound,
    OriginalsRound,
    OriginalsSeed,
    OriginalsSession,
)
from app.originals.wallet_client import (
    PROVIDER_CODE,
    RequestsTransport,
    Transport,
    WalletClient,
    WalletRefused,
    WalletUnreachable,
)

log = logging.getLogger(__name__)

#: Bet limits in units of the currency (converted with its exponent).
MIN_BET = Decimal("0.10")
MAX_BET = Decimal("100.00")
#: Play money a demo session starts with, in units of the currency.
DEMO_BALANCE = Decimal("1000.00")
SESSION_TTL = timedelta(hours=4)
#: Pauses between attempts of a callback whose answer was lost (seconds).
RETRY_DELAYS = (0.0, 0.1, 0.3)
CLIENT_SEED_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class GameSessionNotFound(NotFound):
    message = "Game session not found; launch the game again from the casino"


class GameSessionExpired(AuthenticationError):
    code, message = "SESSION_EXPIRED", "Your game session has expired; launch the game again"


class RoundNotFound(NotFound):
    message = "Round not found"


class WalletUnavailable(ServiceUnavailable):
    message = "The casino wallet could not be reached"


# --- plumbing ---------------------------------------------------------------------------------


def provider_secret() -> str:
    """``JXORIGINALS_SECRET``, else the studio's stored secret (generated once, encrypted)."""
    configured = current_app.config.get("JXORIGINALS_SECRET")
    if configured:
        return configured
    with atomic():
        row = db.session.get(OriginalsCredential, PROVIDER_CODE)
        if row is None:
            row = OriginalsCredential(
                provider_code=PROVIDER_CODE,
                secret_encrypted=crypto.encrypt(secrets.token_urlsafe(32)),
            )
            try:
                with atomic():
                    db.session.add(row)
            except IntegrityError:  # a concurrent first call stored one first: use it
                row = db.session.get_one(OriginalsCredential, PROVIDER_CODE)
        return crypto.decrypt(row.secret_encrypted)


def transport() -> Transport:
    """The configured transport: a test may place its own in ``app.core.extensions``."""
    ext = current_app.extensions
    if "originals_transport" not in ext:
        base = current_app.config.get("JXORIGINALS_WALLET_URL") or current_app.config["PUBLIC_URL"]
        ext["originals_transport"] = RequestsTransport(base)
    return ext["originals_transport"]


def wallet_client() -> WalletClient:
    return WalletClient(
        transport(), provider_secret(), timeout=current_app.config["JXORIGINALS_TIMEOUT"]
    )


def _bet_limits(currency: str) -> tuple[int, int]:
    scale = 10 ** exponent(currency)
    return max(1, int(MIN_BET * scale)), int(MAX_BET * scale)


def _minor(answer: dict[str, Any], key: str, currency: str) -> int | None:
    try:
        return parse_minor(answer[key], currency)
    except (KeyError, MoneyError):
        return None


# --- seeds ------------------------------------------------------------------------------------


def _new_seed(player_ref: str, client_seed: str | None = None) -> OriginalsSeed:
    server_seed = engine.new_server_seed()
    seed = OriginalsSeed(
        player_ref=player_ref,
        server_seed_encrypted=crypto.encrypt(server_seed),
        server_seed_hash=engine.seed_hash(server_seed),
        client_seed=client_seed or engine.new_client_seed(),
        next_nonce=0,
        status="active",
    )
    db.session.add(seed)
    return seed


def _active_seed(player_ref: str) -> OriginalsSeed:
    """The player's active pair, locked; created (hash committed) when there is none."""
    seed = lock_one(
        OriginalsSeed, OriginalsSeed.player_ref == player_ref, OriginalsSeed.status == "active"
    )
    if seed is not None:
        return seed
    try:
        with atomic():
            seed = _new_seed(player_ref)
            db.session.flush()  # the partial unique index decides a race for the first pair
    except IntegrityError:
        seed = lock_one(
            OriginalsSeed,
            OriginalsSeed.player_ref == player_ref,
            OriginalsSeed.status == "active",
        )
        if seed is None:  # pragma: no cover - the winner's row must be visible now
            raise
    return seed


def _seed_view(seed: OriginalsSeed) -> dict[str, Any]:
    return {
        "server_seed_hash": seed.server_seed_hash,
        "server_seed": seed.server_seed,
        "client_seed": seed.client_seed,
        "next_nonce": seed.next_nonce,
        "status": seed.status,
        "revealed_at": _iso(seed.revealed_at),
    }


# --- launch -----------------------------------------------------------------------------------


def launch(
    game_code: str, *, casino_token: str | None, demo: bool, currency: str | None = None
) -> str:
    """Open (or reopen) a studio session for a launch URL; answers our own session token."""
    if game_code not in GAMES:
        raise NotFound("Unknown game")
    now = utcnow()
    if demo:
        try:
            cur = normalize_currency(currency or current_app.config["DEFAULT_CURRENCY"])
        except MoneyError as exc:
            raise ValidationError.field("currency", str(exc)) from None
        token = secrets.token_urlsafe(32)
        with atomic():
            demo_session = OriginalsSession(
                token=token,
                casino_session_token=None,
                player_ref=f"demo:{token}",
                game_code=game_code,
                demo=True,
                currency=cur,
                balance=parse_minor(DEMO_BALANCE, cur),
                expires_at=now + SESSION_TTL,
            )
            db.session.add(demo_session)
            _active_seed(demo_session.player_ref)
        return token
    if not casino_token:
        raise AuthenticationError("A session token from the casino is required")
    try:
        answer = wallet_client().call("authenticate", session_token=casino_token, game_id=game_code)
    except WalletRefused as exc:
        raise AuthenticationError(
            "The casino did not accept this game session; launch the game again"
        ) from exc
    except WalletUnreachable as exc:
        raise WalletUnavailable() from exc
    try:
        cur = normalize_currency(answer.get("currency"))
    except MoneyError:
        raise WalletUnavailable("The casino wallet answered without a valid currency") from None
    player = answer.get("player_id") or answer.get("user_id")
    player_ref = f"player:{player}" if player is not None else f"session:{casino_token}"
    with atomic():
        session = db.session.scalar(
            select(OriginalsSession).where(OriginalsSession.casino_session_token == casino_token)
        )
        if session is None:
            session = OriginalsSession(
                token=secrets.token_urlsafe(32),
                casino_session_token=casino_token,
                player_ref=player_ref,
                game_code=game_code,
                demo=False,
                currency=cur,
            )
            db.session.add(session)
        session.balance = _minor(answer, "balance", cur) or 0
        session.bonus_balance = _minor(answer, "bonus_balance", cur) or 0
        session.expires_at = now + SESSION_TTL
        _active_seed(session.player_ref)
        return session.token


def _session(token: str, *, lock: bool = False) -> OriginalsSession:
    criteria = (OriginalsSession.token == token,)
    if lock:
        session = lock_one(OriginalsSession, *criteria)
    else:
        session = db.session.scalar(select(OriginalsSession).where(*criteria))
    if session is None:
        raise GameSessionNotFound()
    if session.expires_at <= utcnow():
        raise GameSessionExpired()
    return session


def session_state(token: str) -> dict[str, Any]:
    with atomic():
        session = _session(token)
        seed = db.session.scalar(
            select(OriginalsSeed).where(
                OriginalsSeed.player_ref == session.player_ref, OriginalsSeed.status == "active"
            )
        )
        rounds = db.session.scalars(
            select(OriginalsRound)
            .where(OriginalsRound.session_id == session.id)
            .order_by(OriginalsRound.id.desc())
            .limit(20)
        ).all()
        game = get_game(session.game_code)
        low, high = _bet_limits(session.currency)
        return {
            "game": {"code": game.code, "name": game.name, **game.describe()},
            "demo": session.demo,
            "currency": session.currency,
            "balance": format_minor(session.balance, session.currency),
            "bonus_balance": format_minor(session.bonus_balance, session.currency),
            "min_bet": format_minor(low, session.currency),
            "max_bet": format_minor(high, session.currency),
            "seed": _seed_view(seed) if seed else None,
            "rounds": [_round_view(r) for r in rounds],
            "free_rounds": [] if session.demo else free_rounds_of(session),
            "expires_at": _iso(session.expires_at),
        }


# --- play -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    round_id: int
    round_ref: str
    game_code: str
    currency: str
    stake: int
    payout: int
    casino_token: str | None
    free_round: str | None = None

    @property
    def wallet_stake(self) -> int:
        """What the bet takes from the player's wallet: nothing on a free round."""
        return 0 if self.free_round else self.stake


class StudioFreeRounds:
    """The studio's free-rounds API, as the casino's ``FreeRoundsAdapter`` calls it (in
    process: the studio runs inside the casino; an outside studio would expose this over
    HTTP). Runs in the casino's claim transaction."""

    def create(self, offer: Any) -> str:
        row = OriginalsFreeRound(
            grant_ref=offer.grant_id,
            player_ref=f"player:{offer.player_id}",
            game_code=offer.game_external_id,
            currency=offer.currency,
            stake=offer.spin_value_minor,
            spins_total=offer.spins,
            spins_played=0,
            status="active",
            expires_at=offer.expires_at,
        )
        db.session.add(row)
        db.session.flush()
        return f"jxo-fr-{row.id}"

    def cancel(self, grant_id: str) -> None:
        row = lock_one(OriginalsFreeRound, OriginalsFreeRound.grant_ref == grant_id)
        if row is not None:
            row.status = "cancelled"


def free_rounds_of(session: OriginalsSession) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        select(OriginalsFreeRound)
        .where(
            OriginalsFreeRound.player_ref == session.player_ref,
            OriginalsFreeRound.game_code == session.game_code,
            OriginalsFreeRound.currency == session.currency,
            OriginalsFreeRound.status == "active",
            OriginalsFreeRound.spins_played < OriginalsFreeRound.spins_total,
            OriginalsFreeRound.expires_at > utcnow(),
        )
        .order_by(OriginalsFreeRound.expires_at)
    ).all()
    return [
        {
            "id": r.grant_ref,
            "remaining": r.spins_total - r.spins_played,
            "stake": format_minor(r.stake, r.currency),
            "currency": r.currency,
            "expires_at": _iso(r.expires_at),
        }
        for r in rows
    ]


def _take_free_spin(session: OriginalsSession, grant_ref: str) -> int:
    """Reserve one spin of the studio's record (locked); answers the spin's stake."""
    row = lock_one(OriginalsFreeRound, OriginalsFreeRound.grant_ref == grant_ref)
    if (
        row is None
        or session.demo
        or row.player_ref != session.player_ref
        or row.game_code != session.game_code
        or row.currency != session.currency
    ):
        raise ValidationError.field("free_round", "No such free rounds for this game")
    if row.status != "active" or row.expires_at <= utcnow():
        raise LimitExceeded("These free rounds are no longer available")
    if row.spins_played >= row.spins_total:
        raise LimitExceeded("No free rounds left")
    row.spins_played += 1
    return row.stake


def _give_free_spin_back(grant_ref: str) -> None:
    with atomic():
        row = lock_one(OriginalsFreeRound, OriginalsFreeRound.grant_ref == grant_ref)
        if row is not None and row.spins_played > 0:
            row.spins_played -= 1


def play(
    token: str, stake_raw: Any, params_raw: dict[str, Any], free_round: str | None = None
) -> dict[str, Any]:
    """One bet: reserve the nonce, fix the outcome, then settle it with the wallet. With
    ``free_round`` the round is one of the casino's free spins (its stake, not the player's)."""
    placed = _place(token, stake_raw, params_raw, free_round)
    if placed.casino_token is None:
        return round_view(placed.round_ref)
    client = wallet_client()
    try:
        answer = client.call(
            "bet",
            transaction_id=f"{placed.round_ref}:bet",
            round_id=placed.round_ref,
            game_id=placed.game_code,
            session_token=placed.casino_token,
            amount=format_minor(placed.wallet_stake, placed.currency),
            currency=placed.currency,
            free_round_id=placed.free_round,
        )
    except WalletRefused as exc:
        _mark(placed.round_id, "rejected", error_code=exc.code)
        if placed.free_round:
            _give_free_spin_back(placed.free_round)
        raise _player_error(exc) from None
    except WalletUnreachable:
        returned = _rollback_bet(placed.round_id, client)
        raise WalletUnavailable(
            "We could not confirm your bet with the casino; it was cancelled"
            + (" and your stake is back." if returned else " and will be refunded shortly."),
            round_id=placed.round_ref,
        ) from None
    _mark(placed.round_id, "win_pending", answer=answer)
    _settle(placed.round_id, client)
    return round_view(placed.round_ref)


def _place(
    token: str, stake_raw: Any, params_raw: dict[str, Any], free_round: str | None = None
) -> _Placed:
    with atomic():
        session = _session(token, lock=True)
        game = get_game(session.game_code)
        try:
            params = game.parse_params(params_raw)
        except GameRuleError as exc:
            raise ValidationError.field(exc.field, exc.message) from None
        if free_round is not None:
            stake = _take_free_spin(session, free_round)
        else:
            try:
                stake = parse_minor(stake_raw, session.currency)
            except MoneyError as exc:
                raise ValidationError.field("stake", str(exc)) from None
        low, high = _bet_limits(session.currency)
        if free_round is None and not low <= stake <= high:
            raise ValidationError.field(
                "stake",
                f"stake must be between {format_minor(low, session.currency)} and "
                f"{format_minor(high, session.currency)} {session.currency}",
            )
        if session.demo and stake > session.balance:
            raise InsufficientBalance("Not enough play money for this stake")
        seed = _active_seed(session.player_ref)
        nonce = seed.next_nonce
        seed.next_nonce = nonce + 1
        digest, result = outcome(
            game.code, params, crypto.decrypt(seed.server_seed_encrypted), seed.client_seed, nonce
        )
        payout = result.payout(stake)
        rnd = OriginalsRound(
            round_ref=f"jxo-{uuid.uuid4().hex}",
            session_id=session.id,
            seed_id=seed.id,
            nonce=nonce,
            game_code=game.code,
            demo=session.demo,
            currency=session.currency,
            stake=stake,
            params=params,
            digest=digest,
            result=result.detail,
            payout=payout,
            status="placing",
            free_round_ref=free_round,
        )
        if session.demo:
            session.balance += payout - stake
            rnd.status = "settled"
            rnd.balance_after = session.balance
            rnd.settled_at = utcnow()
        db.session.add(rnd)
        db.session.flush()  # the round id is what the later steps reload by
        return _Placed(
            rnd.id,
            rnd.round_ref,
            game.code,
            session.currency,
            stake,
            payout,
            session.casino_session_token,
            free_round,
        )


def _player_error(exc: WalletRefused) -> AppError:
    if exc.code == "INSUFFICIENT_FUNDS":
        return InsufficientBalance("Insufficient funds for this stake")
    if exc.code == "PLAYER_BLOCKED":
        return AccessDenied("Your account cannot place bets right now")
    if exc.code == "LIMIT_EXCEEDED":
        # The casino says which limit (a bonus's maximum bet, a loss limit...): pass it on.
        return LimitExceeded(
            exc.message.strip()[:200]
            or "This bet would exceed one of your limits (responsible gaming or bonus)"
        )
    if exc.code == "INVALID_SESSION":
        return GameSessionExpired()
    return WalletUnavailable(f"The casino refused the bet ({exc.code})")


def _mark(
    round_id: int,
    status: str,
    *,
    answer: dict[str, Any] | None = None,
    error_code: str | None = None,
    attempt: bool = False,
) -> None:
    with atomic():
        rnd = lock_existing(OriginalsRound, OriginalsRound.id == round_id)
        rnd.status = status
        if error_code is not None:
            rnd.error_code = error_code
        if attempt:
            rnd.attempts += 1
        if status in {"settled", "rolled_back", "rejected"}:
            rnd.settled_at = utcnow()
        if answer is not None:
            balance = _minor(answer, "balance", rnd.currency)
            if balance is not None:
                rnd.balance_after = balance
                session = lock_existing(OriginalsSession, OriginalsSession.id == rnd.session_id)
                session.balance = balance
                session.bonus_balance = _minor(answer, "bonus_balance", rnd.currency) or 0


def _call_with_retries(
    client: WalletClient, action: str, round_pk: int, /, **fields: Any
) -> dict[str, Any] | None:
    """The same callback (same transaction id) until answered; ``None`` if it never was."""
    for delay in RETRY_DELAYS:
        if delay:
            time.sleep(delay)
        try:
            return client.call(action, **fields)
        except WalletUnreachable:
            _mark_attempt(round_pk)
    return None


def _mark_attempt(round_id: int) -> None:
    with atomic():
        rnd = lock_existing(OriginalsRound, OriginalsRound.id == round_id)
        rnd.attempts += 1


@dataclass(frozen=True)
class _Pending:
    round_ref: str
    game_code: str
    currency: str
    stake: int
    payout: int
    status: str
    casino_token: str | None
    free_round: str | None = None


def _load(round_id: int) -> _Pending:
    with atomic():
        rnd = db.session.get_one(OriginalsRound, round_id)
        session = db.session.get_one(OriginalsSession, rnd.session_id)
        return _Pending(
            rnd.round_ref,
            rnd.game_code,
            rnd.currency,
            rnd.stake,
            rnd.payout or 0,
            rnd.status,
            session.casino_session_token,
            rnd.free_round_ref,
        )


def _rollback_bet(round_id: int, client: WalletClient) -> bool:
    """Cancel a bet whose answer was lost; True once the wallet acknowledged the rollback."""
    _mark(round_id, "rollback_pending")
    rnd = _load(round_id)
    try:
        answer = _call_with_retries(
            client,
            "rollback",
            round_id,
            transaction_id=f"{rnd.round_ref}:rollback",
            reference_transaction_id=f"{rnd.round_ref}:bet",
            round_id=rnd.round_ref,
            game_id=rnd.game_code,
            session_token=rnd.casino_token,
            # A free round took nothing from the wallet: its rollback gives nothing back.
            amount=format_minor(0 if rnd.free_round else rnd.stake, rnd.currency),
            currency=rnd.currency,
        )
    except WalletRefused as exc:
        log.error("rollback of round %s refused: %s", rnd.round_ref, exc)
        _mark(round_id, "rollback_pending", error_code=exc.code)
        return False
    if answer is None:
        log.warning("rollback of round %s not acknowledged yet; retry_pending will", rnd.round_ref)
        return False
    _mark(round_id, "rolled_back", answer=answer)
    if rnd.free_round:
        _give_free_spin_back(rnd.free_round)
    return True


def _settle(round_id: int, client: WalletClient) -> bool:
    """Send the owed win (may be 0) and close the round; True when both were acknowledged."""
    rnd = _load(round_id)
    common = {
        "round_id": rnd.round_ref,
        "game_id": rnd.game_code,
        "session_token": rnd.casino_token,
        "currency": rnd.currency,
    }
    if rnd.status == "win_pending":
        try:
            answer = _call_with_retries(
                client,
                "win",
                round_id,
                transaction_id=f"{rnd.round_ref}:win",
                amount=format_minor(rnd.payout, rnd.currency),
                **common,
            )
        except WalletRefused as exc:
            # The stake was taken and the result is fixed: this needs an operator, not a retry.
            log.error("win of round %s refused: %s", rnd.round_ref, exc)
            _mark(round_id, "win_pending", error_code=exc.code)
            return False
        if answer is None:
            return False
        _mark(round_id, "closing", answer=answer)
    try:
        answer = _call_with_retries(
            client,
            "end_round",
            round_id,
            transaction_id=f"{rnd.round_ref}:end",
            amount=format_minor(0, rnd.currency),
            **common,
        )
    except WalletRefused as exc:
        if exc.code != "ROUND_CLOSED":
            log.error("end_round of round %s refused: %s", rnd.round_ref, exc)
            _mark(round_id, "closing", error_code=exc.code)
            return False
        answer = exc.answer  # already closed on the casino's side: nothing left to do
    if answer is None:
        return False
    _mark(round_id, "settled", answer=answer if answer.get("status") == "ok" else None)
    return True


def retry_pending(older_than: timedelta = timedelta(seconds=30)) -> dict[str, int]:
    """Finish rounds an outage or a crash left behind (operator command and job)."""
    cutoff = utcnow() - older_than
    with atomic():
        rows = db.session.execute(
            select(OriginalsRound.id, OriginalsRound.status).where(
                OriginalsRound.status.in_(
                    ("placing", "rollback_pending", "win_pending", "closing")
                ),
                OriginalsRound.demo.is_(False),
                OriginalsRound.created_at < cutoff,
            )
        ).all()
    done = {"rolled_back": 0, "settled": 0, "still_pending": 0}
    if not rows:
        return done
    client = wallet_client()
    for round_id, status in rows:
        if status in {"placing", "rollback_pending"}:
            # A bet never acknowledged: its fate is unknown, so it is cancelled, never settled.
            ok = _rollback_bet(round_id, client)
            done["rolled_back" if ok else "still_pending"] += 1
        else:
            ok = _settle(round_id, client)
            done["settled" if ok else "still_pending"] += 1
    return done


# --- seeds and verification -------------------------------------------------------------------


def rotate_seed(token: str, client_seed: str | None) -> dict[str, Any]:
    """Reveal the active server seed and commit a new pair (new client seed, nonce 0)."""
    if client_seed is not None and not CLIENT_SEED_RE.match(client_seed):
        raise ValidationError.field(
            "client_seed", "1-64 characters: letters, digits, '.', '_' or '-'"
        )
    with atomic():
        session = _session(token)
        seed = _active_seed(session.player_ref)
        seed.status = "revealed"
        seed.server_seed = crypto.decrypt(seed.server_seed_encrypted)
        seed.revealed_at = utcnow()
        db.session.flush()  # the partial unique index must see the old pair retired first
        fresh = _new_seed(session.player_ref, client_seed)
        db.session.flush()
        return {"previous": _seed_view(seed), "current": _seed_view(fresh)}


def verify(
    game_code: str,
    server_seed: str,
    client_seed: str,
    nonce: int,
    params_raw: dict[str, Any],
    server_seed_hash: str | None = None,
) -> dict[str, Any]:
    """Recompute an outcome from its inputs (no database: anyone can check the studio)."""
    try:
        game = get_game(game_code)
        # A dice roll does not depend on the target: without one, show the roll alone.
        dice = game if isinstance(game, Dice) and not params_raw else None
        params = game.parse_params(params_raw) if dice is None else {}
    except GameRuleError as exc:
        raise ValidationError.field(exc.field, exc.message) from None
    computed_hash = engine.seed_hash(server_seed)
    if dice is not None:
        rnd = engine.RoundRandom(server_seed, client_seed, nonce)
        digest, detail = rnd.hex, {"roll": dice.format_roll(dice.roll(rnd))}
    else:
        digest, result = outcome(game.code, params, server_seed, client_seed, nonce)
        detail = result.detail
    return {
        "game": game.code,
        "server_seed_hash": computed_hash,
        "hash_matches": None if server_seed_hash is None else computed_hash == server_seed_hash,
        "hmac": digest,
        "nonce": nonce,
        "client_seed": client_seed,
        "result": detail,
    }


def _round_view(rnd: OriginalsRound) -> dict[str, Any]:
    return {
        "round_id": rnd.round_ref,
        "game": rnd.game_code,
        "demo": rnd.demo,
        "status": rnd.status,
        "currency": rnd.currency,
        "stake": format_minor(rnd.stake, rnd.currency),
        "free_round": rnd.free_round_ref,
        "payout": format_minor(rnd.payout or 0, rnd.currency),
        # The result is the player's only once the bet is accepted (or the round is demo).
        "result": rnd.result if rnd.status in {"win_pending", "closing", "settled"} else None,
        "params": rnd.params,
        "nonce": rnd.nonce,
        "balance": None
        if rnd.balance_after is None
        else format_minor(rnd.balance_after, rnd.currency),
        "error_code": rnd.error_code,
        "created_at": _iso(rnd.created_at),
    }


def round_view(round_ref: str) -> dict[str, Any]:
    """A round with its seed pair and, once the seed is revealed, an independent check."""
    with atomic():
        rnd = db.session.scalar(select(OriginalsRound).where(OriginalsRound.round_ref == round_ref))
        if rnd is None:
            raise RoundNotFound()
        seed = db.session.get_one(OriginalsSeed, rnd.seed_id)
        view = _round_view(rnd)
        view["seed"] = {
            "server_seed_hash": seed.server_seed_hash,
            "server_seed": seed.server_seed,
            "client_seed": seed.client_seed,
        }
        view["verification"] = verify_round(rnd, seed)
        return view


def verify_round(rnd: OriginalsRound, seed: OriginalsSeed) -> dict[str, Any]:
    """Recompute a stored round from its revealed seed; list every disagreement."""
    if seed.server_seed is None:
        return {"verified": None, "problems": [], "note": "rotate the seed pair to verify"}
    problems = []
    if engine.seed_hash(seed.server_seed) != seed.server_seed_hash:
        problems.append("revealed server seed does not match the committed hash")
    digest, result = outcome(
        rnd.game_code, rnd.params, seed.server_seed, seed.client_seed, rnd.nonce
    )
    if digest != rnd.digest:
        problems.append("round HMAC differs from the recomputed one")
    if result.detail != rnd.result:
        problems.append("stored result differs from the recomputed one")
    if result.payout(rnd.stake) != rnd.payout:
        problems.append("stored payout differs from the recomputed one")
    return {"verified": not problems, "problems": problems}


def game_catalog() -> list[dict[str, Any]]:
    """What the studio publishes for ``games import`` (external ids are our game codes).

    The casino's catalog keeps RTP to two decimals; the exact figure is on the rules page.
    """
    return [
        {
            "external_id": game.code,
            "name": game.name,
            "category": game.category,
            "type": game.category,
            "description": game.describe()["rules"],
            "rtp": str(game.rtp_percent.quantize(Decimal("0.01"), rounding=ROUND_DOWN)),
            "min_bet": str(MIN_BET),
            "max_bet": str(MAX_BET),
            "has_demo": True,
        }
        for game in GAMES.values()
    ]


#: The launch URL template the casino fills in (``games.build_launch_url`` placeholders).
LAUNCH_URL_TEMPLATE = (
    "/originals/launch/{game}?token={token}&currency={currency}&lang={lang}&demo={demo}"
)
