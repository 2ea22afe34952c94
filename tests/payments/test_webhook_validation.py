"""A webhook is checked in two steps: its signature (INVALID_SIGNATURE), then its fields
(VALIDATION_ERROR naming the field). Either refusal changes nothing but the webhook log."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from app.core.db import atomic
from app.core.extensions import db
from app.payments import gateways_admin
from app.payments.gateways import sandbox
from app.payments.gateways.stripe import compute_signature
from app.payments.models import PaymentTransaction, PaymentWebhook
from app.payments.records import new_public_id
from tests.payments_helpers import cash_and_held, sandbox_event, signed_sandbox, start_deposit

SANDBOX = "/api/payment/webhook/sandbox"


@pytest.fixture
def deposit(client, factory, token_for, gateway):
    player = factory.player()
    data = start_deposit(client, token_for(player), "50.00")
    data["user_id"] = player.id
    return data


def last_log() -> PaymentWebhook:
    return db.session.scalars(select(PaymentWebhook).order_by(PaymentWebhook.id.desc())).first()


def status_of(transaction_id: str) -> str:
    db.session.expire_all()
    return db.session.scalars(
        select(PaymentTransaction.status).where(PaymentTransaction.public_id == transaction_id)
    ).one()


def assert_unchanged(deposit) -> None:
    assert status_of(deposit["transaction_id"]) == "pending"
    assert cash_and_held(deposit["user_id"]) == (0, 0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": ...}, "event"),
        ({"event": "payment.refunded"}, "event"),
        ({"event": 7}, "event"),
        ({"transaction_id": ...}, "transaction_id"),
        ({"transaction_id": ""}, "transaction_id"),
        ({"transaction_id": 123}, "transaction_id"),
        ({"amount": ...}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": "fifty"}, "amount"),
        ({"amount": "50.001"}, "amount"),
        ({"amount": ["50.00"]}, "amount"),
        ({"currency": ...}, "currency"),
        ({"currency": 978}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"gateway_reference": {"id": 1}}, "gateway_reference"),
    ],
)
def test_a_signed_sandbox_webhook_with_a_missing_or_mistyped_field_names_it(
    client, deposit, change, field
):
    raw, headers = signed_sandbox(sandbox_event("payment.succeeded", deposit, **change))
    answer = client.post(SANDBOX, data=raw, headers=headers)
    assert answer.status_code == 400, answer.json
    assert answer.json["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in answer.json["errors"]] == [field]
    assert_unchanged(deposit)
    log = last_log()
    assert (log.signature_valid, log.verdict) == (True, "invalid_payload")


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"payment.succeeded"', b""])
def test_a_signed_body_that_is_not_a_json_object_is_a_validation_error(client, deposit, raw):
    answer = client.post(SANDBOX, data=raw, headers=signed_sandbox(raw)[1])
    assert answer.status_code == 400
    assert answer.json["code"] == "VALIDATION_ERROR"
    assert answer.json["errors"][0]["field"] == "body"
    assert_unchanged(deposit)


def test_a_bad_signature_stays_invalid_signature_whatever_the_body(client, deposit):
    for body in (
        sandbox_event("payment.succeeded", deposit),
        sandbox_event("payment.succeeded", deposit, amount=...),
    ):
        raw, headers = signed_sandbox(body, secret="not-the-gateway-secret")
        answer = client.post(SANDBOX, data=raw, headers=headers)
        assert answer.status_code == 400
        assert answer.json["code"] == "INVALID_SIGNATURE"
        assert (last_log().signature_valid, last_log().verdict) == (False, "invalid_signature")
    # Nothing reads the body before the signature is checked, not even as JSON.
    for content_type in ("text/plain", "application/json"):
        unsigned = client.post(SANDBOX, data=b"{not json", headers={"Content-Type": content_type})
        assert unsigned.status_code == 400
        assert unsigned.json["code"] == "INVALID_SIGNATURE"
    assert_unchanged(deposit)


def test_a_valid_webhook_after_a_malformed_one_still_applies_once(client, deposit):
    broken = signed_sandbox(sandbox_event("payment.succeeded", deposit, currency=...))
    assert client.post(SANDBOX, data=broken[0], headers=broken[1]).status_code == 400
    good = signed_sandbox(sandbox_event("payment.succeeded", deposit))
    first = client.post(SANDBOX, data=good[0], headers=good[1])
    assert first.json["data"]["verdict"] == "applied"
    second = client.post(SANDBOX, data=good[0], headers=good[1])
    assert second.status_code == 200
    assert second.json["data"]["verdict"] == "duplicate"
    assert cash_and_held(deposit["user_id"]) == (50_00, 0)


STRIPE_SECRET = "whsec_stripe_test_secret"


@pytest.fixture
def stripe_deposit(client, factory):
    gw = gateways_admin.create_gateway(
        {
            "code": "stripe",
            "name": "Stripe",
            "type": "card",
            "adapter": "stripe",
            "direction": "deposit",
            "webhook_secret": STRIPE_SECRET,
            "api_secret": "sk_test_x",
            "supported_currencies": ["EUR"],
        }
    )
    player = factory.player()
    with atomic():
        txn = PaymentTransaction(
            public_id=new_public_id(),
            user_id=player.id,
            gateway_id=gw.id,
            type="deposit",
            status="pending",
            amount_minor=50_00,
            currency="EUR",
            fee_minor=0,
            ledger_refs={},
        )
        db.session.add(txn)
    return {"transaction_id": txn.public_id, "user_id": player.id}


def stripe_post(client, body: dict):
    raw = json.dumps(body).encode()
    now = int(time.time())
    header = f"t={now},v1={compute_signature(STRIPE_SECRET, now, raw)}"
    return client.post(
        "/api/payment/webhook/stripe",
        data=raw,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def stripe_completed(transaction_id: str, **obj) -> dict:
    session = {
        "id": "cs_test_1",
        "payment_status": "paid",
        "amount_total": 5000,
        "currency": "eur",
        "metadata": {"transaction_id": transaction_id},
    }
    session.update(obj)
    session = {k: v for k, v in session.items() if v is not ...}
    return {"id": "evt_1", "type": "checkout.session.completed", "data": {"object": session}}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("type"), "type"),
        (lambda b: b.pop("data"), "data.object"),
        (lambda b: b["data"].update(object="cs_1"), "data.object"),
        (lambda b: b["data"]["object"].pop("metadata"), "data.object.metadata.transaction_id"),
        (lambda b: b["data"]["object"].pop("amount_total"), "data.object.amount_total"),
        (lambda b: b["data"]["object"].update(amount_total="5000"), "data.object.amount_total"),
        (lambda b: b["data"]["object"].update(amount_total=True), "data.object.amount_total"),
        (lambda b: b["data"]["object"].pop("currency"), "data.object.currency"),
        (lambda b: b["data"]["object"].update(id=["cs"]), "data.object.id"),
    ],
)
def test_a_signed_stripe_event_with_a_missing_or_mistyped_field_names_it(
    client, stripe_deposit, mutate, field
):
    body = stripe_completed(stripe_deposit["transaction_id"])
    mutate(body)
    answer = stripe_post(client, body)
    assert answer.status_code == 400, answer.json
    assert answer.json["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in answer.json["errors"]] == [field]
    assert_unchanged(stripe_deposit)


def test_a_signed_stripe_event_we_do_not_use_is_acknowledged(client, stripe_deposit):
    answer = stripe_post(client, {"id": "evt_2", "type": "charge.refunded", "data": {"object": {}}})
    assert answer.status_code == 200
    assert answer.json["data"]["verdict"] == "ignored"
    paid = stripe_post(client, stripe_completed(stripe_deposit["transaction_id"]))
    assert paid.json["data"]["verdict"] == "applied"
    again = stripe_post(client, stripe_completed(stripe_deposit["transaction_id"]))
    assert again.json["data"]["verdict"] == "duplicate"
    assert cash_and_held(stripe_deposit["user_id"]) == (50_00, 0)


def test_the_sandbox_never_sends_a_body_its_own_parser_refuses(gateway, deposit):
    body = sandbox.encode_event(
        "payment.succeeded", deposit["transaction_id"], "sbx_1", 50_00, "EUR", "sbx_acct_x"
    )
    event = gateways_admin.adapter_for(gateway).parse_webhook(body, {})
    assert (event.amount_minor, event.currency, event.instrument) == (50_00, "EUR", "sbx_acct_x")
