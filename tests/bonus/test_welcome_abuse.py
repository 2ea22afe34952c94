"""One welcome bonus per person: a second account sharing a device, a public IP or a payment
card/account with one that already received a welcome bonus is refused and flagged."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import select

from app.compliance.models import RiskFlag
from app.core.bus import subscribe
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from app.payments.gateways import sandbox
from tests.bonus.test_free_spins import studio  # noqa: F401 -- fixture: JxOriginals with free rounds
from tests.bonus.test_promotions import bonus_balance, bonuses_of, promo
from tests.moneykit import reconcile_clean
from tests.payments.conftest import Wire
from tests.payments.test_payments import start_deposit
from tests.payments_helpers import sandbox_gateway

IP_A, IP_B = "81.2.69.142", "81.2.69.143"


@pytest.fixture
def wire(client, monkeypatch):
    w = Wire(client)
    monkeypatch.setattr(sandbox, "http_post", w)
    return w


@pytest.fixture
def gateway(app):
    return sandbox_gateway()


@pytest.fixture
def events():
    seen = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


def register(client, name, *, ip=IP_A, device=None):
    headers = {"X-Device-Fingerprint": device} if device else {}
    answer = client.post(
        "/api/auth/register",
        json={"username": name, "email": f"{name}@example.test", "password": "StrongPass123!"},
        headers=headers,
        environ_base={"REMOTE_ADDR": ip},
    )
    assert answer.status_code == 201, answer.json
    return db.session.get(User, answer.json["data"]["user"]["id"])


def no_deposit(**kw):
    kw.setdefault("name", "Welcome 10")
    return promo(type="no_deposit", bonus_amount_minor=10_00, **kw)


def claim(client, token_for, user, p):
    return client.post(f"/api/promotions/claim/{p.id}", headers=token_for(user), json={})


def flags_of(user):
    db.session.expire_all()
    return db.session.scalars(
        select(RiskFlag).where(RiskFlag.user_id == user.id, RiskFlag.kind == "duplicate_identity")
    ).all()


def deposit_with_card(client, w, headers, amount, card):
    data = start_deposit(client, headers, amount)
    path = "/" + data["payment_url"].split("/", 3)[3]
    assert client.post(f"{path}/pay", data={"account": card}).status_code == 200
    (answer,) = w.flush()
    assert answer.status_code == 200, answer.json
    return data


def test_a_shared_device_refuses_the_second_welcome_bonus_and_flags_it(
    client,
    token_for,
    events,
):
    p = no_deposit()
    first = register(client, "alpha", ip=IP_A)
    # The first account used the device at a login, the second at registration.
    login = client.post(
        "/api/auth/login",
        json={"username": "alpha", "password": "StrongPass123!"},
        headers={"X-Device-Fingerprint": "device-123"},
        environ_base={"REMOTE_ADDR": IP_A},
    )
    assert login.status_code == 200, login.json
    assert claim(client, token_for, first, p).status_code == 201
    second = register(client, "bravo", ip=IP_B, device="device-123")
    refused = claim(client, token_for, second, p)
    assert refused.status_code == 400
    assert refused.json["code"] == "PROMOTION_NOT_AVAILABLE"
    assert refused.json["reason"] == "duplicate_identity"
    assert "device" in refused.json["errors"][0]["message"]
    assert bonus_balance(second.id) == (0, 0)
    assert bonuses_of(second.id) == []
    (flag,) = flags_of(second)
    assert flag.status == "open"
    assert flag.reference == f"promotion:{p.id}"
    assert flag.details["matches"] == [{"user_id": first.id, "signals": ["device"]}]
    assert any(
        e.name == "admin.notification" and e.data.get("kind") == "duplicate_identity"
        for e in events
    )
    # Trying again is refused again and audited again, without a second open flag.
    assert claim(client, token_for, second, p).status_code == 400
    assert len(flags_of(second)) == 1
    audits = db.session.scalars(
        select(AuditLog).where(
            AuditLog.action == "bonus.refused_duplicate_identity",
            AuditLog.target_id == str(second.id),
        )
    ).all()
    assert len(audits) == 2
    reconcile_clean()


def test_a_shared_public_ip_refuses_but_another_address_does_not(client, token_for):
    p = no_deposit()
    first = register(client, "charlie", ip=IP_A, device="dev-c")
    assert claim(client, token_for, first, p).status_code == 201
    same_ip = register(client, "delta", ip=IP_A, device="dev-d")
    refused = claim(client, token_for, same_ip, p)
    assert refused.json["reason"] == "duplicate_identity"
    assert flags_of(same_ip)[0].details["matches"] == [{"user_id": first.id, "signals": ["ip"]}]
    elsewhere = register(client, "echo", ip=IP_B, device="dev-e")
    assert claim(client, token_for, elsewhere, p).status_code == 201
    assert bonus_balance(elsewhere.id) == (0, 10_00)


def test_loopback_and_private_addresses_are_not_an_identity(client, token_for):
    p = no_deposit()
    first = register(client, "foxtrot", ip="127.0.0.1")
    assert claim(client, token_for, first, p).status_code == 201
    second = register(client, "golf", ip="127.0.0.1")
    assert claim(client, token_for, second, p).status_code == 201


def test_the_signals_that_count_are_configurable(app, client, token_for, monkeypatch):
    monkeypatch.setitem(app.config, "WELCOME_DUPLICATE_SIGNALS", ["device", "payment"])
    p = no_deposit()
    first = register(client, "hotel", ip=IP_A)
    assert claim(client, token_for, first, p).status_code == 201
    second = register(client, "india", ip=IP_A)
    assert claim(client, token_for, second, p).status_code == 201
    assert flags_of(second) == []


def test_a_shared_payment_card_gets_no_first_deposit_bonus_but_the_deposit_is_credited(
    client,
    token_for,
    gateway,
    wire,
):
    promo(first_deposit_only=True, auto_apply=True)
    first = register(client, "juliet", ip=IP_A)
    deposit_with_card(client, wire, token_for(first), "50.00", "4111 1111 1111 1111")
    assert bonus_balance(first.id) == (50_00, 50_00)
    second = register(client, "kilo", ip=IP_B)
    deposit_with_card(client, wire, token_for(second), "40.00", "4111-1111-1111-1111")
    assert bonus_balance(second.id) == (40_00, 0)
    assert bonuses_of(second.id) == []
    (flag,) = flags_of(second)
    assert flag.details["matches"] == [{"user_id": first.id, "signals": ["payment"]}]
    assert flag.details["context"] == "deposit"
    other_card = register(client, "lima", ip="81.2.69.144")
    deposit_with_card(client, wire, token_for(other_card), "20.00", "5500 0000 0000 0004")
    assert bonus_balance(other_card.id) == (20_00, 20_00)
    # The card number itself is never stored, only the gateway's reference.
    from app.payments.models import PaymentTransaction

    refs = db.session.scalars(select(PaymentTransaction.instrument_fingerprint)).all()
    assert all(r.startswith("sbx_acct_") and "4111" not in r for r in refs)
    reconcile_clean()


def test_a_pending_welcome_claim_met_with_a_shared_card_is_cancelled(
    client,
    token_for,
    gateway,
    wire,
):
    p = promo(first_deposit_only=True)
    first = register(client, "mike", ip=IP_A)
    assert claim(client, token_for, first, p).status_code == 201
    deposit_with_card(client, wire, token_for(first), "50.00", "4000 0000 0000 0002")
    second = register(client, "november", ip=IP_B)
    pending = claim(client, token_for, second, p)
    assert pending.status_code == 201
    assert pending.json["data"]["status"] == "pending"
    deposit_with_card(client, wire, token_for(second), "50.00", "4000000000000002")
    (bonus,) = bonuses_of(second.id)
    assert (bonus.status, bonus.end_reason) == ("cancelled", "duplicate_identity")
    assert bonus_balance(second.id) == (50_00, 0)
    assert len(flags_of(second)) == 1


def test_an_offer_that_is_not_a_welcome_offer_ignores_shared_identities(client, token_for):
    first = register(client, "oscar", ip=IP_A, device="same")
    assert claim(client, token_for, first, no_deposit()).status_code == 201
    second = register(client, "papa", ip=IP_A, device="same")
    reload = promo(name="Reload", type="reload", match_percent=50, min_deposit_minor=10_00)
    answer = claim(client, token_for, second, reload)
    assert answer.status_code == 201, answer.json
    assert flags_of(second) == []


def test_a_no_deposit_voucher_is_a_welcome_bonus_too(client, token_for):
    first = register(client, "quebec", ip=IP_A, device="same")
    assert claim(client, token_for, first, no_deposit()).status_code == 201
    no_deposit(name="Spring", voucher_code="SPRING")
    second = register(client, "romeo", ip=IP_B, device="same")
    answer = client.post(
        "/api/promotions/voucher", headers=token_for(second), json={"code": "spring"}
    )
    assert answer.status_code == 400
    assert answer.json["reason"] == "duplicate_identity"
    assert len(flags_of(second)) == 1


def test_the_x_device_id_header_is_a_device_fingerprint_too(client, token_for):
    p = no_deposit()
    first = client.post(
        "/api/auth/register",
        json={"username": "sierra", "email": "sierra@example.test", "password": "StrongPass123!"},
        headers={"X-Device-Id": "phone-42"},
        environ_base={"REMOTE_ADDR": IP_A},
    )
    assert first.status_code == 201
    sierra = db.session.get(User, first.json["data"]["user"]["id"])
    assert sierra.registration_device == "phone-42"
    assert claim(client, token_for, sierra, p).status_code == 201
    second = register(client, "tango", ip=IP_B, device="phone-42")
    assert claim(client, token_for, second, p).json["reason"] == "duplicate_identity"


# --- free spins as a welcome offer -----------------------------------------------------------


@pytest.mark.usefixtures("studio")
def test_free_spins_for_accounts_without_a_deposit_are_a_welcome_offer(client, token_for):
    from tests.bonus.test_free_spins import free_spins_promo

    first = register(client, "uniform", ip=IP_A, device="tablet-7")
    sign_up_spins = free_spins_promo(name="Sign-up spins", first_deposit_only=True)
    assert claim(client, token_for, first, sign_up_spins).status_code == 201
    # The free spins were a welcome bonus received: a second account on the device gets none.
    second = register(client, "victor", ip=IP_B, device="tablet-7")
    assert claim(client, token_for, second, no_deposit()).json["reason"] == "duplicate_identity"
    more = free_spins_promo(name="More sign-up spins", first_deposit_only=True)
    answer = claim(client, token_for, second, more)
    assert answer.json["reason"] == "duplicate_identity"
    assert len(flags_of(second)) == 2
    # Free spins without first_deposit_only are a retention offer: not compared.
    answer = claim(client, token_for, second, free_spins_promo(name="Weekend spins"))
    assert answer.status_code == 201, answer.json


# --- two accounts on one device claiming at the same instant (PostgreSQL) --------------------


def race_past_the_check(app, monkeypatch, jobs):
    """Run ``jobs`` (callables, each in its own thread and app context) so that each waits
    (up to 1.5 s) after its duplicate check for the others to pass theirs too: without a lock
    per identity all of them see no welcome bonus yet."""
    import threading

    from app.bonus import abuse as bonus_abuse

    checked = threading.Condition()
    passed: list[int] = []
    original = bonus_abuse.duplicates

    def duplicates_then_wait(user_id, **kw):
        found = original(user_id, **kw)
        with checked:
            passed.append(user_id)
            checked.notify_all()
            checked.wait_for(lambda: len(passed) >= len(jobs), timeout=1.5)
        return found

    monkeypatch.setattr(bonus_abuse, "duplicates", duplicates_then_wait)

    def run(job):
        with app.app_context():
            try:
                job()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)


def welcome_bonuses(app):
    from app.bonus.models import PlayerBonus

    with app.app_context():
        found = db.session.scalars(
            select(PlayerBonus.user_id).where(PlayerBonus.granted_at.is_not(None))
        ).all()
        reconcile_clean()
        db.session.remove()
    return found


def duplicate_flags(app, user_id):
    with app.app_context():
        found = db.session.scalars(
            select(RiskFlag.details).where(
                RiskFlag.user_id == user_id, RiskFlag.kind == "duplicate_identity"
            )
        ).all()
        db.session.remove()
    return found


@pytest.mark.usefixtures("requires_postgres")
def test_two_accounts_on_one_device_claiming_at_once_get_one_welcome_bonus(
    app, committed_db, monkeypatch
):
    from app.bonus import promotions

    with app.app_context():
        client = app.test_client()
        first = register(client, "whiskey", ip=IP_A, device="shared-device").id
        second = register(client, "xray", ip=IP_B, device="shared-device").id
        # Two different welcome offers: the promotion row lock does not serialize them.
        offers = {first: no_deposit(name="Welcome A").id, second: no_deposit(name="Welcome B").id}
        db.session.remove()
    outcomes: dict[int, str] = {}

    def claimant(user_id):
        def job():
            try:
                promotions.claim(db.session.get(User, user_id), offers[user_id])
                outcomes[user_id] = "granted"
            except promotions.DuplicateIdentity:
                outcomes[user_id] = "duplicate_identity"

        return job

    race_past_the_check(app, monkeypatch, [claimant(first), claimant(second)])
    assert sorted(outcomes.values()) == ["duplicate_identity", "granted"], outcomes
    (winner,) = welcome_bonuses(app)
    loser = first if winner == second else second
    assert len(duplicate_flags(app, loser)) == 1


@pytest.mark.usefixtures("requires_postgres")
def test_a_claim_and_a_matched_first_deposit_at_once_on_one_device_get_one_welcome_bonus(
    app, committed_db, monkeypatch
):
    from types import SimpleNamespace

    from app.bonus import promotions
    from app.core.db import atomic
    from app.wallet import ledger as wallet

    with app.app_context():
        client = app.test_client()
        claimer = register(client, "yankee", ip=IP_A, device="family-pc").id
        depositor = register(client, "zulu", ip=IP_B, device="family-pc").id
        offer = no_deposit().id
        promo(name="First deposit 100%", first_deposit_only=True, auto_apply=True)
        db.session.remove()

    def claim_job():
        # Refused (DuplicateIdentity) when the deposit's match wins the race: asserted below.
        with contextlib.suppress(promotions.DuplicateIdentity):
            promotions.claim(db.session.get(User, claimer), offer)

    def deposit_job():
        # The payments hook, as the deposit's credit transaction calls it (wallet locked).
        with atomic():
            wallet.lock(depositor, "EUR")
            promotions.on_deposit_credited(SimpleNamespace(
                id=0, public_id="txn_race", user_id=depositor, currency="EUR",
                amount_minor=50_00, instrument_fingerprint=None))  # fmt: skip

    race_past_the_check(app, monkeypatch, [claim_job, deposit_job])
    (winner,) = welcome_bonuses(app)
    loser = claimer if winner == depositor else depositor
    (details,) = duplicate_flags(app, loser)
    assert details["context"] == ("claim" if loser == claimer else "deposit")
