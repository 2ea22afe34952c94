"""Report jobs (``app.core.schedule``): the daily rollups, the RTP check, the ClickHouse
sink, and the queued CSV exports (one job per export, on the ``reports`` queue; the periodic
expiry of their files)."""

from __future__ import annotations

from typing import Any

from app.core.queues import job
from app.reports import exports, sink
from app.reports.rollups import rollup_recent
from app.reports.rtp import check as _rtp_check

__all__ = ["check_rtp", "expire_exports", "export_to_clickhouse", "rollup_recent", "run_export"]


def export_to_clickhouse() -> dict[str, Any]:
    """Stream the new source rows to ClickHouse (nothing when ``CLICKHOUSE_URL`` is unset).
    A ClickHouse outage fails the run (``SinkFailed``: staff see it on the jobs page); the
    marks did not move, so the next run sends what this one could not."""
    return sink.run_configured()


@job
def run_export(export_id: int) -> str:
    return exports.run(export_id)


@job
def expire_exports() -> dict[str, Any]:
    return exports.expire()


def check_rtp() -> None:
    """Flag the games whose measured RTP departs from the declared one (``app.reports.rtp``)."""
    _rtp_check()
