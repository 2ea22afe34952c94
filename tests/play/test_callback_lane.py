"""The callback lane (``app.blueprints.provider.lane``) answers exactly what Flask's request
cycle answers: status, every header in order, body. Each request is sent twice, once with the
lane off (``CALLBACK_LANE``) and once with it on."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from app.core.extensions import db
from app.play.models import ProviderCallback
from tests.moneykit import Table, open_table, reconcile_clean

CORR = {"X-Correlation-ID": "lane-test-1"}


@pytest.fixture
def table(client, factory) -> Table:
    return open_table(client, factory)


def _post(app, client, path: str, body: bytes, *, lane: bool, **headers: str):
    before = app.config["CALLBACK_LANE"]
    app.config["CALLBACK_LANE"] = lane
    try:
        return client.post(path, data=body, headers={**CORR, **headers})
    finally:
        app.config["CALLBACK_LANE"] = before


def _seen(response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, list(response.headers.items()), response.get_data()


def _both(app, client, path: str, body: bytes, **headers: str):
    via_flask = _seen(_post(app, client, path, body, lane=False, **headers))
    via_lane = _seen(_post(app, client, path, body, lane=True, **headers))
    return via_flask, via_lane


def _signed(table: Table, action: str, **fields: Any) -> tuple[bytes, dict[str, str]]:
    payload = {
        "action": action,
        "session_token": table.token,
        "game_id": table.game_external,
        "currency": table.currency,
        **fields,
    }
    body = json.dumps(payload).encode()
    return body, {"Content-Type": "application/json", "X-Signature": table.sign(body)}


def _url(table: Table) -> str:
    return f"/api/provider-callback/{table.provider_code}"


def test_a_replayed_bet_is_answered_the_same_by_the_lane_and_by_flask(app, client, table):
    body, headers = _signed(table, "bet", transaction_id="b1", round_id="r1", amount="2.50")
    first = _seen(_post(app, client, _url(table), body, lane=True, **headers))
    assert json.loads(first[2])["status"] == "ok"
    via_flask, via_lane = _both(app, client, _url(table), body, **headers)
    assert via_lane == via_flask
    assert via_lane[2] == first[2]
    # The lane's log rows carry the correlation id and the caller's address as Flask's do.
    rows = db.session.scalars(
        sa.select(ProviderCallback).where(ProviderCallback.transaction_id == "b1")
    ).all()
    assert [r.correlation_id for r in rows] == ["lane-test-1"] * 3
    assert len({r.remote_ip for r in rows}) == 1
    reconcile_clean()


def test_a_first_bet_answers_the_same_headers_by_both_ways(app, client, table):
    b1, h1 = _signed(table, "bet", transaction_id="b1", round_id="r1", amount="1.00")
    b2, h2 = _signed(table, "bet", transaction_id="b2", round_id="r1", amount="1.00")
    via_flask = _seen(_post(app, client, _url(table), b1, lane=False, **h1))
    via_lane = _seen(_post(app, client, _url(table), b2, lane=True, **h2))
    assert via_lane[0] == via_flask[0] == 200
    assert [k for k, _ in via_lane[1]] == [k for k, _ in via_flask[1]]
    assert [kv for kv in via_lane[1] if kv[0] != "Content-Length"] == [
        kv for kv in via_flask[1] if kv[0] != "Content-Length"
    ]
    assert json.loads(via_lane[2])["balance"] == "98.00"


@pytest.mark.parametrize(
    "case",
    ["bad_signature", "unknown_provider", "malformed_json", "duplicate_keys", "deep_json", "path"],
)
def test_refusals_are_answered_the_same_by_the_lane_and_by_flask(app, client, table, case):
    body, headers = _signed(table, "bet", transaction_id="b1", round_id="r1", amount="1.00")
    path = _url(table)
    if case == "bad_signature":
        headers["X-Signature"] = "0" * 64
    elif case == "unknown_provider":
        path = "/api/provider-callback/nosuchprovider"
    elif case == "malformed_json":
        body = b'{"action": "bet",'
    elif case == "duplicate_keys":
        body = b'{"action": "bet", "action": "win"}'
    elif case == "deep_json":
        body = b"[" * 5000 + b"]" * 5000
    else:
        path += "/transaction/bet"
    if case in ("malformed_json", "duplicate_keys", "deep_json"):
        headers["X-Signature"] = table.sign(body)
    via_flask, via_lane = _both(app, client, path, body, **headers)
    assert via_lane == via_flask
    # The native protocol ignores a sub-path: that bet is applied once, and replayed.
    assert table.balances() == ((99_00, 0) if case == "path" else (100_00, 0))


def test_the_rate_limit_refuses_the_same_way(app, client, table, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_ENABLED", True)
    monkeypatch.setitem(app.config, "RATE_LIMIT_CALLBACK", "2/minute")
    body, headers = _signed(table, "balance")
    for lane in (False, True):  # the two allowed calls, one each way
        assert _post(app, client, _url(table), body, lane=lane, **headers).status_code == 200
    via_flask, via_lane = _both(app, client, _url(table), body, **headers)
    assert via_flask[0] == via_lane[0] == 429

    def without_retry_after(seen):
        return seen[0], [kv for kv in seen[1] if kv[0] != "Retry-After"], seen[2]

    assert without_retry_after(via_lane) == without_retry_after(via_flask)
    assert "Retry-After" in dict(via_lane[1])


@pytest.mark.parametrize("case", ["too_large", "origin", "get"])
def test_what_the_lane_leaves_to_flask_is_answered_by_flask(app, client, table, case):
    body, headers = _signed(table, "balance")
    if case == "too_large":
        body = b" " * (int(app.config["CALLBACK_MAX_BODY_BYTES"]) + 1)
    elif case == "origin":
        headers["Origin"] = "http://localhost:3000"
    if case == "get":
        response = client.get(_url(table), headers=CORR)
        assert response.status_code == 405
        return
    response = client.post(_url(table), data=body, headers={**CORR, **headers})
    if case == "too_large":
        assert response.status_code == 413
    else:
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
