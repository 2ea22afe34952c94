"""Report jobs (``app.core.schedule``): the daily rollups."""

from __future__ import annotations

from app.reports.rollups import rollup_recent

__all__ = ["rollup_recent"]
