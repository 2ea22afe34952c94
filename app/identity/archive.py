"""GDPR data archives: a player asks, a job builds a ZIP of everything held about them
(``gdpr.export``), the player downloads it once (docs/identity.md, "GDPR").

Invariants:
* One archive in the making per player: asking again while one is queued or ready (and not
  yet downloaded) answers that one.
* Only its owner sees or downloads an archive (anyone else: 404, ids are random). The
  download is single use: the row moves ``ready → downloaded`` in one conditional UPDATE
  before the bytes are read, and the file is deleted; a second try is 410.
* An archive not downloaded within ``GDPR_ARCHIVE_TTL_HOURS`` expires (file deleted) by the
  periodic job; an erasure deletes the player's archives and files.
* Files are written under ``EXPORT_DIR/gdpr`` with random names, mode 0600, as ``.part`` then
  renamed: a crash never leaves a half archive that looks ready.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from app.core import audit, notifications, outbox
from app.core.base import utcnow
from app.core.db import atomic
from app.core.errors import AppError, Conflict, NotFound
from app.core.extensions import db
from app.identity import gdpr
from app.identity.models import DataExportArchive, User

#: Archives bigger than this are refused at build (a player's data is far smaller).
MAX_BYTES = 50 * 1024 * 1024
README = """JackpotX: your personal data (GDPR articles 15 and 20)

export.json          everything below in one document
tables/<name>.json   the rows of each table that holds data about you

"withheld_columns" in export.json names the columns left out (secrets such as password
digests, and where files are stored); "excluded_tables" names the tables not handed out
and why. Ask support if anything is unclear.
"""


class ArchiveGone(AppError):
    status, code, message = (
        410,
        "ARCHIVE_GONE",
        "This archive was already downloaded or has expired",
    )


def archive_json(row: DataExportArchive) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "status": row.status,
        "size_bytes": row.size_bytes,
        "created_at": row.created_at.isoformat(),
        "ready_at": row.ready_at.isoformat() if row.ready_at else None,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "downloaded_at": row.downloaded_at.isoformat() if row.downloaded_at else None,
    }


def directory() -> Path:
    config = current_app.config
    base = Path(config["EXPORT_DIR"] or Path(config["INSTANCE_DIR"]) / "exports")
    path = base / "gdpr"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def request(user: User) -> DataExportArchive:
    """Queue an archive for ``user`` (or answer the one already coming)."""
    with atomic():
        pending = db.session.scalar(
            select(DataExportArchive)
            .where(
                DataExportArchive.user_id == user.id,
                DataExportArchive.status.in_(("queued", "ready")),
            )
            .order_by(DataExportArchive.id.desc())
            .limit(1)
            .with_for_update()
        )
        if pending is not None:
            return pending
        row = DataExportArchive(
            public_id=secrets.token_hex(16), user_id=user.id, status="queued", created_at=utcnow()
        )
        db.session.add(row)
        db.session.flush()
        audit.record(
            "user.data_export_requested",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"archive": row.public_id},
        )
        # Durable: survives a Redis outage (the outbox hands it to RQ once Redis answers).
        outbox.add_job("app.identity.jobs.build_data_archive", row.id)
    return row


def get_for(user: User, public_id: Any) -> DataExportArchive:
    row = db.session.scalar(
        select(DataExportArchive).where(DataExportArchive.public_id == str(public_id)[:32])
    )
    if row is None or row.user_id != user.id:
        raise NotFound("No such archive")
    return row


def build(archive_id: int) -> str:
    """The job: write the ZIP, mark the archive ready, tell the player (idempotent: an archive
    not queued any more is left alone)."""
    row = db.session.get(DataExportArchive, archive_id)
    if row is None or row.status != "queued":
        return "skipped"
    user = db.session.get_one(User, row.user_id)
    document = gdpr.export(user)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", README)
        archive.writestr("export.json", json.dumps(document, indent=1, ensure_ascii=False))
        for name, rows in document["tables"].items():
            archive.writestr(f"tables/{name}.json", json.dumps(rows, indent=1, ensure_ascii=False))
    data = buffer.getvalue()
    if len(data) > MAX_BYTES:
        with atomic():
            failed = db.session.get_one(DataExportArchive, archive_id)
            failed.status, failed.error = "failed", "archive too large; support will send it"
        return "failed"
    storage = f"{secrets.token_hex(16)}.zip"
    part = directory() / f"{storage}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    part.rename(directory() / storage)
    now = utcnow()
    ttl = int(current_app.config["GDPR_ARCHIVE_TTL_HOURS"])
    with atomic():
        ready = db.session.get_one(DataExportArchive, archive_id)
        ready.status, ready.storage_name, ready.size_bytes = "ready", storage, len(data)
        ready.ready_at, ready.expires_at = now, now + timedelta(hours=ttl)
        notifications.notify(
            user.id,
            "data_export",
            "Your data archive is ready",
            f"Download it once within {ttl} hours from your account's privacy page.",
            data={"archive": ready.public_id},
            dedupe_key=f"data_export:{ready.public_id}",
        )
    return "ready"


def download(user: User, public_id: Any) -> tuple[str, bytes]:
    """The archive's file name and bytes, once (the file is deleted)."""
    row = get_for(user, public_id)
    now = utcnow()
    with atomic():
        taken = db.session.execute(
            update(DataExportArchive)
            .where(
                DataExportArchive.id == row.id,
                DataExportArchive.status == "ready",
                DataExportArchive.expires_at > now,
            )
            .values(status="downloaded", downloaded_at=now)
            .returning(DataExportArchive.storage_name)
        ).scalar_one_or_none()
        if taken is None:
            if row.status == "queued":
                raise Conflict("This archive is still being prepared")
            raise ArchiveGone()
        path = directory() / taken
        data = path.read_bytes()
        audit.record(
            "user.data_export_downloaded",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"archive": row.public_id, "bytes": len(data)},
        )
    with contextlib.suppress(OSError):
        path.unlink()
    return f"jackpotx-data-{row.created_at:%Y%m%d}-{row.public_id[:8]}.zip", data


def expire(now: Any = None) -> int:
    """Ready archives past their time: file deleted, row expired (the periodic job)."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(DataExportArchive).where(
            DataExportArchive.status == "ready", DataExportArchive.expires_at <= now
        )
    ).all()
    for row in rows:
        _forget(row)
        with atomic():
            db.session.execute(
                update(DataExportArchive)
                .where(DataExportArchive.id == row.id, DataExportArchive.status == "ready")
                .values(status="expired", storage_name=None)
            )
    return len(rows)


def erase_for(user_id: int) -> None:
    """Erasure: the player's archives and their files go (caller's transaction)."""
    for row in db.session.scalars(
        select(DataExportArchive).where(DataExportArchive.user_id == user_id)
    ):
        _forget(row)
        db.session.delete(row)


def _forget(row: DataExportArchive) -> None:
    if row.storage_name:
        with contextlib.suppress(OSError):
            (directory() / row.storage_name).unlink()
