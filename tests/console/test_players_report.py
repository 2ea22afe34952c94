"""The players report against a hand-computed scenario.

Registered on 2026-11-20: ada (MT), bea (MT), cem (DE); dan (DE) on 2026-11-24 (outside).
ada: first deposit 11-20, bets 11-20 and 11-21 (returns on day 1).
bea: first deposit 11-21, bets 11-27 (returns on day 7).
cem: nothing. dan: deposit 11-24 (outside the range).

Report 11-20..11-21, looked at on 2026-12-31 (every cohort member is 30 days old):
    11-20: registrations 3, first deposits 1, active 1
    11-21: registrations 0, first deposits 1, active 1
    countries: MT 2 / 2, DE 1 / 0
    R1 1 of 3 = 33.33 %, R7 1 of 3 = 33.33 %, R30 0 of 3 = 0.00 %
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

import pytest
from freezegun import freeze_time

from app.core.db import atomic
from app.reports import financial as financial_reports
from app.wallet import ledger as wallet
from tests.moneykit import fund

pytestmark = pytest.mark.usefixtures("requires_postgres")


def _at(day: int, month: int = 11):
    return freeze_time(datetime(2026, month, day, 10, 0, tzinfo=UTC), tick=True)


def _bet(user_id: int) -> None:
    with atomic():
        wallet.post(
            user_id,
            "EUR",
            "bet",
            cash_delta=-1_00,
            source="test",
            idempotency_key=secrets.token_hex(8),
        )


@pytest.fixture
def cohort(factory):
    with _at(20):
        ada = factory.player(username="ada_r", country="MT")
        bea = factory.player(username="bea_r", country="MT")
        factory.player(username="cem_r", country="DE")
        fund(ada.id, 50_00)
        _bet(ada.id)
    with _at(21):
        _bet(ada.id)
        fund(bea.id, 20_00)
    with _at(27):
        _bet(bea.id)
    with _at(24):
        dan = factory.player(username="dan_r", country="DE")
        fund(dan.id, 10_00)


def test_players_report_matches_the_hand_computed_cohort(cohort):
    with _at(31, 12):
        report = financial_reports.players(date(2026, 11, 20), date(2026, 11, 21))
    rows = [(d.day.day, d.registrations, d.first_deposits, d.active) for d in report.days]
    assert rows == [(20, 3, 1, 1), (21, 0, 1, 1)]
    assert report.countries == [("MT", 2, 2), ("DE", 1, 0)]
    assert {k: (size, back, str(pct)) for k, (size, back, pct) in report.retention.items()} == {
        "R1": (3, 1, "33.33"),
        "R7": (3, 1, "33.33"),
        "R30": (3, 0, "0.00"),
    }


def test_retention_ignores_players_too_young_to_have_a_day_n(cohort):
    with _at(23):  # on 11-23 the cohort is 3 days old: R1 known, R7 and R30 not yet
        report = financial_reports.players(date(2026, 11, 20), date(2026, 11, 21))
    assert report.retention["R1"][:2] == (3, 1)
    assert report.retention["R7"] == (0, 0, None)


def test_players_page_csv_and_json_twin(cohort, signed_in, client, factory, token_for):
    manager, _ = signed_in("manager")
    query = "date_from=2026-11-20&date_to=2026-11-21"
    html = manager.get(f"/admin/reports/players?{query}").get_data(as_text=True)
    assert '<tr data-country="MT"><td>MT</td><td class="num">2</td><td class="num">2</td>' in html
    csv_text = manager.get(f"/admin/reports/players?{query}&format=csv").get_data(as_text=True)
    assert csv_text.splitlines() == [
        "day,registrations,first_deposits,active",
        "2026-11-20,3,1,1",
        "2026-11-21,0,1,1",
    ]
    api = client.get(f"/api/admin/reports/users?{query}", headers=token_for(factory.staff("admin")))
    assert api.status_code == 200, api.json
    data = api.json["data"]
    assert data["countries"][0] == {"country": "MT", "registrations": 2, "first_deposits": 2}
    assert data["retention"]["R1"] == {"cohort": 3, "returned": 1, "percent": "33.33"}
    denied = client.get(
        f"/api/admin/reports/users?{query}", headers=token_for(factory.staff("support"))
    )
    assert denied.status_code == 403
