"""GDPR data archives: built by a job, downloadable once by their owner, expired and erased
with their files."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

from freezegun import freeze_time
from sqlalchemy import select

from app.core.base import utcnow
from app.core.extensions import db
from app.core.models import AuditLog, Notification
from app.identity import archive, gdpr
from app.identity.models import DataExportArchive


def _ask(client, headers):
    answer = client.post("/api/user/data-export", headers=headers)
    assert answer.status_code == 202, answer.json
    return answer.json["data"]


def test_the_archive_is_built_downloaded_once_and_its_file_deleted(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    asked = _ask(client, headers)
    state = client.get(f"/api/user/data-export/archives/{asked['id']}", headers=headers).json
    assert state["data"]["status"] == "ready"  # the job ran (synchronous queue in the tests)
    assert _ask(client, headers)["id"] == asked["id"]  # asking again answers the same one
    row = db.session.scalar(select(DataExportArchive))
    stored = archive.directory() / row.storage_name
    assert stored.is_file()
    assert oct(stored.stat().st_mode)[-3:] == "600"
    [note] = db.session.scalars(select(Notification).where(Notification.user_id == player.id))
    assert note.type == "data_export"

    url = f"/api/user/data-export/archives/{asked['id']}/download"
    got = client.get(url, headers=headers)
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "application/zip"
    assert got.headers["Cache-Control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(got.data)) as zf:
        names = set(zf.namelist())
        document = json.loads(zf.read("export.json"))
    assert {"README.txt", "export.json", "tables/users.json", "tables/wallets.json"} <= names
    assert document["user_id"] == player.id
    assert set(document["tables"]) == {n for n in gdpr.EXPORTED if n in db.metadata.tables}
    [me] = document["tables"]["users"]
    assert "password_hash" not in me
    assert not stored.exists()  # handed over, deleted

    again = client.get(url, headers=headers)
    assert again.status_code == 410
    assert again.json["code"] == "ARCHIVE_GONE"
    actions = db.session.scalars(
        select(AuditLog.action).where(AuditLog.target_id == str(player.id))
    )
    assert {"user.data_export_requested", "user.data_export_downloaded"} <= set(actions)
    assert _ask(client, headers)["id"] != asked["id"]  # downloaded: a new one may be asked


def test_only_the_owner_sees_or_downloads_an_archive(client, factory, token_for):
    owner, other = factory.player(), factory.player()
    asked = _ask(client, token_for(owner))
    for path in (f"/api/user/data-export/archives/{asked['id']}",
                 f"/api/user/data-export/archives/{asked['id']}/download"):  # fmt: skip
        assert client.get(path, headers=token_for(other)).status_code == 404
        assert client.get(path).status_code == 401
    assert (
        client.get(
            "/api/user/data-export/archives/" + "0" * 32, headers=token_for(owner)
        ).status_code
        == 404
    )
    staff = factory.staff("admin")
    assert client.post("/api/user/data-export", headers=token_for(staff)).status_code == 403


def test_an_archive_not_downloaded_in_time_expires_with_its_file(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    asked = _ask(client, headers)
    row = db.session.scalar(select(DataExportArchive))
    stored = archive.directory() / row.storage_name
    with freeze_time(utcnow() + timedelta(hours=73)):
        assert archive.expire() == 1
    late = client.get(f"/api/user/data-export/archives/{asked['id']}/download", headers=headers)
    assert late.status_code == 410
    assert not stored.exists()
    db.session.expire_all()
    assert db.session.get(DataExportArchive, row.id).status == "expired"


def test_an_erasure_deletes_the_archives_and_their_files(client, factory, token_for):
    player = factory.player()
    _ask(client, token_for(player))
    row = db.session.scalar(select(DataExportArchive))
    stored = archive.directory() / row.storage_name
    request = gdpr.request_erasure(player, "leaving")
    gdpr.approve(request.id, factory.staff("admin"))
    assert db.session.scalars(select(DataExportArchive)).all() == []
    assert not stored.exists()
