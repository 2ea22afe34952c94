"""JSON logs carrying the request's correlation id, and the id's life cycle per request."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar

from flask import Flask, g, request
from pythonjsonlogger.json import JsonFormatter

#: The current request's (or job's) correlation id; "-" outside of one.
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")

HEADER = "X-Correlation-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        return True


_base_factory = logging.getLogRecordFactory()


def _record_with_correlation_id(*args, **kwargs) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.correlation_id = correlation_id.get()
    return record


def configure_logging(level: str) -> None:
    """One JSON line per record on stderr, every line with ``correlation_id``. Every record
    carries it from its creation (whatever handler reads it: ours, a test's, a log shipper's)."""
    logging.setLogRecordFactory(_record_with_correlation_id)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_jackpotx", False):
            root.removeHandler(existing)
    handler._jackpotx = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def correlation_from(incoming: str | None) -> str:
    """The caller's correlation id when it is well formed, else a new one."""
    return incoming if incoming and _VALID.match(incoming) else new_correlation_id()


def init_app(app: Flask) -> None:
    @app.before_request
    def _take_correlation_id() -> None:
        value = correlation_from(request.headers.get(HEADER, ""))
        g.correlation_id = value
        g.correlation_token = correlation_id.set(value)

    @app.after_request
    def _echo_correlation_id(response):
        response.headers[HEADER] = g.get("correlation_id") or correlation_id.get()
        return response

    @app.teardown_request
    def _forget_correlation_id(_exc) -> None:
        token = g.pop("correlation_token", None)
        if token is not None:
            try:
                correlation_id.reset(token)
            except ValueError:
                # Reset from another context (streaming responses); dropping it is harmless.
                correlation_id.set("-")
