"""Issue 20's console items that the server decides: menu, badges, KPI links, confirmations,
the maintenance banner, panels that reload after a decision, money formatting, favicon."""

from __future__ import annotations

import re

from app.blueprints.console.core import thousands
from app.core import settings as settings_service
from app.core.db import atomic
from app.play.models import Provider
from tests.console.seeding import kyc_submission, verified_player, withdrawal
from tests.moneykit import open_table

HX = {"HX-Request": "true"}


def _nav(html: str) -> str:
    start = html.index('<ul class="nav">')
    return html[start : html.index("</ul>", start)]


def test_deposits_and_providers_are_in_the_menu_with_pending_badges(
    signed_in, factory, player, gateway
):
    kyc_submission(player)
    payee = verified_player(factory, 200_00)
    withdrawal(payee, "40.00")
    withdrawal(payee, "60.00")
    manager, _ = signed_in("manager")
    nav = _nav(manager.get("/admin/").get_data(as_text=True))
    assert 'href="/admin/deposits">Deposits</a>' in nav
    assert 'href="/admin/providers">Providers</a>' in nav
    assert re.search(r'id="nav-count-withdrawals" data-count="2">2<', nav)
    assert re.search(r'id="nav-count-kyc" data-count="1">1<', nav)
    # The badges reload through htmx after a decision or a live notification.
    fragment = manager.get("/admin/nav-counts", headers=HX).get_data(as_text=True)
    assert 'id="nav-count-withdrawals" data-count="2" hx-swap-oob="true"' in fragment
    assert 'id="nav-count-kyc" data-count="1" hx-swap-oob="true"' in fragment

    support, _ = signed_in("support")  # KYC yes, money queues no
    nav = _nav(support.get("/admin/").get_data(as_text=True))
    assert "nav-count-kyc" in nav
    assert "nav-count-withdrawals" not in nav
    assert "Deposits" not in nav
    fragment = support.get("/admin/nav-counts", headers=HX).get_data(as_text=True)
    assert "nav-count-withdrawals" not in fragment


def test_an_empty_queue_has_a_hidden_badge(signed_in):
    admin, _ = signed_in("admin")
    nav = _nav(admin.get("/admin/").get_data(as_text=True))
    assert 'id="nav-count-kyc" data-count="0" hidden>' in nav


def test_kpi_cards_link_to_the_list_behind_the_figure(signed_in, factory, gateway):
    payee = verified_player(factory, 1_234_567_89)
    withdrawal(payee, "40.00")
    manager, _ = signed_in("manager")
    html = manager.get("/admin/").get_data(as_text=True)
    assert (
        '<a class="kpi" data-kpi="pending_withdrawals" href="/admin/withdrawals?status=pending">'
        in html
    )
    assert '<a class="kpi" data-kpi="pending_kyc" href="/admin/kyc?status=pending">' in html
    assert 'data-kpi="deposits_today" href="/admin/deposits?status=all"' in html
    # A Manager may not open the staff list: that card is not a link.
    assert '<div class="kpi" data-kpi="staff_total">' in html
    # Amounts with thousands separators.
    assert '<p class="kpi-value">1,234,567.89 EUR</p>' in html


def test_money_has_thousands_separators():
    assert thousands("1234567.89 EUR") == "1,234,567.89 EUR"
    assert thousands("-121.73 EUR") == "-121.73 EUR"
    assert thousands("-12345.00") == "-12,345.00"
    assert thousands(1500) == "1,500"
    assert thousands("3 / 4") == "3 / 4"


def test_provider_disable_and_promotion_activate_ask_for_confirmation(signed_in, factory, client):
    from app.bonus import promotions

    table = open_table(client, factory)
    provider = Provider.query.filter_by(code=table.provider_code).one()
    promotion = promotions.create_promotion(
        {"name": "Spring reload", "type": "reload", "currency": "EUR", "match_percent": 50}
    )
    manager, _ = signed_in("manager")
    html = manager.get("/admin/providers").get_data(as_text=True)
    row = html[html.index(f'id="provider-row-{provider.id}"') :]
    row = row[: row.index("</tr>")]
    assert f'hx-confirm="Disable {provider.name}? Its games stop launching' in row
    assert "data-confirm=" in row
    disabled = manager.post(f"/admin/providers/{provider.id}/toggle", headers=HX)
    assert "hx-confirm" not in disabled.get_data(as_text=True)  # enabling needs no question

    html = manager.get("/admin/promotions").get_data(as_text=True)
    row = html[html.index(f'id="promotion-row-{promotion.id}"') :]
    row = row[: row.index("</tr>")]
    assert 'hx-confirm="Activate Spring reload? Players can claim it at once."' in row
    active = manager.post(f"/admin/promotions/{promotion.id}/activate", headers=HX)
    assert "hx-confirm" not in active.get_data(as_text=True).split("</tr>")[0]


def test_maintenance_asks_before_switching_on_and_a_banner_shows_while_on(signed_in):
    admin, _ = signed_in("admin")
    page = admin.get("/admin/settings").get_data(as_text=True)
    assert 'data-confirm="Turn maintenance mode on?' in page
    assert 'data-confirm-when="on"' in page
    assert "maintenance-banner" not in admin.get("/admin/players").get_data(as_text=True)

    with atomic():
        settings_service.set_maintenance(True, message="Database upgrade")
    players = admin.get("/admin/players").get_data(as_text=True)
    assert 'id="maintenance-banner"' in players
    assert "Maintenance mode is ON: players get 503 (“Database upgrade”)" in players
    assert 'href="/admin/settings">Turn it off in Settings</a>' in players
    # Switching it off again asks nothing.
    assert "data-confirm=" not in admin.get("/admin/settings").get_data(as_text=True)
    manager, _ = signed_in("manager")
    banner = manager.get("/admin/").get_data(as_text=True)
    assert 'id="maintenance-banner"' in banner
    assert "Turn it off in Settings" not in banner  # Managers cannot change settings


def test_a_decision_makes_stale_panels_reload(signed_in, factory, gateway):
    client, _ = signed_in("manager")
    player = factory.player(currency="EUR")
    detail = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    for panel in ("player-ledger", "player-bets", "player-history"):
        assert re.search(
            rf'id="{panel}" hx-get="/admin/players/{player.id}\??" '
            rf'hx-trigger="jx:changed from:body" hx-select="#{panel}"',
            detail,
        ), panel
    done = client.post(
        f"/admin/players/{player.id}/adjust-balance",
        data={
            "currency": "EUR",
            "balance_type": "cash",
            "amount": "25.00",
            "reason": "Goodwill",
            "context": "panel",
        },
        headers=HX,
    )
    assert done.headers["HX-Trigger"] == "jx:changed"
    # The reloaded page carries the adjustment in the ledger and the audit history.
    again = client.get(f"/admin/players/{player.id}", headers=HX).get_data(as_text=True)
    ledger = again[again.index('id="player-ledger"') : again.index('id="player-bets"')]
    assert "adjustment" in ledger
    assert "wallet.adjust" in again[again.index('id="player-history"') :]

    submission = kyc_submission(player)
    kyc_page = client.get(f"/admin/kyc/{submission.id}").get_data(as_text=True)
    assert 'hx-select="#kyc-history-panel"' in kyc_page
    payee = verified_player(factory, 100_00)
    withdrawal(payee, "40.00")
    queue = client.get("/admin/withdrawals").get_data(as_text=True)
    assert 'hx-trigger="jx:changed from:body, jx:admin-notification from:body"' in queue
    assert 'id="withdrawals-queue"' in queue
    assert 'hx-trigger="jx:admin-notification from:body" hx-select="#withdrawals-queue"' in queue
    assert 'hx-select="#kyc-queue"' in client.get("/admin/kyc").get_data(as_text=True)


def test_every_console_page_has_a_favicon(client, signed_in):
    login = client.get("/admin/login").get_data(as_text=True)
    href = re.search(r'<link rel="icon" href="([^"]+)"', login).group(1)
    assert href.endswith("/static/console/favicon.svg")
    icon = client.get(href)
    assert icon.status_code == 200
    assert icon.mimetype == "image/svg+xml"
    assert b"<svg" in icon.get_data()
    icon.close()


def _texts(svg: str, klass: str) -> list[tuple[float, str]]:
    return [
        (float(x), text)
        for x, text in re.findall(rf'<text class="{klass}" x="([\d.]+)"[^>]*>([^<]*)</text>', svg)
    ]


def test_a_negative_figure_is_drawn_on_an_axis_that_includes_it():
    from app.blueprints.console.charts import HEIGHT, PAD_BOTTOM, PAD_TOP, _axis, money_chart

    assert _axis([-121.73, 3.5, 0]) == (-150.0, 50.0, 50.0)
    assert _axis([0, 4, 1]) == (0.0, 4.0, 1.0)
    assert _axis([-3, -1]) == (-4.0, 0.0, 1.0)
    chart = money_chart(
        "NGR", ["1 Dec", "2 Dec", "3 Dec"], [-121_73, 3_50, 0], "EUR", value_label="NGR"
    )
    svg = str(chart.svg())
    ticks = [text for _x, text in _texts(svg, "axis")[:5]]
    assert ticks == ["-150", "-100", "-50", "0", "50"]
    assert '<text class="axis-unit"' in svg
    assert ">EUR</text>" in svg
    bars = re.findall(
        r'<rect class="(bar[^"]*)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg
    )
    for _klass, y, height in bars:  # every bar inside the plot area
        assert float(y) >= PAD_TOP - 0.1
        assert float(y) + float(height) <= HEIGHT - PAD_BOTTOM + 0.1
    negative = [b for b in bars if b[0] == "bar bar-negative"]
    assert len(negative) == 1
    baseline = float(re.search(r'<line class="baseline" x1="[\d.]+" y1="([\d.]+)"', svg).group(1))
    assert float(negative[0][1]) == baseline  # hangs down from the zero line


def test_axis_labels_fit_in_the_left_margin():
    from app.blueprints.console.charts import CHAR_W, money_chart

    chart = money_chart(
        "Deposits", ["1 Dec", "2 Dec"], [1_234_567_89, 0], "EUR", value_label="Deposits"
    )
    svg = str(chart.svg())
    ticks = [(x, text) for x, text in _texts(svg, "axis") if "Dec" not in text]
    assert [text for _x, text in ticks] == ["0", "500,000", "1,000,000", "1,500,000"]
    for x, text in ticks:  # right-aligned at x: the text starts at x - its width
        assert x - CHAR_W * len(text) >= 0, text


def test_validation_messages_are_in_staff_wording():
    from app.blueprints.console.wording import human

    assert human("Missing data for required field.", "Name *") == "Name is required."
    assert human("This field is required.", "Reason") == "Reason is required."
    assert human("Not a valid integer.", "Priority") == "Enter a whole number, e.g. 10."
    assert human("Must be greater than or equal to 0.", "Max bet") == "Must be at least 0."
    assert human("Field must be between 3 and 500 characters long.") == "Enter 3 to 500 characters."
    assert (
        human("date_to is before date_from", labels={"date_to": "To", "date_from": "From"})
        == "“To” is before “From”."
    )


def test_a_form_shows_every_problem_at_once_next_to_its_field(signed_in):
    from tests.console.test_console_promotions import WELCOME, _field_errors

    client, _ = signed_in("manager")
    response = client.post(
        "/admin/promotions/new",
        data={
            **WELCOME,
            "name": "",
            "priority": "soon",
            "game_contributions": "seven",
            "starts_at": "not a date",
        },
    )
    assert response.status_code == 400
    errors = _field_errors(response.get_data(as_text=True))
    # One round: an unreadable field (game contributions) does not hide the others.
    assert errors["name"] == ["Name is required."]
    assert errors["priority"] == ["Enter a whole number, e.g. 10."]
    assert errors["starts_at"] == ["Enter a date and time (UTC)."]
    assert errors["game_contributions"]
    assert "Missing data for required field." not in response.get_data(as_text=True)


def test_a_reversed_report_range_is_explained_in_plain_words(signed_in):
    client, _ = signed_in("manager")
    html = client.get(
        "/admin/reports/financial?date_from=2026-11-20&date_to=2026-11-01&currency=E1"
    ).get_data(as_text=True)
    assert "The “To” date is before the “From” date." in html
    assert "is not a currency code" in html  # both problems in one answer
    assert "Date_to" not in html


def test_the_adjustment_amount_error_sits_next_to_the_amount_with_the_others(signed_in, factory):
    client, _ = signed_in("manager")
    player = factory.player(currency="EUR")
    response = client.post(
        f"/admin/players/{player.id}/adjust-balance",
        data={"currency": "EUR", "balance_type": "cash", "amount": "12,5x", "reason": ""},
        headers=HX,
    )
    html = response.get_data(as_text=True)
    amount = html[html.index('id="amount"') : html.index('id="reason"')]
    assert "Enter an amount in EUR, e.g. 25.00 or -12.50." in amount
    assert "Reason is required." in html[html.index('id="reason"') :]
    assert "flash-error" not in html


def test_callbacks_show_the_player_by_name_the_payload_and_why_a_replay_was_refused(
    signed_in, factory, client
):
    from sqlalchemy import select

    from app.core.extensions import db
    from app.identity.models import User
    from app.play.models import ProviderCallback

    table = open_table(client, factory, cash=1_00)
    table.bet("b-fine", "0.50")
    table.bet("b-too-big", "50.00")
    fine, row = (
        db.session.scalar(
            select(ProviderCallback).where(ProviderCallback.transaction_id == transaction)
        )
        for transaction in ("b-fine", "b-too-big")
    )
    assert row.verdict != "ok"
    username = db.session.get(User, table.user_id).username
    admin, _ = signed_in("admin")
    html = admin.get("/admin/callbacks").get_data(as_text=True)
    line = html[html.index(f'id="callback-row-{fine.id}"') :]
    line = line[: line.index("</tr>")]
    assert f'<a href="/admin/players/{table.user_id}">{username}</a>' in line
    assert "<summary>Payload</summary>" in line
    assert '"transaction_id": "b-fine"' in line  # the request, pretty-printed

    response = admin.post(f"/admin/callbacks/{row.id}/replay", data={"context": "row"}, headers=HX)
    answer = response.get_data(as_text=True)
    assert "flash-warning" in answer
    assert f"Callback #{row.id} replayed: refused (" in answer
    assert "This callback was refused; its replay gives the same answer" in answer


def test_audit_amounts_are_money_not_minor_units(signed_in, factory):
    client, _ = signed_in("manager")
    player = factory.player(currency="EUR")
    client.post(
        f"/admin/players/{player.id}/adjust-balance",
        data={
            "currency": "EUR",
            "balance_type": "cash",
            "amount": "1,510.00",  # thousands separators accepted
            "reason": "Goodwill",
            "context": "panel",
        },
        headers=HX,
    )
    html = client.get("/admin/audit?action=wallet.adjust").get_data(as_text=True)
    changes = html[html.index('class="table table-compact audit-changes"') :]
    assert '<td>Balance</td><td class="num">0.00 EUR</td><td class="num">1,510.00 EUR</td>' in (
        changes
    )
    assert '<td>Amount</td><td class="num"></td><td class="num">1,510.00 EUR</td>' in changes
    assert '<td>Bonus balance</td><td class="num">0.00 EUR</td>' in changes


def test_enum_values_read_as_words(signed_in):
    from datetime import timedelta

    from app.core.base import utcnow
    from app.prizes import lottery

    now = utcnow()
    lottery.create(
        {"title": "Words draw", "currency": "EUR", "prize_amount": "10", "ticket_price": "1",
         "max_tickets": 10, "sales_open_at": now - timedelta(minutes=1),
         "sales_close_at": now + timedelta(days=1)},
        actor=None,
    )  # fmt: skip
    client, _ = signed_in("manager")
    html = client.get("/admin/lottery").get_data(as_text=True)
    assert ">On sale</span>" in html
    assert "On_sale" not in html
    assert '<option value="scheduled">Scheduled</option>' in html
    promotions = client.get("/admin/promotions").get_data(as_text=True)
    assert '<option value="deposit_match">Deposit match</option>' in promotions


def test_the_promotion_form_marks_fields_that_belong_to_one_type(signed_in):
    client, _ = signed_in("manager")
    html = client.get("/admin/promotions/new").get_data(as_text=True)
    assert 'data-type-switch="type"' in html
    pattern = (
        r'data-for-types="([a-z_ ]+)">\s*<div class="field[^"]*">\s*'
        r'(?:<label class="check"><input[^>]*id="([a-z_]+)"|<label for="([a-z_]+)")'
    )
    scoped = {checkbox or text: types for types, checkbox, text in re.findall(pattern, html)}
    assert scoped["match_percent"] == "deposit_match reload"
    assert scoped["bonus_amount"] == "no_deposit"
    assert scoped["cashback_percent"] == "cashback"
    assert scoped["free_spins_count"] == "free_spins"
    assert (
        "data-for-types"
        not in html[
            html.index('id="wagering_multiplier"') - 300 : html.index('id="wagering_multiplier"')
        ]
    )
    # Amounts say which unit they are in.
    assert "In the currency above, e.g. 25.00" in html


def test_lists_filter_by_player_username_or_email_with_suggestions(signed_in, factory, client):
    mine = open_table(client, factory, cash=100_00)
    mine.bet("b-mine", "2.00", round_id="r-mine")
    other = open_table(client, factory, cash=100_00)
    other.bet("b-other", "3.00", round_id="r-other")
    from app.core.extensions import db
    from app.identity.models import User

    me = db.session.get(User, mine.user_id)
    support, _ = signed_in("support")
    by_name = support.get(f"/admin/bets?player={me.username.upper()}").get_data(as_text=True)
    assert "r-mine" in by_name
    assert "r-other" not in by_name
    them = db.session.get(User, other.user_id)
    by_mail = support.get(f"/admin/transactions?player={me.email}").get_data(as_text=True)
    ledger = by_mail[by_mail.index('id="ledger-table"') :]
    assert f">{me.username}</a>" in ledger
    assert f">{them.username}</a>" not in ledger
    nobody = support.get("/admin/bets?player=nobody-at-all").get_data(as_text=True)
    assert "r-mine" not in nobody
    assert "r-other" not in nobody
    assert f'value="{me.username.upper()}" list="f-player-options"' in by_name
    old_links = support.get(f"/admin/bets?user_id={me.id}").get_data(as_text=True)
    assert "r-mine" in old_links
    assert "r-other" not in old_links

    options = support.get(f"/admin/players/suggest?player={me.username[:4]}", headers=HX)
    assert f'<option value="{me.username}">{me.username} · {me.email} · #{me.id}</option>' in (
        options.get_data(as_text=True)
    )
    assert (
        support.get("/admin/players/suggest?player=%25", headers=HX).get_data(as_text=True).strip()
        == ""
    )
    profile = support.get(f"/admin/players/{me.id}").get_data(as_text=True)
    assert f'href="/admin/bets?player={me.username}"' in profile


def test_a_manual_jackpot_payout_finds_the_player_by_e_mail(signed_in, factory):
    from tests.console.test_console_prizes import _cash, _pool

    pool = _pool()
    player = factory.player(username="mail_winner", email="Winner@Example.test")
    client, _ = signed_in("admin")
    url = f"/admin/jackpots/{pool.id}/payout"
    assert "Player (username, e-mail or id)" in client.get(url, headers=HX).get_data(as_text=True)
    nobody = client.post(
        url,
        data={"player": "nobody@example.test", "reason": "hit", "confirm": "y"},
        headers=HX,
    ).get_data(as_text=True)
    field = nobody[nobody.index('id="player"') : nobody.index('id="reason"')]
    assert "No player with this username, e-mail or id." in field  # next to the field
    client.post(
        url,
        data={"player": "winner@example.test", "reason": "provider hit", "confirm": "y"},
        headers=HX,
    )
    assert _cash(player.id) == 100_00
