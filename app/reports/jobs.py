"""Report jobs (``app.core.schedule``): the daily rollups and the RTP check."""

from __future__ import annotations

from app.reports.rollups import rollup_recent
from app.reports.rtp import check as _rtp_check


def check_rtp() -> None:
    """Flag the games whose measured RTP departs from the declared one (``app.reports.rtp``)."""
    _rtp_check()


__all__ = ["check_rtp", "rollup_recent"]
