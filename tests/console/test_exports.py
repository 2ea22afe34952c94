"""Queued CSV exports (``app.reports.exports``): asked through the API or the console, built by
the job (in-process here: ``RQ_SYNC``), downloaded by whom asked only, audited, neutralised
against formula injection, capped, expired by the periodic sweep; "My exports" polls while one
is in progress (a headless-chromium test watches the table turn ready without a reload)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.core.schedule import PERIODIC_JOBS
from app.reports import exports
from app.reports.models import ReportExport
from tests.console.test_console_browser import (  # noqa: F401  (fixtures)
    _shot,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)
from tests.moneykit import fund

FORMULAS = ('=HYPERLINK("http://evil.test","x")', "+SUM(1,2)", "-2+3", "@cmd", "\tTAB")


def _csv(answer) -> list[list[str]]:
    return list(csv.reader(io.StringIO(_text(answer))))


def _text(answer) -> str:
    """The body of a file answer, its file closed (``send_file`` streams from disk)."""
    try:
        return answer.get_data(as_text=True)
    finally:
        answer.close()


def _export(public_id: str) -> ReportExport:
    db.session.expire_all()
    return db.session.scalars(
        sa.select(ReportExport).where(ReportExport.public_id == public_id)
    ).one()


def _audit(action: str) -> list[AuditLog]:
    return list(db.session.scalars(sa.select(AuditLog).where(AuditLog.action == action)))


@pytest.fixture
def manager(factory, token_for):
    user = factory.staff("manager")
    return user, token_for(user)


def test_a_queued_export_is_built_with_progress_and_only_its_requester_downloads_it(
    client, factory, token_for, manager, app
):
    staff, headers = manager
    tag = "xq" + utcnow().strftime("%H%M%S%f")
    for i, name in enumerate(FORMULAS):
        factory.player(username=f"{tag}{i}", email=f"{tag}{i}@x.test", first_name=name)
    evil = factory.player(username=f"{FORMULAS[0]}{tag}", email=f"{tag}evil@x.test")
    app.config["EXPORT_BATCH_ROWS"] = 2  # 6 players: 3 batches, 3 progress updates
    try:
        asked = client.post(
            "/api/admin/exports", json={"kind": "players", "q": tag}, headers=headers
        )
    finally:
        app.config["EXPORT_BATCH_ROWS"] = 2000
    assert asked.status_code == 202, asked.json
    public_id = asked.json["data"]["id"]
    assert len(public_id) == 32

    detail = client.get(f"/api/admin/exports/{public_id}", headers=headers).json["data"]
    assert detail["status"] == "ready"
    assert detail["percent"] == 100
    assert (detail["rows_done"], detail["rows_total"]) == (6, 6)
    assert detail["file_name"].startswith("players")

    answer = client.get(f"/api/admin/exports/{public_id}/download", headers=headers)
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    rows = _csv(answer)
    assert rows[0] == exports.PLAYER_HEADER
    assert len(rows) == 7
    by_id = {int(r[0]): r for r in rows[1:]}
    # A username that a spreadsheet would run as a formula is written as text.
    assert by_id[evil.id][1] == "'" + evil.username
    assert [r[0] for r in rows[1:]] == sorted((r[0] for r in rows[1:]), key=int)

    # Someone else (same role, same permissions) sees nothing: not the row, not the file.
    other = token_for(factory.staff("manager"))
    assert client.get(f"/api/admin/exports/{public_id}", headers=other).status_code == 404
    assert client.get(f"/api/admin/exports/{public_id}/download", headers=other).status_code == 404
    assert client.get("/api/admin/exports", headers=other).json["data"]["exports"] == []
    mine = client.get("/api/admin/exports", headers=headers).json["data"]["exports"]
    assert [e["id"] for e in mine] == [public_id]

    requested = [a for a in _audit("report.export_requested") if a.target_id == public_id]
    downloaded = [a for a in _audit("report.export_downloaded") if a.target_id == public_id]
    assert len(requested) == 1
    assert requested[0].actor_id == staff.id
    assert len(downloaded) == 1
    assert _export(public_id).downloads == 1


def test_the_ledger_export_holds_every_movement_of_the_filter_in_batches(
    client, factory, manager, app
):
    _staff, headers = manager
    player = factory.player()
    for amount in (1_00, 2_00, 3_00, 4_00, 5_00):
        fund(player.id, cash=amount, currency="EUR")
    app.config["EXPORT_BATCH_ROWS"] = 2
    try:
        asked = client.post(
            "/api/admin/exports",
            json={"kind": "transactions", "player_id": player.id, "currency": "EUR"},
            headers=headers,
        )
    finally:
        app.config["EXPORT_BATCH_ROWS"] = 2000
    public_id = asked.json["data"]["id"]
    rows = _csv(client.get(f"/api/admin/exports/{public_id}/download", headers=headers))
    assert rows[0] == exports.TRANSACTION_HEADER
    body = rows[1:]
    assert len(body) == 5
    assert {r[2] for r in body} == {str(player.id)}
    assert sorted(r[5] for r in body) == ["1.00", "2.00", "3.00", "4.00", "5.00"]


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "nope"},
        {"kind": ""},
        {"kind": "financial", "date_from": "abc"},
        {"kind": "financial", "date_from": "2026-13-45"},
        {"kind": "financial", "date_from": "2026-02-01", "date_to": "2026-01-01"},
        {"kind": "financial", "date_from": "2020-01-01", "date_to": "2026-01-01"},
        {"kind": "financial", "currency": "E1R"},
        {"kind": "financial", "group": "hour"},
        {"kind": "players", "q": "nul\x00byte"},
        {"kind": "players", "status": "god"},
        {"kind": "players", "country": "1e"},
        {"kind": "transactions", "player_id": -5},
        {"kind": "transactions", "player_id": "abc"},
        {"kind": "transactions", "player_id": 1e309},
        {"kind": "transactions", "type": "free_money"},
    ],
)
def test_bad_export_requests_are_refused_and_change_nothing(client, manager, body):
    _staff, headers = manager
    answer = client.post("/api/admin/exports", json=body, headers=headers)
    assert answer.status_code == 400, answer.json
    assert db.session.scalar(sa.select(sa.func.count(ReportExport.id))) == 0
    assert _audit("report.export_requested") == []


def test_an_export_needs_the_permission_of_what_it_exports(client, factory, token_for):
    support = token_for(factory.staff("support"))  # players yes, reports no
    refused = client.post("/api/admin/exports", json={"kind": "financial"}, headers=support)
    assert refused.status_code == 403
    player = token_for(factory.player())
    assert (
        client.post("/api/admin/exports", json={"kind": "players"}, headers=player).status_code
        == 403
    )
    assert client.get("/api/admin/exports", headers=player).status_code == 403
    agent = token_for(factory.staff("agent"))  # no export kinds, no exports.own
    assert client.get("/api/admin/exports", headers=agent).status_code == 403
    assert client.get("/api/admin/exports").status_code == 401
    assert db.session.scalar(sa.select(sa.func.count(ReportExport.id))) == 0


def test_a_report_export_holds_what_the_report_page_downloads(client, manager, signed_in):
    _staff, headers = manager
    query = {"date_from": "2026-11-01", "date_to": "2026-11-03", "currency": "EUR"}
    asked = client.post(
        "/api/admin/exports", json={"kind": "financial", "group": "day", **query}, headers=headers
    )
    public_id = asked.json["data"]["id"]
    queued = client.get(f"/api/admin/exports/{public_id}/download", headers=headers)
    console, _ = signed_in("manager")
    direct = console.get(
        "/admin/reports/financial?format=csv&group=day&"
        + "&".join(f"{k}={v}" for k, v in query.items())
    )
    text = _text(queued)
    assert text == direct.get_data(as_text=True)
    assert len(list(csv.reader(io.StringIO(text)))) == 5  # header, 3 days, total


def test_an_export_over_the_row_cap_fails_and_leaves_no_file(client, factory, manager, app):
    _staff, headers = manager
    tag = "cap" + utcnow().strftime("%H%M%S%f")
    for i in range(3):
        factory.player(username=f"{tag}{i}")
    app.config["EXPORT_MAX_ROWS"] = 2
    try:
        asked = client.post(
            "/api/admin/exports", json={"kind": "players", "q": tag}, headers=headers
        )
    finally:
        app.config["EXPORT_MAX_ROWS"] = 1_000_000
    export = _export(asked.json["data"]["id"])
    assert export.status == "failed"
    assert "more than 2" in export.error
    assert export.storage_name is None
    assert list(exports.export_dir().glob("*.part")) == []
    download = client.get(f"/api/admin/exports/{export.public_id}/download", headers=headers)
    assert download.status_code == 409


def test_expired_exports_lose_their_file_and_answer_410(client, manager):
    _staff, headers = manager
    public_id = client.post("/api/admin/exports", json={"kind": "players"}, headers=headers).json[
        "data"
    ]["id"]
    export = _export(public_id)
    path = exports.export_dir() / export.storage_name
    assert path.is_file()

    assert exports.expire(now=utcnow())["expired"] == 0  # not yet
    assert path.is_file()
    result = exports.expire(now=export.expires_at + timedelta(seconds=1))
    assert result["expired"] == 1
    assert not path.exists()
    assert _export(public_id).status == "expired"
    gone = client.get(f"/api/admin/exports/{public_id}/download", headers=headers)
    assert gone.status_code == 410
    assert gone.json["code"] == "EXPORT_EXPIRED"


def test_a_running_export_whose_job_died_is_marked_failed(manager):
    staff, _ = manager
    now = utcnow()
    with atomic():
        db.session.add(
            ReportExport(
                public_id="a" * 32,
                requested_by_id=staff.id,
                kind="players",
                params={},
                status="running",
                file_name="players.csv",
                created_at=now - timedelta(hours=3),
                started_at=now - timedelta(hours=3),
                updated_at=now - timedelta(hours=2),
                expires_at=now + timedelta(hours=20),
            )
        )
    assert exports.expire(now=now)["interrupted"] == 1
    assert _export("a" * 32).status == "failed"
    assert exports.run(_export("a" * 32).id) == "skipped"  # a retried job builds nothing


def test_a_staff_member_has_at_most_five_exports_in_progress(client, manager):
    staff, headers = manager
    now = utcnow()
    with atomic():
        for i in range(exports.MAX_ACTIVE):
            db.session.add(
                ReportExport(
                    public_id=f"{i:032d}",
                    requested_by_id=staff.id,
                    kind="players",
                    params={},
                    status="queued",
                    file_name="players.csv",
                    created_at=now,
                    updated_at=now,
                    expires_at=now + timedelta(hours=1),
                )
            )
    answer = client.post("/api/admin/exports", json={"kind": "players"}, headers=headers)
    assert answer.status_code == 409


def test_the_expiry_sweep_is_scheduled():
    assert ("app.reports.jobs.expire_exports", 600, "reports") in PERIODIC_JOBS


def test_my_exports_page_polls_while_an_export_is_in_progress(signed_in, factory):
    console, staff = signed_in("manager")
    factory.player(username="page_export_player")
    queued = console.post("/admin/exports", data={"kind": "players", "q": "page_export"})
    assert queued.status_code == 302
    page = console.get("/admin/exports").get_data(as_text=True)
    assert "export queued" in page
    assert "Download" in page
    assert 'data-polling="true"' not in page  # nothing in progress: no polling
    mine = exports.list_for(staff.user)
    assert len(mine) == 1
    download = console.get(f"/admin/exports/{mine[0].public_id}/download")
    assert download.status_code == 200
    assert "page_export_player" in _text(download)

    now = utcnow()
    with atomic():
        db.session.add(
            ReportExport(
                public_id="b" * 32,
                requested_by_id=staff.user.id,
                kind="players",
                params={"status": "active"},
                status="running",
                rows_done=40,
                rows_total=160,
                file_name="players-active.csv",
                created_at=now,
                updated_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    fragment = console.get("/admin/exports", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="exports-table"')
    assert 'hx-trigger="every 2s"' in fragment
    assert "25%" in fragment

    other, _ = signed_in("manager")
    assert other.get(f"/admin/exports/{mine[0].public_id}/download").status_code == 404
    assert "page_export" not in other.get("/admin/exports").get_data(as_text=True)


def test_the_console_refuses_an_export_it_may_not_give(signed_in):
    console, _ = signed_in("support")
    answer = console.post("/admin/exports", data={"kind": "financial"}, follow_redirects=True)
    assert "Export not queued" in answer.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(ReportExport.id))) == 0


@pytest.mark.browser
def test_a_manager_queues_an_export_and_watches_it_turn_ready(
    live_server,  # noqa: F811
    browser,  # noqa: F811
    make_staff,
    factory,
):
    from selenium.webdriver.common.by import By

    manager = make_staff("manager")
    factory.player(username="browser_export_player")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "nav .nav"))
    browser.get(f"{live_server}/admin/players?q=browser_export")
    browser.find_element(By.ID, "queue-export-players").click()
    ready = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-status=ready]"))
    assert "browser_export" in ready[0].text or "q: browser_export" in browser.page_source
    assert browser.find_elements(By.CSS_SELECTOR, "a.export-download")
    _shot(browser, "exports-01-ready")

    # An export in progress: the table polls and turns ready without a page load.
    now = utcnow()
    with atomic():
        export = ReportExport(
            public_id="c" * 32,
            requested_by_id=manager.user.id,
            kind="players",
            params={"q": "browser_export"},
            status="queued",
            file_name="players.csv",
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(hours=1),
        )
        db.session.add(export)
    export_id = export.id
    db.session.remove()
    browser.get(f"{live_server}/admin/exports")
    row = f"#export-{'c' * 32}"
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"{row}[data-status=queued]"))
    assert browser.find_elements(By.CSS_SELECTOR, "#exports-table[data-polling=true]")
    browser.execute_script("window.__stillSamePage = true;")
    _shot(browser, "exports-02-queued")
    assert exports.run(export_id) == "ready"
    db.session.remove()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"{row}[data-status=ready]"))
    assert browser.execute_script("return window.__stillSamePage === true")
    assert not browser.find_elements(By.CSS_SELECTOR, "#exports-table[data-polling=true]")
    _shot(browser, "exports-03-ready-by-polling")


def test_the_ledger_page_queues_an_export_of_its_player_filter(signed_in, factory):
    console, staff = signed_in("support")  # transactions.read, no reports
    player = factory.player(username="ledger_export_player")
    fund(player.id, cash=12_34, currency="EUR")
    page = console.get(f"/admin/transactions?player={player.username}").get_data(as_text=True)
    assert 'id="queue-export-transactions"' in page
    assert f'name="player" value="{player.username}"' in page
    console.post("/admin/exports", data={"kind": "transactions", "player": player.username})
    (export,) = exports.list_for(staff.user)
    assert export.params["player_id"] == player.id
    rows = _csv(console.get(f"/admin/exports/{export.public_id}/download"))
    assert [r[5] for r in rows[1:]] == ["12.34"]

    refused = console.post(
        "/admin/exports",
        data={"kind": "transactions", "player": "nobody_by_that_name"},
        follow_redirects=True,
    )
    assert "No player matches" in refused.get_data(as_text=True)
    assert len(exports.list_for(staff.user)) == 1
