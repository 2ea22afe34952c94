"""The README's tour works as written: its deposit call opens a sandbox checkout for the seeded
player, and the OpenAPI document says what that call needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _tour_body(path: str) -> dict:
    text = README.read_text()
    match = re.search(re.escape(path) + r"[^\n]*\n[^\n]*-d '(\{[^']*\})'", text)
    assert match, f"the README's tour has no call to {path}"
    return json.loads(match.group(1))


def test_the_readme_deposit_example_opens_a_checkout(client, runner):
    assert runner.invoke(args=["jackpotx", "seed-demo"]).exit_code == 0
    login = client.post(
        "/api/auth/login", json={"username": "player1", "password": "Player-jackpot-demo"}
    )
    assert login.status_code == 200, login.json
    headers = {"Authorization": f"Bearer {login.json['token']['access_token']}"}
    body = _tour_body("/api/payment/deposit")
    r = client.post("/api/payment/deposit", headers=headers, json=body)
    assert r.status_code == 201, r.json
    assert r.json["data"]["status"] == "pending"
    assert "/sandbox/" in r.json["data"]["payment_url"]


def test_a_deposit_without_a_way_to_pay_names_both_fields(client, factory, token_for):
    headers = token_for(factory.player())
    r = client.post("/api/payment/deposit", headers=headers, json={"amount": "5.00"})
    assert r.status_code in (400, 422)
    text = json.dumps(r.json)
    assert "method" in text
    assert "gateway_id" in text


def test_the_openapi_document_says_what_a_deposit_needs(client):
    spec = client.get("/api/openapi.json").json
    schema = spec["components"]["schemas"]["DepositArgs"]
    assert schema["required"] == ["amount"]
    assert schema["anyOf"] == [{"required": ["method"]}, {"required": ["gateway_id"]}]
    assert "One of the two is required" in schema["description"]
    amount = schema["properties"]["amount"]
    assert {"type": "number"} in amount["oneOf"]
    assert amount["example"] == "50.00"
