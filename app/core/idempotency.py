"""``Idempotency-Key`` on the API endpoints that move money (Stripe's semantics).

A client sends ``Idempotency-Key: <1..150 printable ASCII characters>``; the key belongs to the
authenticated caller (``g.user``, player or staff) and lives ``TTL`` (24 hours). No header: the
endpoint runs as it always did.

* Same key, same request (operation, path parameters, JSON body): the first answer, status and
  body byte for byte, with ``Idempotent-Replayed: true``; nothing runs again.
* Same key, another request (other body, other endpoint): 422 ``IDEMPOTENCY_KEY_REUSED``.
* Same key while the first request still runs: a one-transaction endpoint waits for it and
  replays its answer (on PostgreSQL the second INSERT blocks on the unique index until the
  first commits); past the database lock timeout, or on a two-phase endpoint, 409
  ``IDEMPOTENCY_KEY_IN_USE`` with ``Retry-After``.
* Only final answers are stored: 2xx and 4xx (except 408, 425, 429). A 5xx or an exception
  stores nothing and releases the key, so the retry runs again.

Invariants:
* One-transaction endpoints (``idempotent(op)``): the claim (INSERT of ``(caller, key)``), the
  business change (the services' own ``atomic()`` become savepoints) and the stored answer
  commit together or not at all: a key is never done without its movement, nor the reverse.
* Two-phase endpoints (``idempotent(op, phased=True)``) are for a service that commits before a
  gateway call and must not hold a transaction across the network (deposit creation). The
  claim commits first with a lease (``LEASE``); the view runs its own transactions; then the
  answer is stored by the run that holds the lease, or the claim is deleted. A crash in
  between leaves the key in use until the lease ends; then a retry runs again. That is safe
  only where running twice cannot move money twice (say so at the endpoint).
* Expiry is lazy: a claim first deletes an expired row of the same ``(caller, key)``;
  ``purge_expired`` (periodic job) deletes the expired rows nobody reuses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, current_app, g, request
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from app.core.base import utcnow
from app.core.db import atomic, dialect_insert, rowcount, table_of
from app.core.errors import AppError, ValidationError
from app.core.extensions import db
from app.core.models import IdempotencyKey
from app.core.queues import job

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
#: Reshapes a replayed ``(status, JSON body)``: for an endpoint whose contract predates this
#: module and answers repeats differently (staff adjustments: 200 with ``replayed: true``).
ReplayShaper = Callable[[int, Any], tuple[int, Any]]

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 150
TTL = timedelta(hours=24)
#: How long a two-phase run owns its key; longer than the gateway timeout (15 s) plus our work.
LEASE = timedelta(seconds=60)
RETRY_AFTER_SECONDS = 1

_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_LENGTH}}}")
#: 4xx answers that mean "try again later": never final, never stored.
_RETRYABLE_4XX = frozenset({408, 425, 429})
#: PostgreSQL ``lock_not_available``: the lock timeout ended a wait for another transaction.
_LOCK_TIMEOUT = "55P03"

#: The OpenAPI description of the header, for ``@blp.doc(parameters=[OPENAPI_PARAMETER])``.
OPENAPI_PARAMETER: dict[str, Any] = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH},
    "description": (
        "Makes a retry safe: the same key with the same request replays the first answer "
        "(`Idempotent-Replayed: true`) and moves nothing; with another request it is 422 "
        "`IDEMPOTENCY_KEY_REUSED`; while the first still runs, 409 `IDEMPOTENCY_KEY_IN_USE` "
        "(`Retry-After`). Scoped to the caller, kept 24 hours; 5xx answers are not kept."
    ),
}

_t = table_of(IdempotencyKey)


class IdempotencyKeyReused(AppError):
    status, code = 422, "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was already used for a different request"


class IdempotencyKeyInUse(AppError):
    status, code = 409, "IDEMPOTENCY_KEY_IN_USE"
    message = "A request with this Idempotency-Key is still running; retry shortly"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@dataclass(frozen=True)
class _Request:
    user_id: int
    key: str
    operation: str
    fingerprint: str


@dataclass(frozen=True)
class _Claim:
    id: int
    #: Two-phase runs only: the lease holder's token (``None`` in one-transaction runs).
    token: str | None


class _NotStored(Exception):
    """Carries a retryable answer out of the transaction it must not commit with."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def request_key() -> str | None:
    """The request's ``Idempotency-Key``, ``None`` without the header; a bad value is a 400."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if _KEY.fullmatch(raw) is None or not raw.strip():
        raise ValidationError.field(
            HEADER, f"Between 1 and {MAX_LENGTH} printable ASCII characters"
        )
    return raw


def idempotent(
    operation: str, *, phased: bool = False, replay_as: ReplayShaper | None = None
) -> Callable[[F], F]:
    """Make a view honour ``Idempotency-Key``. Place it under the authentication decorator (the
    key belongs to ``g.user``) and above ``@blp.response`` (it stores the finished answer);
    under ``@blp.arguments``, so that a body the schema refuses is not stored.

    ``operation`` names the endpoint (aliases share it); ``phased`` for a service that commits
    before network I/O (see the module docstring)."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = request_key()
            if key is None:
                return fn(*args, **kwargs)
            user = getattr(g, "user", None)
            if user is None:  # pragma: no cover - a wiring mistake, not a request error
                raise RuntimeError("idempotent() needs an authenticated caller (g.user)")
            req = _Request(user.id, key, operation, _fingerprint(operation))

            def call() -> Response:
                return _respond(fn, args, kwargs)

            if phased:
                return _run_phased(call, req, replay_as)
            return _run_in_transaction(call, req, replay_as)

        return wrapper  # type: ignore[return-value]

    return decorator


def _fingerprint(operation: str) -> str:
    raw = request.get_data(cache=True)
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = {"raw_sha256": hashlib.sha256(raw).hexdigest()}
    material = json.dumps(
        {"operation": operation, "path": request.view_args or {}, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _respond(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Response:
    """The view's answer as a response. A refusal (a 4xx error) is rendered by the app's own
    error handlers, exactly as it would be sent, so that it can be stored; anything else
    (5xx, unexpected exceptions) propagates and rolls back."""
    try:
        rv = fn(*args, **kwargs)
    except (AppError, HTTPException) as exc:
        status = exc.status if isinstance(exc, AppError) else (exc.code or 500)
        if not _storable(status):
            raise
        rv = current_app.handle_user_exception(exc)
    return current_app.make_response(rv)


def _storable(status: int) -> bool:
    return 200 <= status < 500 and status not in _RETRYABLE_4XX


# --------------------------------------------------------------------------- one transaction


def _run_in_transaction(
    call: Callable[[], Response], req: _Request, replay_as: ReplayShaper | None
) -> Response:
    try:
        with atomic():
            found = _claim(req, lease=False)
            if isinstance(found, IdempotencyKey):
                return _answer(found, req, replay_as)
            response = call()
            if not _storable(response.status_code):
                raise _NotStored(response)
            _store(found, response)
    except _NotStored as exc:
        return exc.response
    return response


# --------------------------------------------------------------------------- two phases


def _run_phased(
    call: Callable[[], Response], req: _Request, replay_as: ReplayShaper | None
) -> Response:
    with atomic():
        found = _claim(req, lease=True)
        if isinstance(found, IdempotencyKey):
            claim = _take_over(found, req)
            if claim is None:
                return _answer(found, req, replay_as)
        else:
            claim = found
    try:
        response = call()
    except BaseException:
        _release(claim)
        raise
    if not _storable(response.status_code):
        _release(claim)
        return response
    with atomic():
        if not _store(claim, response):
            log.warning(
                "idempotency key %s of user %s was taken over after its lease; answer not stored",
                claim.id,
                req.user_id,
            )
    return response


def _take_over(row: IdempotencyKey, req: _Request) -> _Claim | None:
    """A two-phase run whose lease ended (its process died) leaves the key to the next retry."""
    now = utcnow()
    if (
        row.fingerprint != req.fingerprint
        or row.response_status is not None
        or row.claim_token is None
        or (row.locked_until is not None and row.locked_until > now)
    ):
        return None
    token = secrets.token_hex(16)
    taken = rowcount(
        db.session.execute(
            update(_t)
            .where(_t.c.id == row.id, _t.c.claim_token == row.claim_token)
            .values(locked_until=now + LEASE, claim_token=token)
        )
    )
    if not taken:  # another retry took it first
        raise IdempotencyKeyInUse()
    log.warning("idempotency key %s of user %s taken over after its lease", row.id, req.user_id)
    return _Claim(row.id, token)


def _release(claim: _Claim) -> None:
    """Free the key after a retryable failure, so that the retry runs again."""
    try:
        with atomic():
            db.session.execute(
                delete(_t).where(_t.c.id == claim.id, _t.c.claim_token == claim.token)
            )
    except Exception:  # the lease ends anyway; the original failure is what the client sees
        log.exception("could not release idempotency key %s", claim.id)


# --------------------------------------------------------------------------- rows


def _claim(req: _Request, *, lease: bool) -> _Claim | IdempotencyKey:
    """Insert ``(caller, key)``: a ``_Claim`` when this request owns the key now, else the row
    of the request that owns it. On PostgreSQL the INSERT waits for a transaction that holds
    the same key, then sees its row (or, if it rolled back, takes the key)."""
    session = db.session
    now = utcnow()
    token = secrets.token_hex(16) if lease else None
    try:
        # Lazy expiry: an expired key is free again.
        session.execute(
            delete(_t).where(
                _t.c.user_id == req.user_id, _t.c.key == req.key, _t.c.expires_at <= now
            )
        )
        new_id = session.execute(
            dialect_insert(_t)
            .values(
                user_id=req.user_id,
                key=req.key,
                operation=req.operation,
                fingerprint=req.fingerprint,
                path=request.path[:255],
                locked_until=now + LEASE if lease else None,
                claim_token=token,
                created_at=now,
                expires_at=now + TTL,
            )
            .on_conflict_do_nothing(index_elements=["user_id", "key"])
            .returning(_t.c.id)
        ).scalar_one_or_none()
    except OperationalError as exc:
        if _sqlstate(exc) == _LOCK_TIMEOUT:
            raise IdempotencyKeyInUse() from None
        raise
    if new_id is not None:
        return _Claim(new_id, token)
    return session.execute(
        select(IdempotencyKey)
        .where(IdempotencyKey.user_id == req.user_id, IdempotencyKey.key == req.key)
        .execution_options(populate_existing=True)
    ).scalar_one()


def _answer(row: IdempotencyKey, req: _Request, replay_as: ReplayShaper | None) -> Response:
    if row.fingerprint != req.fingerprint:
        raise IdempotencyKeyReused()
    if row.response_status is None or row.response_body is None:
        raise IdempotencyKeyInUse()
    response = current_app.response_class(
        row.response_body, status=row.response_status, mimetype="application/json"
    )
    if replay_as is not None:
        stored = json.loads(row.response_body)
        status, shaped = replay_as(row.response_status, stored)
        if shaped is not stored:  # re-encoded like the first answer (``jsonify``)
            # ``json.response`` builds ``app.response_class`` (typed as werkzeug's base).
            response = cast(Response, current_app.json.response(shaped))
        response.status_code = status
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _store(claim: _Claim, response: Response) -> bool:
    criteria = [_t.c.id == claim.id, _t.c.response_status.is_(None)]
    if claim.token is not None:
        criteria.append(_t.c.claim_token == claim.token)
    stored = db.session.execute(
        update(_t)
        .where(*criteria)
        .values(
            response_status=response.status_code,
            response_body=response.get_data(as_text=True),
            locked_until=None,
            claim_token=None,
        )
    )
    return rowcount(stored) == 1


def _sqlstate(exc: OperationalError) -> str | None:
    # psycopg2 names it ``pgcode``, psycopg 3 ``sqlstate``.
    orig = exc.orig
    return getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)


@job
def purge_expired(batch: int = 5000) -> int:
    """Periodic job: delete the keys past their ``TTL`` (a claim replaces an expired key of its
    own; this removes the ones nobody reuses). Batches keep each transaction short."""
    total = 0
    while True:
        with atomic():
            expired = select(_t.c.id).where(_t.c.expires_at <= utcnow()).limit(batch)
            deleted = rowcount(
                db.session.execute(delete(_t).where(_t.c.id.in_(expired.scalar_subquery())))
            )
        total += deleted
        if deleted < batch:
            return total
