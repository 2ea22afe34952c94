"""Ids typed by people: "²" passes ``str.isdigit`` but not ``int()``, and 20 digits overflow
BIGINT. Every place that takes an id from a request answers 4xx or filters, never 500."""

from __future__ import annotations

import pytest

from app.core.db import parse_row_id
from app.identity import accounts as identity

ODD_IDS = ["²", "٣", "99999999999999999999", "-1", " 1", "1e3", ""]


@pytest.mark.parametrize("value", ODD_IDS)
def test_parse_row_id_refuses_what_int_or_bigint_would_choke_on(value):
    assert parse_row_id(value) is None


def test_parse_row_id_takes_plain_ids():
    assert parse_row_id("42") == 42
    assert parse_row_id(42) == 42
    assert parse_row_id(True) is None


@pytest.mark.parametrize("value", ["²", "99999999999999999999"])
def test_a_withdrawal_named_by_an_odd_id_is_not_found(client, factory, token_for, value):
    response = client.post(f"/api/withdrawals/{value}/cancel", headers=token_for(factory.player()))
    assert response.status_code == 404, response.json


def test_an_odd_role_id_is_a_validation_error(app):
    from app.core.errors import ValidationError

    with pytest.raises(ValidationError):
        identity.parse_role("²")


@pytest.mark.parametrize(
    "path",
    [
        "/admin/players?q=%C2%B2",
        "/admin/players?q=99999999999999999999",
        "/admin/bets?user_id=%C2%B2",
        "/admin/audit?actor=%C2%B2",
        "/admin/withdrawals?q=%C2%B2",
        "/admin/withdrawals?user_id=99999999999999999999",
    ],
)
def test_console_filters_ignore_odd_ids(signed_in, path):
    client, _admin = signed_in("admin")
    assert client.get(path).status_code == 200
