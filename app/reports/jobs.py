"""Report jobs (``app.core.schedule``): the daily rollups, and the queued CSV exports (one
job per export, on the ``reports`` queue; the periodic expiry of their files)."""

from __future__ import annotations

from typing import Any

from app.core.queues import job
from app.reports import exports
from app.reports.rollups import rollup_recent

__all__ = ["expire_exports", "rollup_recent", "run_export"]


@job
def run_export(export_id: int) -> str:
    return exports.run(export_id)


@job
def expire_exports() -> dict[str, Any]:
    return exports.expire()
