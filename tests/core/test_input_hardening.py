"""Edge hardening (issue 21): control characters refused with a 400 envelope, CSV cells that a
spreadsheet would run as formulas neutralised, every CSV of the app written through csvsafe."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from app.core import csvsafe


@pytest.mark.parametrize(
    "url",
    [
        "/api/games?search=%00",
        "/api/games?search=abc%01def",
        "/api/games?se%00arch=x",
        "/api/games/%00",
    ],
)
def test_a_control_character_in_the_url_is_a_400_envelope(client, url):
    response = client.get(url)
    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False
    assert body["code"] == "VALIDATION_ERROR"
    assert "Control characters" in body["message"] or "Control characters" in str(body)


def test_a_control_character_in_a_json_body_is_a_400_envelope(client):
    for payload in (
        {"name": "a\u0000b", "count": 1},
        {"name": "ok", "count": 1, "nested": [{"deep": "x\u001by"}]},
        {"name": "ok", "count": 1, "k\u0000ey": "v"},
    ):
        response = client.post("/api/probe/echo", json=payload)
        assert response.status_code == 400, payload
        assert response.get_json()["code"] == "VALIDATION_ERROR"
    named = client.post("/api/probe/echo", json={"name": "a\u0000b", "count": 1})
    assert named.get_json()["errors"] == [
        {"field": "name", "message": "Control characters (such as NUL) are not allowed"}
    ]


def test_tab_and_new_lines_in_json_text_and_plain_unicode_are_fine(client):
    response = client.post("/api/probe/echo", json={"name": "line 1\nline 2\tok\r\né€", "count": 2})
    assert response.status_code == 200
    assert response.get_json()["data"]["name"] == "line 1\nline 2\tok\r\né€"


def test_a_control_character_in_a_console_form_is_refused(client):
    response = client.post("/admin/login", data={"username": "ad\x00min", "password": "x"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-12.50", "-12.50"),
        ("+3", "+3"),
        ("plain", "plain"),
        (-5, -5),
    ],
)
def test_csv_cells_that_could_run_as_formulas_get_an_apostrophe(raw, written):
    assert csvsafe.cell(raw) == written
    buf = io.StringIO()
    csvsafe.writer(buf).writerow([raw])
    assert next(csv.reader(io.StringIO(buf.getvalue(), newline=""))) == [str(written)]


def test_the_app_writes_csv_only_through_csvsafe():
    root = Path(__file__).resolve().parents[2] / "app"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "csvsafe.py" and re.search(r"csv\.(writer|DictWriter)\(", path.read_text())
    ]
    assert offenders == []


def test_the_providers_csv_neutralises_a_formula_in_a_provider_name():
    from app.reports.financial import ProviderRow, providers_csv

    row = ProviderRow(code="evil", name="=1+1")
    text = providers_csv([row], "EUR")
    assert "'=1+1" in text
