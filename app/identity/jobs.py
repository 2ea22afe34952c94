"""Identity jobs: GDPR data archives (built on request, expired on a schedule)."""

from __future__ import annotations

from app.core.queues import job
from app.identity import archive


@job
def build_data_archive(archive_id: int) -> str:
    return archive.build(archive_id)


@job
def expire_data_archives() -> int:
    return archive.expire()
