"""Seamless wallet: what a game provider's callbacks do to a player's money.

Wire adapters (``app.play.callbacks.adapters``) verify the signature and turn the wire
format into a ``CallbackRequest`` (``protocol``); ``handle`` applies it, logs it
(``log.record``) and returns a ``CallbackResult``.

Invariants:
* Idempotency first: a money callback claims ``(provider, transaction_id)`` with
  ``INSERT ... ON CONFLICT DO NOTHING`` before taking any lock. A duplicate gets the first
  answer (same content) or ``DUPLICATE_MISMATCH`` (different content) and moves nothing.
  Bets, wins and reversals read an existing claim and its answer with the session (one
  statement): a duplicate answers from it before the bet checks, without a lock, whatever
  changed since (a since-banned player, an expired session get the stored first answer).
* Validation (session, player status, currency, precision, game) happens before anything is
  written or locked, except for a first bet on PostgreSQL: its session read also claims and
  locks the wallet (``_with_claim``, one round trip less) and the checks then run under that
  lock; a refusal raises and rolls the claim and the lock back, so the outcome is the same.
  The wallet lock is held only for the checks, the round update and the ledger insert.
* Every change a callback makes to a player's rounds and money happens under that player's
  wallet row lock, so bets, wins, refunds and rollbacks of one player are serialized.
* Any refusal raises ``CallbackError`` inside the transaction: nothing is written except the
  callback log row.
* A refund/rollback of a bet we never saw leaves a tombstone under the bet's id and answers
  ok; the late bet is then refused. A bet is reversed at most once, whatever ids arrive.
* A bet naming ``free_round_id`` is a free spin (the free-rounds contract on
  ``app.play.seams``, i.e. ``app.bonus.free_spins``): amount 0, one spin of the grant
  consumed under the wallet lock; the round's win is paid as bonus money (ledger
  ``bonus_grant``), not as a game win.
* Wins, refunds and rollbacks need no live session (providers settle after the player left)
  but must match the round's player, round and currency. A win that names its bet
  (``reference_transaction_id``) needs that bet, received, in that round.
* A promotion prize the provider awards outside any round (``promo_win``: a tournament or
  prize drop of the provider's own) is a cash win once per ``transaction_id``; like any win
  it needs no live session and pays a suspended player.
* A bet or win with ``close_round`` closes its round in the same transaction. A closed round
  takes no more bets; a cancelled (stale-settled) round takes nothing.
* A ``batch`` (SoftSwiss ``play``: several bets and wins, or rollbacks, in one request)
  applies its actions in order inside the one transaction of ``handle``: one refusal rolls
  them all back; each action is claimed by its own ``transaction_id``, so a retry of the whole
  request replays every action and answers the same transactions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, overload

from flask import current_app
from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)

from app.core.base import iso_or_none as _iso
from app.core.base import utcnow
from app.core.db import (
    atomic,
    core_execute,
    first_mapping,
    parse_row_id,
    returned_by_writes,
    table_of,
    with_writes,
)
from app.core.errors import AppError, InsufficientBalance, outage_kind
from app.core.extensions import db
from app.core.gates import GateBusy, KeyedGate
from app.core.money import MoneyError, exponent, format_minor, normalize_currency, parse_minor
from app.identity.models import User
from app.play import events as play_events
from app.play import guard as play_guard
from app.play import seams
from app.play.callbacks import log as callback_log
from app.play.callbacks.protocol import (
    RETRYABLE_CODE,
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
    cached_game,
)
from app.play.models import (
    GameRound,
    GameSession,
    ProviderCallback,
    ProviderTransaction,
)
from app.wallet import ledger as wallet
from app.wallet.ledger import Companion, hot_statement
from app.wallet.models import LedgerTransaction, Wallet

log = logging.getLogger(__name__)


# --- request parsing -------------------------------------------------------------------------


@overload
def _text(value: Any, name: str, *, required: Literal[True] = True, limit: int = 100) -> str: ...


@overload
def _text(value: Any, name: str, *, required: bool, limit: int = 100) -> str | None: ...


def _text(value: Any, name: str, *, required: bool = True, limit: int = 100) -> str | None:
    if value is None or value == "":
        if required:
            raise CallbackError("VALIDATION_ERROR", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CallbackError("VALIDATION_ERROR", f"{name} must be a string")
    text = str(value)
    if len(text) > limit:
        raise CallbackError("VALIDATION_ERROR", f"{name} is longer than {limit} characters")
    return text


def _currency(value: Any) -> str:
    try:
        return normalize_currency(value)
    except MoneyError as exc:
        raise CallbackError("VALIDATION_ERROR", f"currency: {exc}", reason="currency") from None


@overload
def _money(
    req: CallbackRequest, player: _Player, *, amount_required: Literal[True] = True
) -> tuple[str, int]: ...


@overload
def _money(
    req: CallbackRequest, player: _Player, *, amount_required: bool
) -> tuple[str, int | None]: ...


def _money(
    req: CallbackRequest, player: _Player, *, amount_required: bool = True
) -> tuple[str, int | None]:
    if req.currency is None and req.currency_from_player:
        currency = player.currency
    else:
        currency = _currency(req.currency)
    return currency, _amount(req.amount, currency, required=amount_required)


@overload
def _amount(value: Any, currency: str, *, required: Literal[True] = True) -> int: ...


@overload
def _amount(value: Any, currency: str, *, required: bool) -> int | None: ...


def _amount(value: Any, currency: str, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise CallbackError("VALIDATION_ERROR", "amount is required")
        return None
    try:
        return parse_minor(value, currency)
    except MoneyError as exc:
        raise CallbackError("VALIDATION_ERROR", f"amount: {exc}") from None


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class _Player:
    user_id: int
    currency: str
    status: str
    status_until: datetime | None
    game_id: int | None
    live: bool
    #: The bet checks' probes, read with the session (``play.guard.probe_columns``).
    probed: dict[Any, Any] | None = None
    #: The claim already made under this callback's transaction id and its stored answer,
    #: read with the session (``_prior_columns``): a duplicate answers from it.
    prior: Any = None
    #: The answer the session read logged for this duplicate (``_with_duplicate_log``), or
    #: ``None`` when it wrote no log row.
    logged: dict[str, Any] | None = None
    #: A bet's claim made by the session read and the wallet it locked (``_with_claim``):
    #: the row's ``claim_id``, ``claim_fingerprint`` and ``lock_*`` columns; ``None`` when
    #: the read made no claim (the handler then claims as usual).
    claimed: Any = None


_SESSION_COLS = (
    GameSession.user_id,
    GameSession.currency,
    GameSession.expires_at,
    GameSession.demo,
    GameSession.game_id,
    GameSession.provider_id,
    User.status,
    User.status_until,
)


_pt = table_of(ProviderTransaction).alias("prior")
_plt = table_of(LedgerTransaction).alias("prior_tx")

#: A claim and the answer it gave: the stored one (a callback that wrote no ledger row) or its
#: ledger row's, as ``_replay`` answers it.
_PRIOR_COLS = (
    _pt.c.id.label("prior_id"),
    _pt.c.action.label("prior_action"),
    _pt.c.state.label("prior_state"),
    _pt.c.fingerprint.label("prior_fingerprint"),
    _pt.c.user_id.label("prior_user_id"),
    _pt.c.currency.label("prior_currency"),
    _pt.c.reference_external_id.label("prior_reference"),
    func.coalesce(_pt.c.balance_after, _plt.c.balance_after, 0).label("prior_balance"),
    func.coalesce(_pt.c.bonus_balance_after, _plt.c.bonus_balance_after, 0).label("prior_bonus"),
)


def _with_prior(stmt: Any, provider_id: Any) -> Any:
    """``stmt`` (a select from ``game_sessions``) and the claim of ``prior_ext`` if there is
    one: two unique-index probes in the statement the callback sends anyway."""
    return (
        stmt.add_columns(*_PRIOR_COLS)
        .outerjoin(
            _pt, and_(_pt.c.provider_id == provider_id, _pt.c.external_id == bindparam("prior_ext"))
        )
        .outerjoin(
            _plt,
            and_(
                _pt.c.balance_after.is_(None),
                _plt.c.source == bindparam("prior_source"),
                _plt.c.idempotency_key == _pt.c.external_id,
            ),
        )
    )


def _build_player_by_token(_insert: Any) -> Any:
    return (
        select(*_SESSION_COLS)
        .join(User, User.id == GameSession.user_id)
        .where(GameSession.token == bindparam("token"))
    )


def _build_player_by_token_prior(_insert: Any) -> Any:
    return _with_prior(_build_player_by_token(_insert), GameSession.provider_id)


def _probe_columns() -> list[Any]:
    return play_guard.probe_columns(
        GameSession.user_id, GameSession.currency, play_guard.now_param()
    )


def _build_bettor_by_token(_insert: Any) -> Any:
    # A duplicate (a claim under this transaction id exists) answers from its claim before any
    # bet check: PostgreSQL skips its probes (a CASE evaluates the subquery only when reached).
    probes = [
        case((_pt.c.id.is_(None), column.element), else_=null()).label(column.name)
        for column in _probe_columns()
    ]
    return _build_player_by_token_prior(_insert).add_columns(*probes)


# --- a duplicate answered and logged by the session read (PostgreSQL) -------------------------

_J = (",", ":")


def _sha256_hex(text: Any) -> Any:
    return func.encode(func.sha256(func.convert_to(text, literal("UTF8"))), "hex")


def _fingerprint_sql(user_id: Any) -> Any:
    """``_fingerprint(action, user_id, *rest)`` (then ``_fingerprint(that, nest)`` when
    ``d_fp_nest`` is set) in SQL, for the session's ``user_id``: Python renders the JSON
    around the id (``d_fp_head``, ``d_fp_tail``, ``d_fp_nest``), PostgreSQL hashes it."""
    first = _sha256_hex(
        bindparam("d_fp_head", type_=String)
        + cast(user_id, String)
        + bindparam("d_fp_tail", type_=String)
    )
    nest = bindparam("d_fp_nest", type_=String)
    return case((nest.is_(None), first), else_=_sha256_hex(literal('["', String) + first + nest))


def _fingerprint_params(action: str, rest: list[Any], nest: Any) -> dict[str, Any]:
    """The JSON around the user id of ``_fingerprint(action, <user>, *rest)`` (and of its
    nesting with ``nest``), for :func:`_fingerprint_sql`."""
    return {
        "d_fp_head": json.dumps([action], separators=_J)[:-1] + ",",
        "d_fp_tail": "," + json.dumps(rest, separators=_J)[1:],
        "d_fp_nest": None if nest is None else '",' + json.dumps([nest], separators=_J)[1:],
    }


def _format_minor_sql(minor: Any) -> Any:
    """``format_minor(minor, currency)`` in SQL; ``d_exp`` / ``d_scale`` are the currency's
    exponent and 10 ** exponent."""
    exp = bindparam("d_exp", type_=Integer)
    scale = bindparam("d_scale", type_=BigInteger)
    magnitude = func.abs(minor)
    return case(
        (exp == 0, cast(minor, String)),
        else_=case((minor < 0, literal("-", String)), else_=literal("", String))
        + cast(func.div(magnitude, scale), String)
        + literal(".", String)
        + func.lpad(cast(func.mod(magnitude, scale), String), exp, "0"),
    )


def _native_duplicate_answer_sql(s: Any) -> Any:
    """``CallbackResult(ok, prior balances, currency, prior id).as_native()`` as the JSON text
    the log column would store (``json.dumps``' default separators, the same key order)."""
    return cast(
        literal('{"status": "ok", "balance": "', String)
        + _format_minor_sql(s.c.prior_balance)
        + literal('", "bonus_balance": "', String)
        + _format_minor_sql(s.c.prior_bonus)
        + literal('", "currency": "', String)
        + s.c.prior_currency
        + literal('", "transaction_id": "', String)
        + cast(s.c.prior_id, String)
        + literal('"}', String),
        JSON,
    )


def _with_duplicate_log(stmt: Any, *, claim: bool = False) -> Any:
    """``stmt`` (the session read with the prior claim) that also writes the callback's log
    row, answered from the claim, when the claim is a duplicate the handler would answer
    from it: the same session and provider (and player, when named), not a demo, the
    request's currency, not a tombstone, the same fingerprint. One statement, no row lock;
    the handler checks the logged answer against its own (a disagreement raises and rolls
    the row back). Columns ``dup_log_id`` / ``dup_log_response``."""
    s = stmt.cte("s")
    t = table_of(ProviderCallback)
    filled = {
        "user_id": s.c.prior_user_id,
        "balance_after": s.c.prior_balance,
        "response": _native_duplicate_answer_sql(s),
    }
    names = [c.name for c in t.c if c.name != "id"]
    values = select(
        *(filled.get(name, bindparam(f"d_{name}", type_=t.c[name].type)) for name in names)
    ).where(
        s.c.prior_id.is_not(None),
        *_session_takes_request(s),
        s.c.prior_state != "tombstone",
        s.c.prior_fingerprint == _fingerprint_sql(s.c.user_id),
    )
    # A transaction that logged a duplicate moves no money (the handler answers from the claim
    # or raises): it commits without waiting for the WAL flush (``synchronous_commit`` off
    # for this transaction only, set by the returned row). A database crash right after may
    # lose that log row, never money.
    relaxed = func.set_config("synchronous_commit", "off", true()).label("relaxed")
    logged = (
        insert(t).from_select(names, values).returning(t.c.id, t.c.response, relaxed).cte("logged")
    )
    out = select(
        *s.c,
        logged.c.id.label("dup_log_id"),
        logged.c.response.label("dup_log_response"),
        logged.c.relaxed.label("dup_log_relaxed"),
    ).select_from(s.outerjoin(logged, true()))
    return _with_claim(out, s) if claim else out


def _session_takes_request(s: Any) -> list[Any]:
    """Conditions on the session read ``s`` under which the handler would go on with this
    request (the duplicate log's and the claim's): the same provider, not a demo, the request's
    currency, and the named player when the protocol names one."""
    player_id = bindparam("d_player_id", type_=BigInteger)
    return [
        s.c.provider_id == bindparam("d_provider_id"),
        s.c.demo.is_(False),
        s.c.currency == bindparam("d_currency"),
        or_(player_id.is_(None), s.c.user_id == player_id),
    ]


def _with_claim(stmt: Any, s: Any) -> Any:
    """``stmt`` (the bet's session read, ``s`` its CTE) that also claims the transaction id and
    locks the player's wallet when no claim exists yet and the session takes this bet as the
    usual path would claim it: the same provider (and player, when named), not a demo, live,
    the request's currency. The claim's fingerprint is computed in SQL as the duplicate log's
    (``_fingerprint_sql``); the handler checks it against its own before it uses the claim.
    The bet checks run afterwards in Python: a refusal raises and rolls the claim and the lock
    back, as a refusal after the usual claim does. One round trip less per bet (PostgreSQL).
    Columns ``claim_id``, ``claim_fingerprint``, ``lock_id``, ``lock_balance``,
    ``lock_bonus_balance``, ``lock_held_balance`` (NULL when nothing was claimed or locked)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    pt = table_of(ProviderTransaction)
    now = play_guard.now_param()
    values = {  # the columns of the usual claim (``_CLAIM_COLUMNS``), and its state
        "provider_id": bindparam("d_provider_id"),
        "external_id": bindparam("prior_ext", type_=String),
        "created_at": now,
        "action": literal("bet", String),
        "user_id": s.c.user_id,
        "external_round_id": bindparam("c_round", type_=String),
        "currency": bindparam("d_currency"),
        "amount": bindparam("c_amount", type_=BigInteger),
        "fingerprint": _fingerprint_sql(s.c.user_id),
        "state": literal("applied", String),
    }
    if set(values) != {*_CLAIM_COLUMNS, "state"}:  # built once per process
        raise RuntimeError("the session read's claim writes other columns than the usual claim")
    source = select(*values.values()).where(
        s.c.prior_id.is_(None), *_session_takes_request(s), s.c.expires_at > now
    )
    claimed = (
        pg_insert(pt)
        .from_select(list(values), source, include_defaults=False)
        .on_conflict_do_nothing(index_elements=["provider_id", "external_id"])
        .returning(pt.c.id, pt.c.fingerprint)
        .cte("claimed")
    )
    locked = wallet.lock_after(
        claimed,
        user_id=select(s.c.user_id).scalar_subquery(),
        currency=bindparam("d_currency", type_=String),
    )
    return (
        stmt.add_columns(
            claimed.c.id.label("claim_id"),
            claimed.c.fingerprint.label("claim_fingerprint"),
            locked.c.id.label("lock_id"),
            locked.c.balance.label("lock_balance"),
            locked.c.bonus_balance.label("lock_bonus_balance"),
            locked.c.held_balance.label("lock_held_balance"),
        )
        .outerjoin(claimed, true())
        .outerjoin(locked, true())
    )


def _duplicate_params(
    provider: ProviderConfig,
    req: CallbackRequest,
    action: str,
    round_ext: str,
    amount: int,
    currency: str,
    nest: str | None,
) -> dict[str, Any] | None:
    """The parameters of :func:`_with_duplicate_log` for a bet or win whose fingerprint is
    ``_fingerprint(action, <user>, round_ext, req.game_id, amount, currency)`` (nested with
    ``nest``); ``None`` where the read writes no log (SQLite, a batch, no pending row)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    row = callback_log.pending_duplicate_row()
    if row is None:
        return None
    exp = exponent(currency)
    return {
        **row,
        **_fingerprint_params(action, [round_ext, req.game_id, amount, currency], nest),
        "d_exp": exp,
        "d_scale": 10**exp,
        "d_provider_id": provider.id,
        "d_currency": currency,
        "d_player_id": req.player_id,
    }


def _precheck_money(provider: ProviderConfig, req: CallbackRequest) -> tuple[str, int] | None:
    """The currency and amount of a bet or win when the request alone decides them and they
    pass the checks that come before a duplicate's answer (else ``None``: the usual path
    then refuses in its usual order)."""
    if req.currency is None and req.currency_from_player:
        return None
    try:
        currency = _currency(req.currency)
        amount = _amount(req.amount, currency)
    except CallbackError:
        return None
    if provider.currencies and currency not in provider.currencies:
        return None
    return currency, amount


def _answer_logged_duplicate(
    provider: ProviderConfig, player: _Player, fingerprint: str
) -> CallbackResult:
    """A duplicate's answer from its claim; when the session read already logged it, the
    logged answer must be this one (else raise: the transaction rolls the row back)."""
    result = _answer_duplicate(provider, player.prior, fingerprint)
    if player.logged is not None:
        if player.logged != result.as_native():
            raise RuntimeError("the duplicate's logged answer does not match its claim")
        callback_log.mark_written()
    return result


def _player(
    provider: ProviderConfig,
    req: CallbackRequest,
    *,
    live: bool,
    probe: bool = False,
    prior: bool = False,
    duplicate_log: dict[str, Any] | None = None,
    claim: dict[str, Any] | None = None,
) -> _Player:
    """Who the callback is about: its session token, or (adapters) our player id.

    ``live=True`` (authenticate, balance, bet): the session must not have expired, unless
    the callback is a duplicate (``prior``): its stored answer stands (see ``_replay``).
    ``probe=True`` (bet): the same statement reads the bet checks' probes (``play.guard``).
    ``prior=True`` (money callbacks; implied by ``probe``): it also reads the claim already
    made under ``req.transaction_id`` and its answer (``_Player.prior``).
    ``duplicate_log`` (PostgreSQL, with ``prior``): the parameters of
    :func:`_with_duplicate_log`; a duplicate's log row is then written by this read.
    ``claim`` (a bet by session token, with ``probe`` and ``duplicate_log``): the parameters
    of :func:`_with_claim`; a first bet's claim and wallet lock are then made by this read.
    """
    token = _text(req.session_token, "session_token", required=False, limit=200)
    prior = prior or probe
    params: dict[str, Any] = {}
    if prior:
        params = {
            "prior_ext": _text(req.transaction_id, "transaction_id"),
            "prior_source": provider.source,
        }
    if probe:
        params["g_now"] = utcnow()
    dup = prior and duplicate_log is not None
    if dup:
        params.update(duplicate_log or {})
    if token:
        if probe:
            name, build = (
                f"seamless.bettor_by_token{play_guard.probes_key()}",
                _build_bettor_by_token,
            )
        elif prior:
            name, build = "seamless.player_by_token_prior", _build_player_by_token_prior
        else:
            name, build = "seamless.player_by_token", _build_player_by_token
        if dup and claim is not None and probe:
            params.update(claim)
            stmt = hot_statement(
                f"{name}+dup+claim", lambda ins: _with_duplicate_log(build(ins), claim=True)
            )
        elif dup:
            stmt = hot_statement(f"{name}+dup", lambda ins: _with_duplicate_log(build(ins)))
        else:
            stmt = hot_statement(name, build)
        row = core_execute(stmt, {**params, "token": token}).one_or_none()
        if row is None or row.provider_id != provider.id:
            raise CallbackError("INVALID_SESSION", "Unknown session token")
        if req.player_id is not None and req.player_id != row.user_id:
            raise CallbackError("INVALID_SESSION", "The session belongs to another player")
    elif req.player_id is not None:
        # Protocols without a token on every call: the player's newest session with us.
        stmt = (
            select(*_SESSION_COLS, *(_probe_columns() if probe else ()))
            .join(User, User.id == GameSession.user_id)
            .where(
                GameSession.user_id == req.player_id,
                GameSession.provider_id == provider.id,
                GameSession.demo.is_(False),
            )
            .order_by(GameSession.id.desc())
            .limit(1)
        )
        if prior:
            stmt = _with_prior(stmt, provider.id)
        if dup:
            stmt = _with_duplicate_log(stmt)
        row = core_execute(stmt, params).one_or_none()
        if row is None:
            raise CallbackError(
                "INVALID_SESSION", "No game session for this player", reason="player"
            )
    else:
        raise CallbackError("INVALID_SESSION", "session_token is required")
    if row.demo:
        raise CallbackError("INVALID_SESSION", "A demo session does not use the wallet")
    found = row if prior and row.prior_id is not None else None
    is_live = row.expires_at > utcnow()
    if live and not is_live and found is None:
        raise CallbackError("INVALID_SESSION", "The session has expired", reason="expired")
    return _Player(
        row.user_id,
        row.currency,
        row.status,
        row.status_until,
        row.game_id,
        is_live,
        play_guard.probed_from(row) if probe and found is None else None,
        found,
        row.dup_log_response if dup and row.dup_log_id is not None else None,
        row if token and claim is not None and row.claim_id is not None else None,
    )


def _balances(user_id: int, currency: str) -> tuple[int, int]:
    row = db.session.execute(
        select(Wallet.balance, Wallet.bonus_balance).where(
            Wallet.user_id == user_id, Wallet.currency == currency
        )
    ).one_or_none()
    return (0, 0) if row is None else (row.balance, row.bonus_balance)


# --- idempotency -----------------------------------------------------------------------------


def _build_claim(dialect_insert: Any) -> Any:
    return (
        dialect_insert(ProviderTransaction.__table__)
        .on_conflict_do_nothing(index_elements=["provider_id", "external_id"])
        .returning(ProviderTransaction.__table__.c.id)
    )


def _claim(provider: ProviderConfig, req: CallbackRequest, **values: Any) -> int | None:
    """Claim the provider's transaction id; ``None`` when it is already taken."""
    return _insert_claim(
        provider_id=provider.id, external_id=req.transaction_id, created_at=utcnow(), **values
    )


def _insert_claim(**values: Any) -> int | None:
    return db.session.execute(
        hot_statement("seamless.claim", _build_claim), values
    ).scalar_one_or_none()


_CLAIM_COLUMNS = (
    "provider_id",
    "external_id",
    "created_at",
    "action",
    "user_id",
    "external_round_id",
    "currency",
    "amount",
    "fingerprint",
)


def _build_claim_lock(dialect_insert: Any, also: Companion | None = None) -> Any:
    """Claim the transaction id and, only if that claim is new, lock the player's wallet and
    then run ``also`` (an ``UPDATE ... RETURNING``: a win's round update): one statement. The
    claim's conflict check waits for a concurrent claim of the same id first, so two copies
    of one callback never both reach the lock. ``also`` waits for the wallet lock (the lock
    order of every callback: wallet, then round, so a bet and a win of one round never
    deadlock), and an ``UPDATE`` works on its row's latest committed version, so a round a
    concurrent bet just added to is read with that bet."""
    pt = table_of(ProviderTransaction)
    claimed = (
        dialect_insert(pt)
        .values({name: bindparam(f"c_{name}") for name in _CLAIM_COLUMNS})
        .on_conflict_do_nothing(index_elements=["provider_id", "external_id"])
        .returning(pt.c.id)
        .cte("claimed")
    )
    locked = wallet.lock_after(claimed)
    stmt = select(claimed.c.id.label("claim_id"), *locked.c).select_from(
        claimed.outerjoin(locked, true())
    )
    if also is None:
        return stmt
    return with_writes(stmt, [also.build(dialect_insert).where(exists(select(locked.c.id)))])


def _claim_and_lock(
    provider: ProviderConfig,
    req: CallbackRequest,
    *,
    also: Companion | None = None,
    **values: Any,
) -> tuple[int | None, wallet.LockedWallet | None, dict[str, Any] | None]:
    """(the claim, the player's locked wallet, what ``also`` returned), or (None, None, None)
    when the transaction id is already claimed: then no lock was taken and ``also`` did not
    run. ``values`` are the claim's columns. One statement on PostgreSQL."""
    user_id, currency = values["user_id"], values["currency"]
    values.update(provider_id=provider.id, external_id=req.transaction_id, created_at=utcnow())
    if db.session.get_bind().dialect.name != "postgresql":
        claim = _insert_claim(**values)
        if claim is None:
            return None, None, None
        w = wallet.lock(user_id, currency)
        if also is None:
            return claim, w, None
        return (
            claim,
            w,
            first_mapping(db.session.execute(hot_statement(also.name, also.build), also.params)),
        )
    params = {
        **{f"c_{name}": values[name] for name in _CLAIM_COLUMNS},
        "lock_user_id": user_id,
        "lock_currency": currency,
    }
    if also is None:
        stmt = hot_statement("seamless.claim_lock", _build_claim_lock)
    else:
        params.update(also.params)
        stmt = hot_statement(
            f"seamless.claim_lock+{also.name}", lambda ins: _build_claim_lock(ins, also)
        )
    row = core_execute(stmt, params).one_or_none()
    if row is None:
        return None, None, None
    w = wallet.locked_from(row, user_id, currency)
    if also is None:
        return row.claim_id, w, None
    if row.id is None:  # no wallet yet, so nothing was locked and ``also`` did not run
        return (
            row.claim_id,
            w,
            first_mapping(db.session.execute(hot_statement(also.name, also.build), also.params)),
        )
    return row.claim_id, w, returned_by_writes(row, 1)[0]


def _replay(provider: ProviderConfig, req: CallbackRequest, fingerprint: str) -> CallbackResult:
    """The first answer to a duplicate whose claim was not seen with the session (it committed
    while this callback was on its way to the claim)."""
    prior = db.session.execute(
        select(*_PRIOR_COLS)
        .select_from(_pt)
        .outerjoin(
            _plt,
            and_(
                _pt.c.balance_after.is_(None),
                _plt.c.source == provider.source,
                _plt.c.idempotency_key == _pt.c.external_id,
            ),
        )
        .where(_pt.c.provider_id == provider.id, _pt.c.external_id == req.transaction_id)
    ).one()
    return _answer_duplicate(provider, prior, fingerprint)


def _answer_duplicate(provider: ProviderConfig, prior: Any, fingerprint: str) -> CallbackResult:
    """A duplicate gets the first answer, whatever changed since (the player banned, the
    session expired, a limit reached): that is what idempotency means to the provider, who
    may retry a callback it never saw answered. Only an applied or answered claim exists: a
    refused callback rolled its claim back, so its duplicate is checked (and refused) anew.
    No row is locked and nothing is written but the callback log row."""
    if prior.prior_state == "tombstone":
        raise CallbackError(
            "DUPLICATE_MISMATCH",
            "This transaction was rolled back before it arrived; it cannot be applied",
        )
    if prior.prior_fingerprint != fingerprint:
        raise CallbackError(
            "DUPLICATE_MISMATCH", "This transaction id was already used with different content"
        )
    reference_unknown = False
    if prior.prior_action in ("refund", "rollback") and prior.prior_state == "noop":
        # Answered as it was first: a reversal of a transaction we never saw left a
        # tombstone under the referenced id, which stays.
        reference_unknown = (
            db.session.scalar(
                select(ProviderTransaction.state).where(
                    ProviderTransaction.provider_id == provider.id,
                    ProviderTransaction.external_id == prior.prior_reference,
                )
            )
            == "tombstone"
        )
    return CallbackResult(
        "ok",
        balance=prior.prior_balance,
        bonus_balance=prior.prior_bonus,
        currency=prior.prior_currency,
        transaction_id=str(prior.prior_id),
        user_id=prior.prior_user_id,
        duplicate=True,
        reference_unknown=reference_unknown,
    )


def _record_answer(claim: int, balance: int, bonus: int, **values: Any) -> None:
    """Store the answer of a callback that wrote no ledger row (so a replay gets it verbatim)."""
    db.session.execute(
        update(ProviderTransaction)
        .where(ProviderTransaction.id == claim)
        .values(balance_after=balance, bonus_balance_after=bonus, **values)
    )


# --- actions ---------------------------------------------------------------------------------


def _authenticate(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    player = _player(provider, req, live=True)
    if play_guard.status_blocks(player.status, player.status_until):
        raise CallbackError("PLAYER_BLOCKED", "This account may not play")
    balance, bonus = _balances(player.user_id, player.currency)
    username = db.session.scalar(select(User.username).where(User.id == player.user_id))
    return CallbackResult(
        "ok",
        balance=balance,
        bonus_balance=bonus,
        currency=player.currency,
        user_id=player.user_id,
        extra={"player_id": str(player.user_id), "username": username},
    )


def _balance(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    player = _player(provider, req, live=True)
    balance, bonus = _balances(player.user_id, player.currency)
    return CallbackResult(
        "ok", balance=balance, bonus_balance=bonus, currency=player.currency, user_id=player.user_id
    )


def _check_currency(provider: ProviderConfig, currency: str, expected: str) -> None:
    if currency != expected:
        raise CallbackError(
            "VALIDATION_ERROR",
            f"currency {currency} does not match the player's {expected}",
            reason="currency",
        )
    if provider.currencies and currency not in provider.currencies:
        raise CallbackError(
            "VALIDATION_ERROR", f"provider does not play in {currency}", reason="currency"
        )


def _resolve_game(provider: ProviderConfig, req: CallbackRequest, *, for_bet: bool) -> int | None:
    """Our id of the provider's ``game_id``; a bet needs an active game, settlement does not."""
    external = _text(req.game_id, "game_id", required=for_bet)
    if external is None:
        return None
    found = cached_game(provider, external)
    if found is None:
        raise CallbackError("GAME_NOT_FOUND", f"Unknown game {external}")
    if for_bet and found[1] != "active":
        raise CallbackError("GAME_NOT_FOUND", f"Game {external} is not available")
    return found[0]


_ROUND_COLUMNS = (
    "provider_id",
    "external_round_id",
    "user_id",
    "game_id",
    "currency",
    "status",
    "total_bet",
    "total_win",
    "total_refund",
    "bet_cash",
    "bet_bonus",
    "bets_count",
    "created_at",
    "updated_at",
)


def _build_round_upsert(dialect_insert: Any) -> Any:
    """A bet opens its round or adds to it, if the round is still open and is this player's,
    currency's and game's (otherwise nothing is returned and the bet is refused). Its values
    are the bind parameters ``r_<column>``: it can ride with the bet's posting."""
    r = GameRound.__table__.c
    stmt = dialect_insert(GameRound.__table__).values(
        {name: bindparam(f"r_{name}", type_=r[name].type) for name in _ROUND_COLUMNS}
    )
    return stmt.on_conflict_do_update(
        index_elements=["provider_id", "external_round_id"],
        set_={
            "total_bet": r.total_bet + stmt.excluded.total_bet,
            "bet_cash": r.bet_cash + stmt.excluded.bet_cash,
            "bet_bonus": r.bet_bonus + stmt.excluded.bet_bonus,
            "bets_count": r.bets_count + 1,
            "updated_at": stmt.excluded.updated_at,
        },
        where=(r.status == "open")
        & (r.user_id == stmt.excluded.user_id)
        & (r.currency == stmt.excluded.currency)
        & (r.game_id == stmt.excluded.game_id),
    ).returning(r.id)


def _round_upsert(
    provider_id: int,
    round_ext: str,
    user_id: int,
    game_id: int | None,
    currency: str,
    now: datetime,
    **stakes: int,
) -> Companion:
    """The bet's round upsert (``stakes``: total_bet, bet_cash, bet_bonus) with the listeners'
    probes, as a companion of its posting."""
    values = {
        "provider_id": provider_id,
        "external_round_id": round_ext,
        "user_id": user_id,
        "game_id": game_id,
        "currency": currency,
        "status": "open",
        "total_win": 0,
        "total_refund": 0,
        "bets_count": 1,
        "created_at": now,
        "updated_at": now,
        **stakes,
    }
    return Companion(
        f"seamless.round_upsert{play_events.wanted_key()}",
        _build_round_upsert_probed,
        {
            **play_events.wanted_params(user_id, currency, game_id, now),
            **{f"r_{name}": values[name] for name in _ROUND_COLUMNS},
        },
    )


def _build_round_upsert_probed(dialect_insert: Any) -> Any:
    """The round upsert that also answers the listeners' bet probes (``play.events``): after
    the wallet lock, so they see what the listeners' own reads would see."""
    return _build_round_upsert(dialect_insert).returning(*play_events.wanted_columns())


def _bet(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    tx_ext = _text(req.transaction_id, "transaction_id")
    round_ext = _text(req.round_id, "round_id")
    duplicate_log = _bet_duplicate_log(provider, req, round_ext)
    player = _player(
        provider,
        req,
        live=True,
        probe=True,
        duplicate_log=duplicate_log,
        claim=_bet_claim(req, round_ext, duplicate_log),
    )
    currency, amount = _money(req, player)
    _check_currency(provider, currency, player.currency)
    free_round = _text(req.free_round_id, "free_round_id", required=False, limit=40)
    if free_round is not None and amount != 0:
        raise CallbackError("VALIDATION_ERROR", "A free-round bet takes no stake (amount 0)")
    fingerprint = _fingerprint("bet", player.user_id, round_ext, req.game_id, amount, currency)
    if free_round is not None:
        fingerprint = _fingerprint(fingerprint, free_round)
    if player.prior is not None:
        # A duplicate answers from its claim, read with the session: before the bet checks
        # (they decided the first time) and without any lock.
        return _answer_logged_duplicate(provider, player, fingerprint)
    try:
        play_guard.check_bet_allowed(
            player.user_id,
            amount,
            currency,
            player.status,
            player.status_until,
            probed=player.probed,
        )
    except play_guard.PlayerBlocked:
        raise CallbackError("PLAYER_BLOCKED", "This account may not play") from None
    except AppError as exc:
        raise CallbackError("LIMIT_EXCEEDED", exc.message) from None
    game_id = _resolve_game(provider, req, for_bet=True)
    claim: int | None
    w: wallet.LockedWallet | None
    if player.claimed is not None:
        claim, w = _claimed_by_read(player, currency, fingerprint)
    else:
        claim, w, _ = _claim_and_lock(
            provider,
            req,
            action="bet",
            user_id=player.user_id,
            external_round_id=round_ext,
            currency=currency,
            amount=amount,
            fingerprint=fingerprint,
        )
    if claim is None or w is None:
        return _replay(provider, req, fingerprint)
    if free_round is not None:
        try:
            seams.free_rounds().consume(
                provider_id=provider.id,
                user_id=player.user_id,
                game_id=game_id,
                currency=currency,
                free_round_id=free_round,
                round_ext=round_ext,
                transaction_id=tx_ext,
            )
        except seams.FreeRoundRefused as exc:
            raise CallbackError(exc.code, exc.message) from None
    if amount > w.balance + w.bonus_balance:
        raise CallbackError(
            "INSUFFICIENT_FUNDS",
            "Insufficient funds",
            balances=(w.balance, w.bonus_balance, currency),
        )
    cash_part, bonus_part = wallet.split_stake(w, amount)
    now = utcnow()
    round_upsert = _round_upsert(
        provider.id,
        round_ext,
        player.user_id,
        game_id,
        currency,
        now,
        total_bet=amount,
        bet_cash=cash_part,
        bet_bonus=bonus_part,
    )
    result = CallbackResult(
        "ok",
        balance=w.balance - cash_part,
        bonus_balance=w.bonus_balance - bonus_part,
        currency=currency,
        transaction_id=str(claim),
        user_id=player.user_id,
        balance_before=w.balance,
    )
    if amount:
        # The round and the log row ride with the posting: one statement (PostgreSQL). A
        # round that refuses the bet is found below; raising rolls all three back.
        posting = wallet.post(
            player.user_id,
            currency,
            "bet",
            cash_delta=-cash_part,
            bonus_delta=-bonus_part,
            source=provider.source,
            idempotency_key=tx_ext,
            reference_type="provider_transaction",
            reference_id=claim,
            locked=w,
            companions=(round_upsert, *callback_log.companions(result)),
        )
        _check_posting(posting, result)
        upserted = posting.returned[0]
    else:
        upserted = first_mapping(
            db.session.execute(
                hot_statement(round_upsert.name, round_upsert.build), round_upsert.params
            )
        )
        _record_answer(claim, w.balance, w.bonus_balance)
    if upserted is None:
        existing = _round(provider, round_ext)
        if (
            existing is not None
            and existing.status != "open"
            and existing.user_id == player.user_id
        ):
            raise CallbackError("ROUND_CLOSED", "The round is closed and takes no more bets")
        raise CallbackError("ROUND_NOT_FOUND", "The round belongs to another player or game")
    if free_round is None:
        play_events.emit(
            play_events.PlayEvent(
                "bet", player.user_id, currency, amount, cash_part, bonus_part,
                provider.id, game_id, round_ext, claim,
                not_wanted=play_events.not_wanted(upserted),
            )
        )  # fmt: skip
    return result


def _bet_duplicate_log(
    provider: ProviderConfig, req: CallbackRequest, round_ext: str
) -> dict[str, Any] | None:
    money = _precheck_money(provider, req)
    if money is None:
        return None
    currency, amount = money
    try:
        free_round = _text(req.free_round_id, "free_round_id", required=False, limit=40)
    except CallbackError:
        return None
    if free_round is not None and amount != 0:
        return None
    return _duplicate_params(provider, req, "bet", round_ext, amount, currency, free_round)


def _bet_claim(
    req: CallbackRequest, round_ext: str, duplicate_log: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The parameters of :func:`_with_claim` for a bet the session read may claim: one whose
    currency and amount the request alone decides (the duplicate log's parameters exist),
    by session token, not a free round (its grant is consumed before the balance check)."""
    if duplicate_log is None or not req.session_token or req.free_round_id is not None:
        return None
    amount = _amount(req.amount, duplicate_log["d_currency"])
    return {"c_round": round_ext, "c_amount": amount}


def _claimed_by_read(
    player: _Player, currency: str, fingerprint: str
) -> tuple[int, wallet.LockedWallet]:
    """The claim and the locked wallet the session read made (``_with_claim``), once its
    fingerprint is the handler's (else raise: the transaction rolls the claim back)."""
    row = player.claimed
    if row.claim_fingerprint != fingerprint:
        raise RuntimeError("the claim made with the session does not match the bet")
    if row.lock_id is None:  # no wallet in this currency yet: create it, locked
        return row.claim_id, wallet.lock(player.user_id, currency)
    return row.claim_id, wallet.LockedWallet(
        row.lock_id,
        player.user_id,
        currency,
        row.lock_balance,
        row.lock_bonus_balance,
        row.lock_held_balance,
    )


def _check_posting(posting: wallet.Posting, result: CallbackResult) -> None:
    """The posting moved what the answer (already in its log row) says, or nothing stands."""
    if posting.replayed or (posting.balance, posting.bonus_balance) != (
        result.balance,
        result.bonus_balance,
    ):
        raise RuntimeError("the posting does not match the answer computed under the lock")


def _round(provider: ProviderConfig, round_ext: str) -> Any:
    return db.session.execute(
        select(
            GameRound.id,
            GameRound.user_id,
            GameRound.game_id,
            GameRound.currency,
            GameRound.status,
            GameRound.total_bet,
            GameRound.total_refund,
            GameRound.bet_cash,
            GameRound.bet_bonus,
        ).where(GameRound.provider_id == provider.id, GameRound.external_round_id == round_ext)
    ).one_or_none()


def win_split(amount: int, bet_cash: int, bet_bonus: int) -> tuple[int, int]:
    """A win goes back in the proportion the round's stakes were paid (bonus rounded down)."""
    total = bet_cash + bet_bonus
    if total <= 0 or bet_bonus <= 0:
        return amount, 0
    bonus_part = amount * bet_bonus // total
    return amount - bonus_part, bonus_part


def _build_win_round(_insert: Any) -> Any:
    r = GameRound.__table__.c
    return (
        update(table_of(GameRound))
        .where(
            r.provider_id == bindparam("w_provider_id"),
            r.external_round_id == bindparam("round_ext"),
            r.user_id == bindparam("w_user_id"),
            r.currency == bindparam("w_currency"),
            r.status != "cancelled",
        )
        .values(total_win=r.total_win + bindparam("amount"), updated_at=bindparam("now"))
        .returning(r.id, r.bet_cash, r.bet_bonus, r.game_id)
    )


def _build_win_round_game(_insert: Any) -> Any:
    return _build_win_round(_insert).where(GameRound.__table__.c.game_id == bindparam("w_game_id"))


def _check_round(
    provider: ProviderConfig, round_ext: str, user_id: int, game_id: int | None, currency: str
) -> Any:
    """The round a settlement (win, jackpot win) names, or the reason it can't take one,
    checked in this order: this player's, on this game (when named), in this currency, not
    cancelled."""
    rnd = _round(provider, round_ext)
    if rnd is None or rnd.user_id != user_id:
        raise CallbackError("ROUND_NOT_FOUND", "No such round for this player")
    if game_id is not None and rnd.game_id != game_id:
        raise CallbackError("ROUND_NOT_FOUND", "The round was played on another game")
    if rnd.currency != currency:
        raise CallbackError(
            "VALIDATION_ERROR", f"The round was played in {rnd.currency}", reason="currency"
        )
    if rnd.status == "cancelled":
        raise CallbackError("ROUND_CLOSED", "The round was cancelled and its stakes refunded")
    return rnd


def _win(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    tx_ext = _text(req.transaction_id, "transaction_id")
    round_ext = _text(req.round_id, "round_id")
    player = _player(
        provider,
        req,
        live=False,
        prior=True,
        duplicate_log=_win_duplicate_log(provider, req, round_ext),
    )
    currency, amount = _money(req, player)
    _check_currency(provider, currency, player.currency)
    fingerprint = _fingerprint("win", player.user_id, round_ext, req.game_id, amount, currency)
    reference = _text(req.reference_transaction_id, "reference_transaction_id", required=False)
    if reference is not None:
        fingerprint = _fingerprint(fingerprint, reference)
    if player.prior is not None:
        return _answer_logged_duplicate(provider, player, fingerprint)
    game_id = _resolve_game(provider, req, for_bet=False)
    if reference is not None:
        _check_win_reference(provider, reference, player.user_id, round_ext)
    # The round must be this player's, in this currency, on this game (when named) and not
    # cancelled: updated with the claim and the lock. If no row matched, read it to say why.
    now = utcnow()
    params = {
        "w_provider_id": provider.id,
        "round_ext": round_ext,
        "w_user_id": player.user_id,
        "w_currency": currency,
        "amount": amount,
        "now": now,
    }
    if game_id is None:
        round_update = Companion("seamless.win_round", _build_win_round, params)
    else:
        params["w_game_id"] = game_id
        round_update = Companion("seamless.win_round_game", _build_win_round_game, params)
    claim, w, rnd = _claim_and_lock(
        provider,
        req,
        also=round_update,
        action="win",
        user_id=player.user_id,
        external_round_id=round_ext,
        currency=currency,
        amount=amount,
        fingerprint=fingerprint,
    )
    if claim is None or w is None:
        return _replay(provider, req, fingerprint)
    if rnd is None:
        _check_round(provider, round_ext, player.user_id, game_id, currency)
        raise CallbackError("ROUND_NOT_FOUND", "No such round for this player")  # pragma: no cover
    if not rnd["bet_cash"] and not rnd["bet_bonus"]:
        fsr = seams.free_rounds().free_round(provider.id, round_ext)
        if fsr is not None:
            return _free_round_win(provider, tx_ext, player, fsr, currency, amount, claim, w)
    cash_part, bonus_part = win_split(amount, rnd["bet_cash"], rnd["bet_bonus"])
    result = CallbackResult(
        "ok",
        balance=w.balance + cash_part,
        bonus_balance=w.bonus_balance + bonus_part,
        currency=currency,
        transaction_id=str(claim),
        user_id=player.user_id,
        balance_before=w.balance,
    )
    if amount:
        posting = wallet.post(
            player.user_id,
            currency,
            "win",
            cash_delta=cash_part,
            bonus_delta=bonus_part,
            source=provider.source,
            idempotency_key=tx_ext,
            reference_type="provider_transaction",
            reference_id=claim,
            locked=w,
            companions=callback_log.companions(result),
        )
        _check_posting(posting, result)
    else:
        _record_answer(claim, w.balance, w.bonus_balance)
    play_events.emit(
        play_events.PlayEvent(
            "win", player.user_id, currency, amount, cash_part, bonus_part,
            provider.id, rnd["game_id"], round_ext, claim,
        )
    )  # fmt: skip
    return result


def _win_duplicate_log(
    provider: ProviderConfig, req: CallbackRequest, round_ext: str
) -> dict[str, Any] | None:
    money = _precheck_money(provider, req)
    if money is None:
        return None
    try:
        reference = _text(req.reference_transaction_id, "reference_transaction_id", required=False)
    except CallbackError:
        return None
    currency, amount = money
    return _duplicate_params(provider, req, "win", round_ext, amount, currency, reference)


def _check_win_reference(
    provider: ProviderConfig, reference: str, user_id: int, round_ext: str
) -> None:
    """A win that names its bet (Hub88 ``reference_transaction_uuid``) needs that bet: this
    player's, in this round, and received (not a tombstone of a bet rolled back unseen)."""
    bet = db.session.execute(
        select(
            ProviderTransaction.action,
            ProviderTransaction.state,
            ProviderTransaction.user_id,
            ProviderTransaction.external_round_id,
        ).where(
            ProviderTransaction.provider_id == provider.id,
            ProviderTransaction.external_id == reference,
        )
    ).one_or_none()
    if (
        bet is None
        or bet.action != "bet"
        or bet.state == "tombstone"
        or bet.user_id != user_id
        or bet.external_round_id != round_ext
    ):
        raise CallbackError("TRANSACTION_NOT_FOUND", "The bet this win names does not exist")


def _free_round_win(
    provider: ProviderConfig,
    tx_ext: str,
    player: _Player,
    fsr: Any,
    currency: str,
    amount: int,
    claim: int,
    w: wallet.LockedWallet,
) -> CallbackResult:
    """A free round's win: operator-funded bonus money under the free-spins contract."""
    try:
        seams.free_rounds().pay_win(
            fsr,
            amount=amount,
            currency=currency,
            source=provider.source,
            transaction_id=tx_ext,
            claim_id=claim,
            locked=w,
        )
    except seams.FreeRoundRefused as exc:
        raise CallbackError(exc.code, exc.message) from None
    return _answered_as_it_stands(claim, player.user_id, currency, w)


def _answered_as_it_stands(
    claim: int, user_id: int, currency: str, w: wallet.LockedWallet
) -> CallbackResult:
    """The answer of a callback whose money moved through a seam (a free-round contract): the
    balances as they now stand, after any conversion, stored for a replay to give exactly."""
    balance, bonus = _balances(user_id, currency)
    _record_answer(claim, balance, bonus)
    return CallbackResult(
        "ok",
        balance=balance,
        bonus_balance=bonus,
        currency=currency,
        transaction_id=str(claim),
        user_id=user_id,
        balance_before=w.balance,
    )


def _reverse(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    """refund (a bet's stake back) and rollback (undo a bet or a win)."""
    action = req.action
    tx_ext = _text(req.transaction_id, "transaction_id")
    reference = _text(req.reference_transaction_id, "reference_transaction_id")
    round_ext = _text(req.round_id, "round_id", required=False)
    player = _player(provider, req, live=False, prior=True)
    currency, amount = _money(req, player, amount_required=False)
    _check_currency(provider, currency, player.currency)
    fingerprint = _fingerprint(action, player.user_id, round_ext, reference, amount, currency)
    if player.prior is not None:
        return _answer_duplicate(provider, player.prior, fingerprint)
    claim = _claim(
        provider,
        req,
        action=action,
        user_id=player.user_id,
        external_round_id=round_ext,
        reference_external_id=reference,
        currency=currency,
        amount=amount or 0,
        fingerprint=fingerprint,
    )
    if claim is None:
        return _replay(provider, req, fingerprint)
    # Reserve the referenced id before taking the wallet lock: if the bet is in flight we wait
    # for it here (never while holding the lock it needs); if it never came, this tombstone
    # makes sure it never will.
    tombstone = _insert_claim(
        provider_id=provider.id,
        external_id=reference,
        action="bet",
        state="tombstone",
        user_id=player.user_id,
        external_round_id=round_ext,
        currency=currency,
        amount=0,
        fingerprint="tombstone",
        created_at=utcnow(),
    )
    if tombstone is not None:
        balance, bonus = _balances(player.user_id, currency)
        _record_answer(claim, balance, bonus, state="noop")
        return CallbackResult(
            "ok",
            balance=balance,
            bonus_balance=bonus,
            currency=currency,
            transaction_id=str(claim),
            user_id=player.user_id,
            reference_unknown=True,
        )
    w = wallet.lock(player.user_id, currency)
    target = db.session.execute(
        select(ProviderTransaction).where(
            ProviderTransaction.provider_id == provider.id,
            ProviderTransaction.external_id == reference,
        )
    ).scalar_one()
    if target.user_id != player.user_id:
        raise CallbackError("INVALID_SESSION", "The referenced transaction is another player's")
    if round_ext is not None and target.external_round_id not in (None, round_ext):
        raise CallbackError("ROUND_NOT_FOUND", "The referenced transaction is in another round")
    if target.currency != currency:
        raise CallbackError(
            "VALIDATION_ERROR",
            f"The referenced transaction is in {target.currency}",
            reason="currency",
        )
    allowed = ("bet",) if action == "refund" else ("bet", "win")
    if target.action not in allowed:
        raise CallbackError("VALIDATION_ERROR", f"A {action} cannot reverse a {target.action}")
    if target.state == "applied" and amount is not None and amount != target.amount:
        raise CallbackError(
            "VALIDATION_ERROR",
            f"amount must equal the referenced transaction's "
            f"{format_minor(target.amount, currency)}",
        )
    already = target.state != "applied" or db.session.scalar(
        select(ProviderTransaction.id)
        .where(
            ProviderTransaction.provider_id == provider.id,
            ProviderTransaction.reference_external_id == reference,
            ProviderTransaction.action.in_(("refund", "rollback")),
            ProviderTransaction.state == "applied",
            ProviderTransaction.id != claim,
        )
        .limit(1)
    )
    if already or target.amount == 0:
        if not already and target.action == "bet":
            seams.free_rounds().bet_reversed(provider.id, reference)
        _record_answer(claim, w.balance, w.bonus_balance, state="noop")
        return CallbackResult(
            "ok",
            balance=w.balance,
            bonus_balance=w.bonus_balance,
            currency=currency,
            transaction_id=str(claim),
            user_id=player.user_id,
            balance_before=w.balance,
            reference_unknown=target.state == "tombstone",
        )
    if target.action == "win" and target.external_round_id is not None:
        fsr = seams.free_rounds().free_round(provider.id, target.external_round_id)
        if fsr is not None:
            return _free_round_win_reversed(
                provider, tx_ext, player, fsr, target, currency, claim, w
            )
    original = db.session.execute(
        select(LedgerTransaction.cash_delta, LedgerTransaction.bonus_delta).where(
            LedgerTransaction.source == provider.source,
            LedgerTransaction.idempotency_key == reference,
        )
    ).one()
    try:
        posting = wallet.post(
            player.user_id,
            currency,
            action,
            cash_delta=-original.cash_delta,
            bonus_delta=-original.bonus_delta,
            source=provider.source,
            idempotency_key=tx_ext,
            reference_type="provider_transaction",
            reference_id=claim,
            meta={"reverses": reference},
            locked=w,
        )
    except InsufficientBalance:
        raise CallbackError(
            "INSUFFICIENT_FUNDS",
            "The win was already spent; the rollback cannot be applied",
            balances=(w.balance, w.bonus_balance, currency),
        ) from None
    _round_reversed(provider, target)
    play_events.emit(
        play_events.PlayEvent(
            action, player.user_id, currency, target.amount,
            abs(original.cash_delta), abs(original.bonus_delta),
            provider.id, None, target.external_round_id, claim, reverses=target.action,
            reverses_transaction_id=target.id,
        )
    )  # fmt: skip
    return CallbackResult(
        "ok",
        balance=posting.balance,
        bonus_balance=posting.bonus_balance,
        currency=currency,
        transaction_id=str(claim),
        user_id=player.user_id,
        balance_before=w.balance,
    )


def _round_reversed(provider: ProviderConfig, target: ProviderTransaction) -> None:
    r = GameRound.__table__.c
    values = (
        {"total_refund": r.total_refund + target.amount}
        if target.action == "bet"
        else {"total_win": r.total_win - target.amount}
    )
    db.session.execute(
        update(table_of(GameRound))
        .where(r.provider_id == provider.id, r.external_round_id == target.external_round_id)
        .values(updated_at=utcnow(), **values)
    )


def _free_round_win_reversed(
    provider: ProviderConfig,
    tx_ext: str,
    player: _Player,
    fsr: Any,
    target: ProviderTransaction,
    currency: str,
    claim: int,
    w: wallet.LockedWallet,
) -> CallbackResult:
    """A rollback of a free round's win: undone under the free-spins contract (never as an
    ordinary win: that money is the bonus's, or already cash or forfeited). ``currency`` is
    the callback's, which the caller checked equals ``target.currency``."""
    try:
        seams.free_rounds().win_reversed(
            fsr,
            amount=target.amount,
            currency=currency,
            source=provider.source,
            transaction_id=tx_ext,
            reverses=target.external_id,
            claim_id=claim,
            locked=w,
        )
    except seams.FreeRoundRefused as exc:
        review, user_id = exc.review, player.user_id
        raise CallbackError(
            exc.code,
            exc.message,
            balances=(w.balance, w.bonus_balance, currency),
            follow_up=None
            if review is None
            else lambda: seams.free_rounds().flag_for_review(user_id, review),
        ) from None
    _round_reversed(provider, target)
    balance, bonus = _balances(player.user_id, currency)
    # The answer after any conversion (the contract may complete); a replay returns it.
    _record_answer(claim, balance, bonus)
    return CallbackResult(
        "ok",
        balance=balance,
        bonus_balance=bonus,
        currency=currency,
        transaction_id=str(claim),
        user_id=player.user_id,
        balance_before=w.balance,
    )


def _jackpot_win(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    """A jackpot the provider's game reports as hit in a round: paid from the named pool
    (``app.play.seams.jackpots``, i.e. ``app.prizes.jackpots.pay_reported``),
    once per ``transaction_id``.

    Like a win it needs no live session and pays a player whose account was suspended after
    the round's bet was accepted; the round must exist (a report that arrives before the
    round's bet is ``ROUND_NOT_FOUND``, nothing written, and the provider's retry pays).
    """
    _text(req.transaction_id, "transaction_id")
    round_ext = _text(req.round_id, "round_id")
    pool_ref = _text(req.jackpot_id, "jackpot_id", limit=20)
    player = _player(provider, req, live=False)
    currency, amount = _money(req, player)
    _check_currency(provider, currency, player.currency)
    if not amount or amount <= 0:
        raise CallbackError("VALIDATION_ERROR", "amount must be positive")
    pool_id = parse_row_id(pool_ref)
    if pool_id is None:
        raise CallbackError("VALIDATION_ERROR", "Unknown jackpot")
    game_id = _resolve_game(provider, req, for_bet=False)
    fingerprint = _fingerprint(
        "jackpot_win", player.user_id, round_ext, req.game_id, amount, currency, pool_ref
    )
    claim = _claim(
        provider,
        req,
        action="jackpot_win",
        user_id=player.user_id,
        external_round_id=round_ext,
        reference_external_id=f"jackpot:{pool_ref}",
        currency=currency,
        amount=amount,
        fingerprint=fingerprint,
    )
    if claim is None:
        return _replay(provider, req, fingerprint)
    w = wallet.lock(player.user_id, currency)
    rnd = _check_round(provider, round_ext, player.user_id, game_id, currency)
    try:
        win = seams.jackpots().pay_reported(
            pool_id,
            provider_id=provider.id,
            user_id=player.user_id,
            currency=currency,
            amount=amount,
            game_id=rnd.game_id,
            game_round_id=rnd.id,
            round_stake=rnd.total_bet - rnd.total_refund,
            evidence={
                "provider": provider.code,
                "provider_transaction_id": req.transaction_id,
                "round_id": round_ext,
                "claim": claim,
            },
        )
    except seams.JackpotBusy as exc:
        raise CallbackError("INTERNAL_ERROR", exc.message) from None
    except AppError as exc:
        raise CallbackError("VALIDATION_ERROR", exc.message) from None
    balance, bonus = _balances(player.user_id, currency)
    _record_answer(claim, balance, bonus)
    log.info("jackpot win %s paid from pool %s by callback %s", win.id, pool_ref, claim)
    return CallbackResult(
        "ok",
        balance=balance,
        bonus_balance=bonus,
        currency=currency,
        transaction_id=str(claim),
        user_id=player.user_id,
        balance_before=w.balance,
    )


def _promo_win(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    """A prize of the provider's own promotion (``campaign_id``), outside any round: a cash
    win, once per ``transaction_id``. The provider funds its promotions, so it is booked as
    its payout (ledger ``win``) like a game win."""
    tx_ext = _text(req.transaction_id, "transaction_id")
    campaign = _text(req.campaign_id, "campaign_id")
    player = _player(provider, req, live=False)
    currency, amount = _money(req, player)
    _check_currency(provider, currency, player.currency)
    if amount <= 0:
        raise CallbackError("VALIDATION_ERROR", "amount must be positive")
    fingerprint = _fingerprint("promo_win", player.user_id, campaign, amount, currency)
    claim = _claim(
        provider,
        req,
        action="promo_win",
        user_id=player.user_id,
        reference_external_id=f"promo:{campaign}",
        currency=currency,
        amount=amount,
        fingerprint=fingerprint,
    )
    if claim is None:
        return _replay(provider, req, fingerprint)
    w = wallet.lock(player.user_id, currency)
    posting = wallet.post(
        player.user_id,
        currency,
        "win",
        cash_delta=amount,
        source=provider.source,
        idempotency_key=tx_ext,
        reference_type="provider_transaction",
        reference_id=claim,
        meta={"promo_campaign": campaign},
        locked=w,
    )
    return CallbackResult(
        "ok",
        balance=posting.balance,
        bonus_balance=posting.bonus_balance,
        currency=currency,
        transaction_id=str(claim),
        user_id=player.user_id,
        balance_before=w.balance,
    )


def _free_rounds_result(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    """An aggregator's report of a whole free-rounds grant it issued (SoftSwiss
    ``/freespins``): ``free_round_id`` names the grant, ``amount`` is its total win. Credited
    once under the free-spins contract: the claim is ``transaction_id`` (one per grant), a
    retry answers the first answer, another total for the same grant is a duplicate."""
    tx_ext = _text(req.transaction_id, "transaction_id")
    grant_ref = _text(req.free_round_id, "free_round_id", limit=100)
    owner = seams.free_rounds().grant_owner(provider.id, grant_ref)
    if owner is None:
        raise CallbackError("TRANSACTION_NOT_FOUND", "Unknown free-rounds grant")
    if req.player_id is not None and req.player_id != owner[0]:
        raise CallbackError("INVALID_SESSION", "The grant belongs to another player")
    req.player_id = owner[0]
    if req.currency is None:
        req.currency = owner[1]
    if req.amount_in_minor:
        if isinstance(req.amount, bool) or not isinstance(req.amount, int):
            raise CallbackError("VALIDATION_ERROR", "amount must be an integer of minor units")
        req.amount = Decimal(req.amount).scaleb(-exponent(_currency(req.currency)))
    player = _player(provider, req, live=False, prior=True)
    currency, amount = _money(req, player)
    _check_currency(provider, currency, player.currency)
    played = bool(req.free_rounds_played)
    fingerprint = _fingerprint("freespins", player.user_id, grant_ref, amount, currency, played)
    if player.prior is not None:
        return _answer_duplicate(provider, player.prior, fingerprint)
    claim = _claim(
        provider,
        req,
        action="freespins",
        user_id=player.user_id,
        reference_external_id=f"freespins:{grant_ref}"[:100],
        currency=currency,
        amount=amount,
        fingerprint=fingerprint,
    )
    if claim is None:
        return _replay(provider, req, fingerprint)
    w = wallet.lock(player.user_id, currency)
    try:
        seams.free_rounds().settle_grant(
            provider.id,
            grant_ref,
            amount=amount,
            currency=currency,
            played=played,
            source=provider.source,
            transaction_id=tx_ext,
            claim_id=claim,
            locked=w,
        )
    except seams.FreeRoundRefused as exc:
        raise CallbackError(exc.code, exc.message) from None
    return _answered_as_it_stands(claim, player.user_id, currency, w)


def _end_round(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    round_ext = _text(req.round_id, "round_id")
    tx_ext = _text(req.transaction_id, "transaction_id", required=False)
    player = _player(provider, req, live=False)
    claim = None
    fingerprint = _fingerprint("end_round", player.user_id, round_ext)
    if tx_ext:
        claim = _claim(
            provider,
            req,
            action="end_round",
            user_id=player.user_id,
            external_round_id=round_ext,
            currency=player.currency,
            amount=0,
            fingerprint=fingerprint,
        )
        if claim is None:
            return _replay(provider, req, fingerprint)
    _close_round(provider, round_ext, player.user_id)
    balance, bonus = _balances(player.user_id, player.currency)
    if claim is not None:
        _record_answer(claim, balance, bonus)
    return CallbackResult(
        "ok",
        balance=balance,
        bonus_balance=bonus,
        currency=player.currency,
        transaction_id=None if claim is None else str(claim),
        user_id=player.user_id,
    )


def _close_round(provider: ProviderConfig, round_ext: str, user_id: int) -> None:
    """Close the player's round (``end_round``, or a bet/win that closes it); idempotent."""
    # Only a stake-less round can be a free round, which closing settles (grant, bonus)
    # under the wallet lock. Bets and wins lock the wallet, then the round: so does this, in
    # the round's currency, before its UPDATE takes the round row lock. A staked round
    # moves no money here and takes the round row lock only.
    rnd = _round(provider, round_ext)
    if rnd is None or rnd.user_id != user_id:
        raise CallbackError("ROUND_NOT_FOUND", "No such round for this player")
    stakeless = rnd.total_bet == 0 and rnd.status == "open"
    if stakeless:
        wallet.lock(user_id, rnd.currency)
    # The round row lock (UPDATE) serializes this with a concurrent bet's upsert, whose
    # WHERE status='open' then sees the closed round and refuses.
    closed = db.session.execute(
        update(GameRound)
        .where(
            GameRound.provider_id == provider.id,
            GameRound.external_round_id == round_ext,
            GameRound.user_id == user_id,
            GameRound.status == "open",
        )
        .values(status="closed", closed_at=utcnow(), updated_at=utcnow())
        .returning(GameRound.total_bet)
    ).one_or_none()
    if closed is not None and closed.total_bet == 0 and stakeless:
        seams.free_rounds().round_ended(provider.id, round_ext)


#: What a batch may hold: the money actions whose rules are above.
_BATCH_ACTIONS = ("bet", "win", "rollback", "refund")


def _apply(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    """One action with its round closing (a bet or win with ``close_round``)."""
    result = _HANDLERS[req.action](provider, req)
    if req.close_round and req.action in ("bet", "win") and not result.duplicate:
        _close_round(provider, str(req.round_id), player_of(result))
    return result


def _batch(provider: ProviderConfig, req: CallbackRequest) -> CallbackResult:
    """Several money actions in the caller's one transaction (``handle``): all or none.

    The answer is the last action's, with ``extra["transactions"]``: for each action its id,
    our transaction id and when it was first processed (a replay answers the same)."""
    if not req.batch:
        raise CallbackError("VALIDATION_ERROR", "A batch holds at least one action")
    seen: set[str] = set()
    done: list[tuple[str, CallbackResult]] = []
    for sub in req.batch:
        _ids_as_text(sub)
        if sub.action not in _BATCH_ACTIONS:
            raise CallbackError("VALIDATION_ERROR", f"Unknown action {sub.action!r}")
        tx_ext = _text(sub.transaction_id, "action_id")
        if tx_ext in seen:
            raise CallbackError("DUPLICATE_MISMATCH", f"action_id {tx_ext} is given twice")
        seen.add(tx_ext)
        done.append((tx_ext, _apply(provider, sub)))
    last = done[-1][1]
    claims = [int(r.transaction_id) for _, r in done if r.transaction_id is not None]
    created = dict(
        db.session.execute(
            select(ProviderTransaction.id, ProviderTransaction.created_at).where(
                ProviderTransaction.id.in_(claims)
            )
        ).all()
    )
    balance, bonus = _balances(player_of(last), str(last.currency))
    return CallbackResult(
        "ok",
        balance=balance,
        bonus_balance=bonus,
        currency=last.currency,
        transaction_id=last.transaction_id,
        user_id=last.user_id,
        duplicate=all(r.duplicate for _, r in done),
        reference_unknown=any(r.reference_unknown for _, r in done),
        extra={
            "transactions": [
                {
                    "action_id": tx_ext,
                    "tx_id": r.transaction_id,
                    "processed_at": _iso(created.get(int(r.transaction_id or 0))),
                }
                for tx_ext, r in done
            ]
        },
    )


_HANDLERS = {
    "batch": _batch,
    "authenticate": _authenticate,
    "balance": _balance,
    "bet": _bet,
    "win": _win,
    "refund": _reverse,
    "rollback": _reverse,
    "end_round": _end_round,
    "jackpot_win": _jackpot_win,
    "promo_win": _promo_win,
    "freespins": _free_rounds_result,
}


# --- entry point -----------------------------------------------------------------------------


#: Callbacks of one player in flight in this process (``CALLBACK_MAX_INFLIGHT_PER_PLAYER``).
_player_gate = KeyedGate()

#: Request fields that are identifiers: a JSON number there is the same id as its digits
#: (``7`` and ``"7"`` claim one transaction; comparing a number with the text column failed).
_ID_FIELDS = ("transaction_id", "round_id", "reference_transaction_id", "game_id", "free_round_id")


def _ids_as_text(req: CallbackRequest) -> None:
    for name in _ID_FIELDS:
        value = getattr(req, name)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(req, name, str(value))


def _gate_key(provider: ProviderConfig, req: CallbackRequest) -> tuple[Any, ...]:
    if req.player_id is not None:
        return (provider.id, "player", req.player_id)
    if req.session_token is None and req.free_round_id is not None:
        # An aggregator's report of a grant names neither (the grant names the player).
        return (provider.id, "grant", str(req.free_round_id)[:100])
    return (provider.id, "token", str(req.session_token)[:200])


#: Actions that move money with one posting whose answer is known before it: their log row
#: rides with that posting (``callback_log.companions``); every other answer is recorded after.
_LOG_WITH_POSTING = frozenset({"bet", "win"})


def player_of(result: CallbackResult) -> int:
    if result.user_id is None:  # pragma: no cover - every money action answers its player
        raise CallbackError("INTERNAL_ERROR", "The action did not say whose money it moved")
    return result.user_id


def handle(
    provider: ProviderConfig,
    req: CallbackRequest,
    *,
    signature_valid: bool = True,
    remote_ip: str | None = None,
    replay_of: int | None = None,
    started: float | None = None,
) -> CallbackResult:
    """Apply one authenticated callback; always returns a result and logs it when the
    database lets us (an outage answers the retryable ``INTERNAL_ERROR`` regardless)."""
    started = started if started is not None else time.perf_counter()
    _ids_as_text(req)
    config = current_app.config
    try:
        if req.action not in _HANDLERS:
            raise CallbackError("VALIDATION_ERROR", f"Unknown action {req.action!r}")
        if not provider.active:
            raise CallbackError("ACCESS_DENIED", "This provider is disabled")
        budget = int(config["DB_LOCK_TIMEOUT_MS"]) / 1000
        queued_at = time.monotonic()
        with (
            _player_gate.admit(
                _gate_key(provider, req),
                limit=int(config["CALLBACK_MAX_INFLIGHT_PER_PLAYER"]),
                timeout=budget,
            ),
            atomic(),
        ):
            waited = time.monotonic() - queued_at
            if waited > 0.05:
                # It queued behind this player's other callbacks: the lock wait gets only
                # what is left of the budget, so the answer comes within the lock timeout.
                _shorten_lock_timeout(budget - waited)
            with callback_log.pending(
                provider.code,
                req,
                started,
                signature_valid,
                remote_ip,
                replay_of,
                rides=req.action in _LOG_WITH_POSTING,
            ) as entry:
                result = _apply(provider, req)
            if not entry.written:
                callback_log.record(
                    provider.code, req, result, started, signature_valid, remote_ip, replay_of
                )
        return result
    except CallbackError as exc:
        result = CallbackResult("error", code=exc.code, message=exc.message, reason=exc.reason)
        if exc.balances:
            result.balance, result.bonus_balance, result.currency = exc.balances
            if req.action == "batch" and req.player_id is not None:
                _batch_refusal_balances(result, req.player_id)
        if exc.follow_up is not None:
            try:
                with atomic():
                    exc.follow_up()
            except Exception:
                # The refusal stands and is logged below; only the staff flag was lost.
                db.session.rollback()
                log.exception("follow-up of refused callback %s failed", req.action)
    except GateBusy:
        log.warning(
            "callback %s from %s: too many in flight for one player", req.action, provider.code
        )
        result = _retryable("This player's wallet is busy, retry")
    except Exception as exc:
        # An outage (lock or statement timeout, pool timeout, lost connection, deadlock) or a
        # bug: the transaction rolled back, nothing moved, and the provider may retry.
        _rollback_quietly()
        kind = outage_kind(exc)
        if kind is None:
            log.exception("callback %s from %s failed", req.action, provider.code)
        else:
            log.error(
                "callback %s from %s: %s unavailable (%s)",
                req.action,
                provider.code,
                kind,
                type(exc).__name__,
            )
        result = _retryable("Temporary failure, retry")
    try:
        with atomic():
            callback_log.record(
                provider.code, req, result, started, signature_valid, remote_ip, replay_of
            )
    except Exception as exc:
        # Nothing moved (this is a refusal or a failure); the answer must still go out.
        _rollback_quietly()
        log.error("callback %s from %s not logged: %s", req.action, provider.code, exc)
    return result


def _batch_refusal_balances(result: CallbackResult, user_id: int) -> None:
    """A refused batch shows the balance as it stands: the refusal's own balance may include
    the earlier actions' moves, which were rolled back with it."""
    try:
        with atomic():
            result.balance, result.bonus_balance = _balances(user_id, str(result.currency))
    except Exception:
        # The refusal stands; it then shows no balance rather than a wrong one.
        _rollback_quietly()
        result.balance = result.bonus_balance = None
        log.warning("balance of refused batch for player %s not read", user_id)


def _shorten_lock_timeout(seconds: float) -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            select(func.set_config("lock_timeout", str(max(50, int(seconds * 1000))), True))
        )


def _retryable(message: str) -> CallbackResult:
    return CallbackResult("error", code=RETRYABLE_CODE, message=message)


def _rollback_quietly() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the pool discards it
        log.debug("rollback after a failed callback failed", exc_info=True)
