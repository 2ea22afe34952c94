"""Domain errors and the one place that turns any error into the API envelope.

Every error leaving the API has the shape
``{"success": false, "status", "code", "message", "errors"?}``; 500s are masked outside
development and logged with the correlation id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.core import metrics
from app.core.extensions import db, limiter

log = logging.getLogger(__name__)


class AppError(Exception):
    """Base of every domain error; subclasses set the HTTP status and machine code."""

    status = 400
    code = "BAD_REQUEST"
    message = "The request could not be processed"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.message = message or self.message
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)


class ValidationError(AppError):
    status, code, message = 400, "VALIDATION_ERROR", "Validation failed"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationError:
        return cls(message, errors=[{"field": field, "message": message}])


class AuthenticationError(AppError):
    status, code, message = 401, "AUTHENTICATION_ERROR", "Authentication required"


class TokenExpired(AppError):
    status, code, message = 401, "TOKEN_EXPIRED", "Token has expired"


class AccessDenied(AppError):
    status, code, message = 403, "ACCESS_DENIED", "You do not have permission to do this"


class NotFound(AppError):
    status, code, message = 404, "NOT_FOUND", "Resource not found"


class Conflict(AppError):
    status, code, message = 409, "CONFLICT", "Conflict with the current state"


class InsufficientBalance(AppError):
    status, code, message = 400, "INSUFFICIENT_BALANCE", "Insufficient balance"


class KycRequired(AppError):
    status, code, message = 400, "KYC_REQUIRED", "Identity verification is required"


class EmailNotVerified(AppError):
    status, code, message = 403, "EMAIL_NOT_VERIFIED", "Verify your e-mail address first"


class LimitExceeded(AppError):
    status, code, message = 400, "LIMIT_EXCEEDED", "A responsible gaming limit would be exceeded"


class SelfExcluded(AppError):
    status, code, message = 403, "SELF_EXCLUDED", "Your account is self-excluded"


class RateLimited(AppError):
    status, code, message = 429, "RATE_LIMITED", "Too many requests"


class MaintenanceMode(AppError):
    status, code, message = 503, "MAINTENANCE_MODE", "The service is under maintenance"


class ServiceUnavailable(AppError):
    status, code, message = 503, "SERVICE_UNAVAILABLE", "A service we depend on is unavailable"


_HTTP_CODES = {
    400: "VALIDATION_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "ACCESS_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


#: Turns an English message into the request's language (``app.core.i18n`` installs it; the
#: identity until then). Only ``message`` texts are translated: ``code`` is the contract.
def _untranslated(message: str) -> str:
    return message


_translate: Callable[[str], str] = _untranslated


def set_message_translator(translate: Callable[[str], str]) -> None:
    global _translate
    _translate = translate


def envelope(
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
    *,
    translate: bool = True,
    **extra: Any,
):
    """The error body; ``translate=False`` for an outage answer (choosing the language may
    read a setting from the database that just failed: the 503 must not wait on it)."""
    tr = _translate if translate else _untranslated
    body: dict[str, Any] = {
        "success": False,
        "status": status,
        "code": code,
        "message": tr(message),
    }
    if errors:
        body["errors"] = [{**item, "message": tr(item.get("message", ""))} for item in errors]
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    return response


def _flatten_messages(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """webargs/marshmallow ``{"json": {"amount": ["..."]}}`` → ``[{field, message}]``."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if not prefix and key in {"json", "query", "form", "files", "headers", "path"}:
                out.extend(_flatten_messages(value, ""))
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten_messages(value, name))
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, dict | list | tuple):
                out.extend(_flatten_messages(item, prefix))
            else:
                out.append({"field": prefix or "_schema", "message": str(item)})
    else:
        out.append({"field": prefix or "_schema", "message": str(messages)})
    return out


def _handle_app_error(exc: AppError):
    response = envelope(exc.status, exc.code, exc.message, exc.errors, **exc.extra)
    response.headers.update(exc.headers)
    if exc.status == 503 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def handle_http(exc: HTTPException):
    """An HTTP error (404, 405, 429, a schema's 400...) as the standard JSON envelope."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if status == 429:
        response = envelope(429, "RATE_LIMITED", "Too many requests, slow down and retry later")
        retry_after = _retry_after()
        if retry_after:
            response.headers["Retry-After"] = retry_after
        return response
    if messages is not None:
        errors = _flatten_messages(messages)
        if errors == [{"field": "_schema", "message": "Invalid JSON body."}]:
            return envelope(400, "VALIDATION_ERROR", "The request body is not valid JSON")
        return envelope(400, "VALIDATION_ERROR", "Validation failed", errors)
    code = _HTTP_CODES.get(status, "HTTP_ERROR" if status < 500 else "INTERNAL_ERROR")
    message = exc.description or exc.name
    if status == 400 and "JSON" in (exc.description or ""):
        message = "The request body is not valid JSON"
    if status == 401:
        message = data.get("message") or "Authentication required"
    response = envelope(status, code, message)
    for key, value in (getattr(exc, "data", None) or {}).get("headers", {}).items():
        response.headers[key] = value
    if status == 405 and exc.get_response().headers.get("Allow"):
        response.headers["Allow"] = exc.get_response().headers["Allow"]
    return response


def _retry_after() -> str | None:
    """Seconds until the breached rate-limit window resets (the limiter keeps its own figure in
    ``X-RateLimit-Retry-After``; a 429 says it in ``Retry-After`` itself)."""
    current = limiter.current_limit
    if current is None:
        return None
    try:
        reset_at = current.reset_at
    except Exception:  # Retry-After is advisory; the 429 itself must still go out
        return None
    return str(max(1, int(reset_at - time.time())))


#: Seconds a client should wait before retrying an answer to an outage.
RETRY_AFTER_SECONDS = 2


def outage_kind(exc: BaseException) -> str | None:
    """``"database"`` or ``"redis"`` when ``exc`` is an infrastructure failure (retryable: the
    transaction rolled back, nothing changed), else ``None``.

    The one failure policy: a pool timeout, a lock or statement timeout, a serialization
    failure or deadlock, a lost connection, Redis down or slow. Every caller that answers
    outside the API (callbacks, webhooks, jobs) asks this too.
    """
    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError):
        return "database"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "database"
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "pgcode", None) in _RETRYABLE_PGCODES:
        return "database"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "redis"
    return None


#: SQLSTATE -> the reason an SRE reads in ``jackpotx_outages_total``.
_PGCODE_REASONS = {
    "40001": "serialization",
    "40P01": "deadlock",
    "55P03": "lock_timeout",
    "57014": "statement_timeout",
    "53300": "too_many_connections",
    "57P01": "shutdown",
    "57P03": "shutdown",
}


def outage_reason(exc: BaseException) -> str:
    """Why ``exc`` is an outage, in one bounded word (a metric label)."""
    if isinstance(exc, PoolTimeout):
        return "pool_timeout"
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    if code in _PGCODE_REASONS:
        return _PGCODE_REASONS[code]
    if isinstance(exc, DBAPIError | redis.exceptions.ConnectionError):
        return "connection"
    if isinstance(exc, redis.exceptions.TimeoutError):
        return "timeout"
    return "other"


def count_outage(exc: BaseException) -> None:
    """One more ``jackpotx_outages_total`` (never fails the answer)."""
    try:
        metrics.outage(outage_kind(exc) or "database", outage_reason(exc))
    except Exception:  # a figure must never fail a request
        log.debug("outage metric not counted", exc_info=True)


#: SQLSTATEs that mean "try again": serialization failure, deadlock, lock timeout,
#: statement timeout / cancel, too many connections, admin shutdown, cannot connect now.
_RETRYABLE_PGCODES = {"40001", "40P01", "55P03", "57014", "53300", "57P01", "57P03"}


def outage_response():
    response = envelope(
        503,
        "SERVICE_UNAVAILABLE",
        "A service we depend on is unavailable, retry later",
        translate=False,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def log_outage(exc: BaseException) -> None:
    """The one log line of an outage: which dependency, which request (the record carries the
    correlation id), the exception."""
    kind = outage_kind(exc) or "database"
    count_outage(exc)
    log.error(
        "%s unavailable on %s %s: %s",
        kind,
        request.method,
        request.path,
        type(exc).__name__,
        exc_info=exc,
    )


def handle_outage(exc: Exception):
    """Roll back, log, answer 503 + ``Retry-After``: what every API outage gets."""
    rollback_quietly()
    log_outage(exc)
    return outage_response()


def rollback_quietly() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the pool discards it
        log.debug("rollback after an outage failed", exc_info=True)


def _handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http(exc)
    if outage_kind(exc) is not None:
        return handle_outage(exc)
    if isinstance(exc, OverflowError) or isinstance(getattr(exc, "orig", None), OverflowError):
        # A number from the request too large for the database (SQLite: beyond 64 bits).
        rollback_quietly()
        return envelope(400, "VALIDATION_ERROR", "A number in the request is out of range")
    log.exception("unhandled error on %s %s", request.method, request.path)
    message = "An unexpected error occurred"
    if current_app.config.get("ENV") == "development" and current_app.debug:
        message = f"{type(exc).__name__}: {exc}"
    return envelope(500, "INTERNAL_ERROR", message)


def init_app(app: Flask) -> None:
    app.register_error_handler(AppError, _handle_app_error)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(redis.exceptions.ConnectionError, handle_outage)
    app.register_error_handler(redis.exceptions.TimeoutError, handle_outage)
    app.register_error_handler(PoolTimeout, handle_outage)
    app.register_error_handler(DBAPIError, _handle_unexpected)
    app.register_error_handler(Exception, _handle_unexpected)
