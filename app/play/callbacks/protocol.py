"""The callback protocol every wire adapter speaks: requests, results, error codes, and the
provider's configuration (cached per process: it is read on every callback)."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.core.crypto import decrypt
from app.core.extensions import db
from app.core.money import MoneyError, format_minor
from app.play.models import Game, Provider

log = logging.getLogger(__name__)


#: The one error code that means "nothing happened, send it again" (an outage, a busy
#: wallet). Every other error is final: a retry or a replay gets the same refusal.
RETRYABLE_CODE = "INTERNAL_ERROR"


class CallbackError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        balances: tuple | None = None,
        follow_up: Callable[[], None] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: A finer cause inside ``code`` for protocols that tell them apart (``expired`` for an
        #: INVALID_SESSION, ``currency`` for a VALIDATION_ERROR); native answers ignore it.
        self.reason = reason
        #: (balance, bonus_balance, currency) when the answer should show them.
        self.balances = balances
        #: Written in its own transaction once the refused callback's is rolled back (a
        #: staff flag about the refusal).
        self.follow_up = follow_up


@dataclass
class CallbackRequest:
    action: str
    transaction_id: str | None = None
    round_id: str | None = None
    game_id: str | None = None
    session_token: str | None = None
    #: Our player id, for protocols that name the player instead of the session (Pragmatic).
    player_id: int | None = None
    amount: Any = None
    currency: Any = None
    reference_transaction_id: str | None = None
    #: jackpot_win: our id of the jackpot pool the provider reports as won.
    jackpot_id: Any = None
    #: promo_win: the provider's promotion (tournament, prize drop) that awards the prize.
    campaign_id: Any = None
    #: Protocols without a currency field: the player's session currency applies.
    currency_from_player: bool = False
    #: A free round: the provider plays one spin of this free-spin grant (amount 0).
    free_round_id: str | None = None
    #: ``freespins`` (an aggregator's report of a whole free-rounds grant): whether every
    #: spin was played (else the grant expired or was cancelled there).
    free_rounds_played: bool = False
    #: ``amount`` is an integer of minor units of the currency the wallet core resolves (a
    #: report that names no currency: the grant's).
    amount_in_minor: bool = False
    #: The provider closes the round with this bet or win (Hub88 ``round_closed``): applied
    #: like an ``end_round`` in the same transaction.
    close_round: bool = False
    #: ``action == "batch"``: several money actions (bets, wins, rollbacks) applied in ONE
    #: transaction, each idempotent by its own ``transaction_id`` (SoftSwiss ``play``); one
    #: refusal rolls them all back.
    batch: list[CallbackRequest] = field(default_factory=list)
    payload: Any = None


@dataclass
class CallbackResult:
    status: str
    code: str | None = None
    message: str | None = None
    balance: int | None = None
    bonus_balance: int | None = None
    currency: str | None = None
    transaction_id: str | None = None
    user_id: int | None = None
    duplicate: bool = False
    balance_before: int | None = None
    #: See ``CallbackError.reason``.
    reason: str | None = None
    #: A refund/rollback whose referenced transaction we never saw (answered ok natively, a
    #: tombstone now refuses the late bet; some protocols answer "does not exist").
    reference_unknown: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_native(self) -> dict[str, Any]:
        if not self.ok:
            body: dict[str, Any] = {"status": "error", "code": self.code, "message": self.message}
            if self.balance is not None and self.currency:
                body["balance"] = format_minor(self.balance, self.currency)
                body["bonus_balance"] = format_minor(self.bonus_balance or 0, self.currency)
                body["currency"] = self.currency
            return body
        currency = self.currency
        if currency is None:
            # Every action answers ok in the player's currency; without one the amounts
            # cannot be rendered (as ``format_minor`` itself would refuse).
            raise MoneyError("Unsupported currency None")
        body = {
            "status": "ok",
            "balance": format_minor(self.balance or 0, currency),
            "bonus_balance": format_minor(self.bonus_balance or 0, currency),
            "currency": currency,
            "transaction_id": self.transaction_id,
        }
        body.update(self.extra)
        return body


@dataclass(frozen=True)
class ProviderConfig:
    id: int
    code: str
    name: str
    secret: str
    protocol: str
    currencies: tuple[str, ...]
    networks: tuple[Any, ...]
    active: bool
    #: The aggregator's public key (PEM) that verifies its signatures (Hub88).
    peer_public_key: str | None = None
    #: Our private key (PEM, decrypted) that signs our answers (Hub88).
    private_key: str | None = None
    #: The aggregator's own API (free rounds, game lists), for protocols that have one.
    api_url: str | None = None

    @property
    def source(self) -> str:
        return f"provider:{self.code}"

    def ip_allowed(self, ip: str | None) -> bool:
        if not self.networks:
            return True
        try:
            addr = ipaddress.ip_address(ip or "")
        except ValueError:
            return False
        return any(addr in net for net in self.networks)


_provider_cache: dict[str, tuple[float, ProviderConfig | None]] = {}


_game_cache: dict[tuple[int, str], tuple[float, tuple[int, str] | None]] = {}


def _cache_ttl() -> float:
    default = 0.0 if current_app.testing else 5.0
    return float(current_app.config.get("PROVIDER_CACHE_SECONDS", default))


def clear_caches() -> None:
    _provider_cache.clear()
    _game_cache.clear()


#: One loader at a time per process: at the start of a burst every request misses the cold
#: cache together; one reads the provider, the others wait for its answer.
_provider_loading = threading.Lock()


def last_known_provider(code: str) -> ProviderConfig | None:
    """The provider as this process last read it, however old, without asking the database
    (to answer in its protocol while the database is unreachable)."""
    hit = _provider_cache.get(code)
    return None if hit is None else hit[1]


def provider_config(code: str) -> ProviderConfig | None:
    hit = _provider_cache.get(code)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    with _provider_loading:
        hit = _provider_cache.get(code)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        return _load_provider(code, now)


def _load_provider(code: str, now: float) -> ProviderConfig | None:
    row = db.session.scalar(select(Provider).where(Provider.code == code))
    config = None
    if row is not None:
        networks = []
        for item in row.ip_allowlist or []:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                log.warning("provider %s: ignoring bad allow-list entry %r", code, item)
        config = ProviderConfig(
            id=row.id,
            code=row.code,
            name=row.name,
            secret=decrypt(row.secret_enc),
            protocol=row.protocol,
            currencies=tuple(row.currencies or ()),
            networks=tuple(networks),
            active=row.active,
            peer_public_key=row.peer_public_key,
            private_key=decrypt(row.private_key_enc) if row.private_key_enc else None,
            api_url=row.api_url,
        )
    ttl = _cache_ttl()
    if ttl > 0:
        _provider_cache[code] = (now + ttl, config)
    return config


def cached_game(provider: ProviderConfig, external_id: str) -> tuple[int, str] | None:
    """(game id, status) of the provider's game ``external_id``."""
    key = (provider.id, external_id)
    now = time.monotonic()
    hit = _game_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = db.session.execute(
        select(Game.id, Game.status).where(
            Game.provider_id == provider.id, Game.external_id == external_id
        )
    ).one_or_none()
    found = None if row is None else (row.id, row.status)
    ttl = _cache_ttl()
    if ttl > 0:
        _game_cache[key] = (now + ttl, found)
    return found
