"""Report jobs (``app.core.schedule``): the daily rollups and the ClickHouse sink."""

from __future__ import annotations

from typing import Any

from app.reports import sink
from app.reports.rollups import rollup_recent

__all__ = ["export_to_clickhouse", "rollup_recent"]


def export_to_clickhouse() -> dict[str, Any]:
    """Stream the new source rows to ClickHouse (nothing when ``CLICKHOUSE_URL`` is unset).
    A ClickHouse outage fails the run (``SinkFailed``: staff see it on the jobs page); the
    marks did not move, so the next run sends what this one could not."""
    return sink.run_configured()
