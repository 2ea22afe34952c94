"""The financial report against a hand-computed scenario seeded through the real services.

Two UTC days of EUR activity (and USD noise that must not leak in):

day 1 (2026-11-20): deposit 100.00; bet 10.00, win 4.00; bet 5.00 refunded; bonus granted 20.00
day 2 (2026-11-21, 23:30 UTC): bet 20.00, win 50.00 rolled back; bet 8.00 rolled back;
    win 3.00; bonus forfeited 5.00; withdrawal 40.00 paid out (gateway fee 2.5% + 0.30 = 1.30)
day 3 (2026-11-22, 00:00:30 UTC): bet 1.00 (outside a report that ends on day 2)

    day 1: bets 10.00  wins 4.00  GGR 6.00   bonus 20.00  fees 0     NGR -14.00 dep 100 wd 0
    day 2: bets 20.00  wins 3.00  GGR 17.00  bonus -5.00  fees 1.30 NGR 20.70  dep 0   wd 40
    total: bets 30.00  wins 7.00  GGR 23.00  bonus 15.00  fees 1.30 NGR 6.70   dep 100 wd 40
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import pytest
from freezegun import freeze_time

from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.payments import withdrawals
from app.payments.models import PaymentTransaction
from app.reports import financial as financial_reports
from app.wallet import ledger as wallet
from tests.moneykit import fund, open_table

D0, D1, D2, D3 = date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)

pytestmark = pytest.mark.usefixtures("requires_postgres")


@pytest.fixture
def scenario(client, factory, gateway, payout_wire):
    table = open_table(client, factory, cash=0)
    with freeze_time(datetime(2026, 11, 20, 12, 0, tzinfo=UTC), tick=True):
        fund(table.user_id, cash=100_00, bonus=20_00)  # a deposit and a bonus grant
        table.bet("b1", "10.00", round_id="r1")
        table.win("w1", "4.00", round_id="r1")
        table.bet("b2", "5.00", round_id="r2")
        table.refund("rf2", "b2", round_id="r2")
        usd = factory.player(currency="USD")
        fund(usd.id, 999_00, currency="USD")

    with freeze_time(datetime(2026, 11, 21, 23, 30, tzinfo=UTC), tick=True):
        table.bet("b3", "20.00", round_id="r3")
        table.win("w3", "50.00", round_id="r3")
        table.rollback("rb3", "w3", round_id="r3")
        table.bet("b4", "8.00", round_id="r4")
        table.rollback("rb4", "b4", round_id="r4")
        table.win("w5", "3.00", round_id="r4")
        with atomic():
            wallet.post(
                table.user_id,
                "EUR",
                "bonus_forfeit",
                bonus_delta=-5_00,
                source="test",
                idempotency_key=secrets.token_hex(8),
            )
            user = db.session.get(User, table.user_id)
            user.kyc_status, user.kyc_level = "approved", 1
        txn = withdrawals.request_withdrawal(
            db.session.get(User, table.user_id), amount="40.00", currency="EUR", method="sandbox"
        )
        withdrawals.approve_withdrawal(txn.id, factory.staff("manager"))
        table.raw(b'{"action": "bet", "transaction_id": "forged"}', signature="0" * 64)
        ((url, body, headers),) = payout_wire
        assert client.post(urlsplit(url).path, data=body, headers=headers).status_code == 200

    with freeze_time(datetime(2026, 11, 22, 0, 0, 30, tzinfo=UTC), tick=True):
        table.bet("b6", "1.00", round_id="r6")
    db.session.expire_all()
    assert db.session.get(PaymentTransaction, txn.id).status == "completed"
    assert db.session.get(PaymentTransaction, txn.id).fee_minor == 1_30
    return table


def test_the_financial_report_matches_the_hand_computed_scenario(scenario):
    report = financial_reports.financial(D0, D2, currency="EUR")
    by_day = {r.period: r.figures() for r in report.rows}
    zero = dict.fromkeys(financial_reports.FIGURES, 0)
    assert by_day[D0] == zero
    assert by_day[D1] == {
        "bets": 10_00,
        "wins": 4_00,
        "ggr": 6_00,
        "bonus_cost": 20_00,
        "payment_fees": 0,
        "ngr": -14_00,
        "deposits": 100_00,
        "withdrawals": 0,
    }
    assert by_day[D2] == {
        "bets": 20_00,
        "wins": 3_00,
        "ggr": 17_00,
        "bonus_cost": -5_00,
        "payment_fees": 1_30,
        "ngr": 20_70,
        "deposits": 0,
        "withdrawals": 40_00,
    }
    assert report.totals.figures() == {
        "bets": 30_00,
        "wins": 7_00,
        "ggr": 23_00,
        "bonus_cost": 15_00,
        "payment_fees": 1_30,
        "ngr": 6_70,
        "deposits": 100_00,
        "withdrawals": 40_00,
    }
    assert financial_reports.financial(D3, D3, currency="EUR").totals.bets == 1_00
    assert financial_reports.financial(D1, D2, currency="USD").totals.deposits == 999_00


def test_weekly_grouping_adds_the_days_up(scenario):
    report = financial_reports.financial(D0, D2, currency="EUR", group="week")
    ((row),) = report.rows
    assert row.period == date(2026, 11, 16)  # the Monday of that ISO week
    assert row.figures() == report.totals.figures()
    assert row.ngr == 6_70


def test_the_console_page_and_the_csv_export_show_the_same_figures(scenario, signed_in):
    client, _ = signed_in("manager")
    query = "date_from=2026-11-19&date_to=2026-11-21&currency=EUR"
    html = client.get(f"/admin/reports/financial?{query}").get_data(as_text=True)
    assert '<tr data-period="2026-11-21">' in html
    assert "20.70 EUR" in html
    assert "6.70 EUR" in html
    assert "<svg" in html
    export = client.get(f"/admin/reports/financial?{query}&format=csv")
    assert export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [r["period"] for r in rows] == ["2026-11-19", "2026-11-20", "2026-11-21", "total"]
    assert rows[2]["ngr"] == "20.70"
    assert rows[2]["payment_fees"] == "1.30"
    assert rows[-1] == {
        "period": "total",
        "currency": "EUR",
        "bets": "30.00",
        "wins": "7.00",
        "ggr": "23.00",
        "bonus_cost": "15.00",
        "payment_fees": "1.30",
        "ngr": "6.70",
        "deposits": "100.00",
        "withdrawals": "40.00",
    }


def test_the_json_twin_returns_decimal_strings_and_needs_reports_read(
    scenario, client, factory, token_for
):
    manager, support = factory.staff("manager"), factory.staff("support")
    url = "/api/admin/reports/financial?date_from=2026-11-20&date_to=2026-11-21&currency=EUR"
    response = client.get(url, headers=token_for(manager))
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert data["totals"]["ngr"] == "6.70"
    assert data["rows"][0] == {
        "period": "2026-11-20",
        "bets": "10.00",
        "wins": "4.00",
        "ggr": "6.00",
        "bonus_cost": "20.00",
        "payment_fees": "0.00",
        "ngr": "-14.00",
        "deposits": "100.00",
        "withdrawals": "0.00",
    }
    assert client.get(url, headers=token_for(support)).status_code == 403
    assert client.get(url).status_code == 401
    bad = client.get(
        "/api/admin/reports/financial?date_from=2026-11-21&date_to=2026-11-20",
        headers=token_for(manager),
    )
    assert bad.status_code == 400
    assert bad.json["code"] == "VALIDATION_ERROR"


def test_the_dashboard_overview_json_twin_has_money_and_queue_figures(
    client, factory, token_for, gateway
):
    from tests.console.seeding import kyc_submission, verified_player, withdrawal

    kyc_submission(factory.player(), docs=("passport",))
    withdrawal(verified_player(factory, 50_00), "20.00")
    response = client.get(
        "/api/admin/dashboard/overview", headers=token_for(factory.staff("admin"))
    )
    assert response.status_code == 200, response.json
    data = response.json["data"]
    money = {k["key"]: k["value"] for k in data["sections"]["money"]}
    assert money["pending_withdrawals"] == 1
    assert money["pending_kyc"] == 1
    assert money["deposits_today"] == "50.00 EUR"
    assert data["money_series"]["deposits_per_day"][-1]["value"] == "50.00"
    assert len(data["money_series"]["ggr_per_day"]) == 14
    denied = client.get(
        "/api/admin/dashboard/overview", headers=token_for(factory.staff("support"))
    )
    assert denied.status_code == 403


def test_the_providers_report_matches_the_scenario(scenario, signed_in, client, factory, token_for):
    (row,) = [
        r
        for r in financial_reports.providers(D0, D2, currency="EUR")
        if r.code == scenario.provider_code
    ]
    # 4 rounds (r1, r2, r3, r4; r6 is on day 3), bets 30.00, wins 7.00, RTP 7 / 30 = 23.33 %,
    # 10 money callbacks answered ok + 1 forged one refused.
    assert (row.rounds, row.bets, row.wins, row.ggr) == (4, 30_00, 7_00, 23_00)
    assert str(row.rtp) == "23.33"
    assert (row.callbacks, row.callback_errors) == (11, 1)
    manager, _ = signed_in("manager")
    query = "date_from=2026-11-19&date_to=2026-11-21&currency=EUR"
    html = manager.get(f"/admin/reports/providers?{query}").get_data(as_text=True)
    assert f'data-provider="{scenario.provider_code}"' in html
    assert "23.33 %" in html
    export = manager.get(f"/admin/reports/providers?{query}&format=csv").get_data(as_text=True)
    (line,) = [x for x in export.splitlines() if x.startswith(scenario.provider_code)]
    assert line.endswith(",EUR,4,30.00,7.00,23.00,23.33,11,1")
    api = client.get(
        f"/api/admin/reports/providers?{query}", headers=token_for(factory.staff("manager"))
    )
    (entry,) = [p for p in api.json["data"]["providers"] if p["code"] == scenario.provider_code]
    assert entry["rtp"] == "23.33"
    assert entry["ggr"] == "23.00"
