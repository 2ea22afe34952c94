"""Prometheus figures (``GET /metrics``, docs/operations.md "Metrics").

Cheap on the hot path: a request adds one counter and one histogram observation (no query,
no network); per-process levels (database pool, after-commit queue) are sampled at most once
a second at the end of a request and at every scrape; what needs a query or Redis (outbox
backlog, RQ queues and workers) is read only when Prometheus scrapes.

Several gunicorn workers: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory, wiped
by gunicorn at start), each process writes its figures to memory-mapped files there and a
scrape of any worker sums them (``prometheus_client`` multiprocess mode; the levels are
summed over live processes). Without it, each process answers its own figures only.

Invariant: labels have bounded values (route templates, known methods, provider codes of
configured providers, known callback actions, job function names): never a raw path or id.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.core.extensions import db

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "jackpotx_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "jackpotx_http_request_duration_seconds",
    "Time from the first request hook to the answer, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CALLBACKS = Counter(
    "jackpotx_callbacks",
    "Provider callbacks answered, by provider, action and verdict (ok or the error code)",
    ["provider", "action", "verdict"],
)
JOBS = Counter(
    "jackpotx_jobs",
    "Background jobs run in this process group, by function and outcome",
    ["job", "outcome"],
)
OUTAGES = Counter(
    "jackpotx_outages",
    "Requests answered 503 for a dependency failure, by dependency and reason "
    "(lock_timeout, statement_timeout, deadlock, serialization, pool_timeout, connection, "
    "too_many_connections, shutdown, other)",
    ["dependency", "reason"],
)
SOCKETS = Gauge(
    "jackpotx_sockets_connected",
    "Socket.IO connections admitted and open (summed over live processes)",
    multiprocess_mode="livesum",
)
REPLICA_SKIPPED = Counter(
    "jackpotx_replica_skipped",
    "Replica checks that sent reports to the primary, by reason (down, lagging)",
    ["reason"],
)
POOL_CHECKED_OUT = Gauge(
    "jackpotx_db_pool_checked_out",
    "Database connections in use (summed over live processes)",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "jackpotx_db_pool_size",
    "Database pool size without overflow (summed over live processes)",
    multiprocess_mode="livesum",
)
POOL_OVERFLOW = Gauge(
    "jackpotx_db_pool_overflow",
    "Connections opened beyond the pool size (negative: pool not yet full; summed)",
    multiprocess_mode="livesum",
)

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
SAMPLE_SECONDS = 1.0
_next_sample = 0.0

#: name -> (gauge, reader): per-process levels that lower layers cannot be asked for from
#: here (``app.hooks`` registers the after-commit play queue).
_sampled: dict[str, tuple[Gauge, Callable[[], float]]] = {}


def sampled_gauge(name: str, documentation: str, reader: Callable[[], float]) -> None:
    """Declare a per-process level read by ``reader`` (idempotent by name: the latest reader
    wins); summed over live processes in multiprocess mode."""
    if name in _sampled:
        _sampled[name] = (_sampled[name][0], reader)
        return
    _sampled[name] = (Gauge(name, documentation, multiprocess_mode="livesum"), reader)


def callback(provider: str, action: str, verdict: str) -> None:
    CALLBACKS.labels(provider, action, verdict).inc()


def outage(dependency: str, reason: str) -> None:
    OUTAGES.labels(dependency, reason).inc()


def socket_opened() -> None:
    SOCKETS.inc()


def socket_closed() -> None:
    SOCKETS.dec()


def job_finished(name: str, ok: bool) -> None:
    JOBS.labels(name, "success" if ok else "failure").inc()


def replica_skipped(reason: str) -> None:
    REPLICA_SKIPPED.labels(reason).inc()


def sample() -> None:
    """Refresh this process's levels (pool, registered gauges); never raises."""
    global _next_sample
    _next_sample = time.monotonic() + SAMPLE_SECONDS
    # A figure must never fail a request.
    with contextlib.suppress(Exception):
        pool: Any = db.engine.pool
        if hasattr(pool, "checkedout"):
            POOL_CHECKED_OUT.set(pool.checkedout())
            POOL_SIZE.set(pool.size())
            POOL_OVERFLOW.set(pool.overflow())
    for gauge, reader in list(_sampled.values()):
        with contextlib.suppress(Exception):
            gauge.set(reader())


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def init_app(app: Flask) -> None:
    """Count every answer; call before the other request hooks so gates are timed too."""

    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        count_request(
            _route(), request.method, response.status_code, g.pop("metrics_started", None)
        )
        return response


def count_request(route: str, method: str, status: int, started: float | None) -> None:
    """One answer of ``route`` (its URL rule) in the request figures."""
    method = method if method in _METHODS else "OTHER"
    REQUESTS.labels(route, method, str(status)).inc()
    if started is not None:
        LATENCY.labels(route, method).observe(time.perf_counter() - started)
    if time.monotonic() >= _next_sample:
        sample()


# --- the scrape ------------------------------------------------------------------------------


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render(*scrape_time: Collector) -> tuple[bytes, str]:
    """The exposition text: every process's figures (multiprocess mode) or this one's, then
    the ``scrape_time`` collectors' (read now, by this process)."""
    sample()
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    scrape = CollectorRegistry(auto_describe=False)
    for collector in scrape_time:
        scrape.register(collector)
    return body + generate_latest(scrape), CONTENT_TYPE_LATEST


# --- who may scrape ---------------------------------------------------------------------------


def allowed(remote_ip: str, authorization: str | None) -> bool:
    """``METRICS_TOKEN`` as a bearer token (from anywhere), else an address in
    ``METRICS_ALLOW_IPS``."""
    config = current_app.config
    token = config.get("METRICS_TOKEN") or ""
    if token and authorization:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return True
    try:
        address = ipaddress.ip_address(remote_ip)
    except ValueError:
        return False
    for entry in config.get("METRICS_ALLOW_IPS") or []:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
