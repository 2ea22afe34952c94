"""Phone numbers (issue 17): E.164, several per player, one primary, verified by an SMS code
(hashed at rest, expiring, single use, attempts bounded), send limits per number and address."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import OneTimeCode, User, UserPhone
from tests.identity.sms_helpers import last_code, messages_to

MALTA = "+35699123456"
MALTA_2 = "+35679123456"
UK = "+447400123456"


def _add(client, headers, number=MALTA, **kw):
    return client.post("/api/user/phones", json={"number": number}, headers=headers, **kw)


def _fresh(model, row_id):
    db.session.expire_all()
    return db.session.get(model, row_id)


def test_a_number_is_stored_in_e164_and_texted_a_code_kept_only_as_a_keyed_digest(
    client, factory, token_for
):
    player = factory.player(country="MT")
    answer = _add(client, token_for(player), "9912 3456")  # national, the player's country
    assert answer.status_code == 201, answer.json
    data = answer.json["data"]
    assert data["number"] == MALTA
    assert data["verified"] is False
    assert data["is_primary"] is False
    code = last_code(MALTA)
    row = db.session.scalar(sa.select(OneTimeCode).where(OneTimeCode.destination == MALTA))
    assert row.purpose == "phone_verify"
    assert row.user_id == player.id
    assert code not in row.code_hash
    assert len(row.code_hash) == 64
    listing = client.get("/api/user/phones", headers=token_for(player)).json["data"]
    assert [p["number"] for p in listing] == [MALTA]


@pytest.mark.parametrize(
    "raw", ["abc", "", "+1", "0.001", "-5", "1e309", "+3569912345\x006", "+" + "9" * 40]
)
def test_absurd_numbers_are_refused_and_change_nothing(client, factory, token_for, raw):
    player = factory.player()
    answer = _add(client, token_for(player), raw)
    assert answer.status_code in (400, 422), answer.json
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UserPhone)) == 0


def test_the_right_code_verifies_once_and_the_first_verified_number_becomes_primary(
    client, factory, token_for
):
    player = factory.player()
    headers = token_for(player)
    phone_id = _add(client, headers).json["data"]["id"]
    code = last_code(MALTA)
    answer = client.post(
        f"/api/user/phones/{phone_id}/verify", json={"code": code}, headers=headers
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["data"]["verified"] is True
    assert answer.json["data"]["is_primary"] is True
    assert _fresh(User, player.id).phone == MALTA
    # The code is spent: it verifies nothing else (a second number, same code).
    other = _add(client, headers, MALTA_2).json["data"]["id"]
    replay = client.post(f"/api/user/phones/{other}/verify", json={"code": code}, headers=headers)
    assert replay.status_code == 400


def test_guessing_codes_kills_the_code_after_the_allowed_attempts(client, factory, token_for, app):
    player = factory.player()
    headers = token_for(player)
    phone_id = _add(client, headers).json["data"]["id"]
    code = last_code(MALTA)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(app.config["OTP_MAX_ATTEMPTS"]):
        answer = client.post(
            f"/api/user/phones/{phone_id}/verify", json={"code": wrong}, headers=headers
        )
        assert answer.status_code == 400
        assert answer.json["code"] == "VALIDATION_ERROR"
    # The wrong guesses were counted (committed), and now even the right code is dead.
    row = db.session.scalar(sa.select(OneTimeCode).where(OneTimeCode.destination == MALTA))
    assert _fresh(OneTimeCode, row.id).attempts == app.config["OTP_MAX_ATTEMPTS"]
    late = client.post(f"/api/user/phones/{phone_id}/verify", json={"code": code}, headers=headers)
    assert late.status_code == 400
    assert _fresh(UserPhone, phone_id).verified_at is None


def test_an_expired_code_is_refused(client, factory, token_for, app):
    player = factory.player()
    headers = token_for(player)
    phone_id = _add(client, headers).json["data"]["id"]
    code = last_code(MALTA)
    with freeze_time(utcnow() + timedelta(seconds=app.config["OTP_TTL_SECONDS"] + 1)):
        answer = client.post(
            f"/api/user/phones/{phone_id}/verify", json={"code": code}, headers=headers
        )
    assert answer.status_code == 400
    assert _fresh(UserPhone, phone_id).verified_at is None


def test_resend_is_spaced_and_capped_per_number_and_only_the_newest_code_works(
    client, factory, token_for, app
):
    player = factory.player()
    headers = token_for(player)
    phone_id = _add(client, headers).json["data"]["id"]
    first = last_code(MALTA)
    too_soon = client.post(f"/api/user/phones/{phone_id}/resend", headers=headers)
    assert too_soon.status_code == 429
    assert int(too_soon.headers["Retry-After"]) >= 1
    step = app.config["OTP_RESEND_SECONDS"] + 1
    start = utcnow()
    sent = 1
    for n in range(1, 10):
        with freeze_time(start + timedelta(seconds=step * n)):
            answer = client.post(f"/api/user/phones/{phone_id}/resend", headers=headers)
        if answer.status_code == 429:
            break
        assert answer.status_code == 200, answer.json
        sent += 1
    assert sent == app.config["OTP_MAX_PER_DESTINATION_PER_DAY"]
    assert len(messages_to(MALTA)) == sent
    newest = last_code(MALTA)
    if newest != first:
        stale = client.post(
            f"/api/user/phones/{phone_id}/verify", json={"code": first}, headers=headers
        )
        assert stale.status_code == 400
    with freeze_time(start + timedelta(seconds=step * 10)):
        ok = client.post(
            f"/api/user/phones/{phone_id}/verify", json={"code": newest}, headers=headers
        )
    assert ok.status_code == 200, ok.json


def test_one_address_cannot_text_unlimited_numbers(client, factory, token_for, app):
    limit = app.config["OTP_MAX_PER_IP_PER_HOUR"]
    players = [factory.player() for _ in range(limit // 4 + 2)]
    numbers = [f"+3569912{n:04d}" for n in range(limit + 1)]
    answers = []
    for i, number in enumerate(numbers):
        answers.append(_add(client, token_for(players[i // 4]), number).status_code)
    assert answers[:limit] == [201] * limit
    assert answers[limit] == 429
    assert len(messages_to(numbers[limit])) == 0


def test_make_primary_needs_a_verified_number_and_moves_the_primary(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    first = _add(client, headers).json["data"]["id"]
    client.post(
        f"/api/user/phones/{first}/verify", json={"code": last_code(MALTA)}, headers=headers
    )
    second = _add(client, headers, UK).json["data"]["id"]
    refused = client.post(f"/api/user/phones/{second}/make-primary", headers=headers)
    assert refused.status_code == 409
    client.post(f"/api/user/phones/{second}/verify", json={"code": last_code(UK)}, headers=headers)
    assert _fresh(UserPhone, second).is_primary is False
    moved = client.post(f"/api/user/phones/{second}/make-primary", headers=headers)
    assert moved.status_code == 200
    assert moved.json["data"]["is_primary"] is True
    assert _fresh(UserPhone, first).is_primary is False
    assert _fresh(User, player.id).phone == UK
    gone = client.delete(f"/api/user/phones/{second}", headers=headers)
    assert gone.status_code == 200
    assert _fresh(User, player.id).phone is None
    assert [p["number"] for p in client.get("/api/user/phones", headers=headers).json["data"]] == [
        MALTA
    ]


def test_another_players_phone_is_not_found(client, factory, token_for):
    owner, other = factory.player(), factory.player()
    phone_id = _add(client, token_for(owner)).json["data"]["id"]
    for path in ("verify", "resend", "make-primary"):
        answer = client.post(
            f"/api/user/phones/{phone_id}/{path}", json={"code": "123456"}, headers=token_for(other)
        )
        assert answer.status_code == 404
    assert (
        client.delete(f"/api/user/phones/{phone_id}", headers=token_for(other)).status_code == 404
    )


def test_a_number_verified_elsewhere_is_told_only_to_whoever_has_its_code(
    client, factory, token_for
):
    holder, squatter = factory.player(), factory.player()
    first = _add(client, token_for(holder)).json["data"]["id"]
    client.post(
        f"/api/user/phones/{first}/verify",
        json={"code": last_code(MALTA)},
        headers=token_for(holder),
    )
    # Adding the number answers like any other addition (nothing reveals the holder) ...
    with freeze_time(utcnow() + timedelta(minutes=5)):
        added = _add(client, token_for(squatter))
        assert added.status_code == 201
        # ... and a wrong code is just a wrong code.
        wrong = client.post(
            f"/api/user/phones/{added.json['data']['id']}/verify",
            json={"code": "000000" if last_code(MALTA) != "000000" else "111111"},
            headers=token_for(squatter),
        )
        assert wrong.status_code == 400
        # Only the code's reader (the holder) learns the number is taken.
        taken = client.post(
            f"/api/user/phones/{added.json['data']['id']}/verify",
            json={"code": last_code(MALTA)},
            headers=token_for(squatter),
        )
    assert taken.status_code == 409


def test_staff_see_phone_verification_state(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    phone_id = _add(client, headers).json["data"]["id"]
    client.post(
        f"/api/user/phones/{phone_id}/verify", json={"code": last_code(MALTA)}, headers=headers
    )
    _add(client, headers, UK)
    staff = factory.staff("support")
    detail = client.get(f"/api/admin/users/{player.id}", headers=token_for(staff))
    assert detail.status_code == 200, detail.json
    phones = {p["number"]: p for p in detail.json["data"]["phones"]}
    assert phones[MALTA]["verified"] is True
    assert phones[MALTA]["is_primary"] is True
    assert phones[UK]["verified"] is False


def test_sign_up_requests_cannot_use_up_the_texts_a_player_needs_to_sign_in(
    client, factory, token_for, app
):
    """Strangers asking codes for a number spend that kind of code's budget only."""
    from tests.identity.identity_helpers_otp import set_mode

    set_mode(factory, "both")
    player = factory.player()
    with atomic():
        db.session.add(
            UserPhone(user_id=player.id, number=MALTA, is_primary=True, verified_at=utcnow())
        )
    assert (
        client.post(
            "/api/user/2fa/sms/enable",
            json={"password": "Passw0rd-Long-1!"},
            headers=token_for(player),
        ).status_code
        == 200
    )
    start = utcnow()
    step = app.config["OTP_RESEND_SECONDS"] + 1
    for n in range(app.config["OTP_MAX_PER_DESTINATION_PER_DAY"] + 1):
        with freeze_time(start + timedelta(seconds=step * n)):
            client.post("/api/auth/otp/request", json={"phone": MALTA})
    with freeze_time(start + timedelta(seconds=step * 20)):
        exhausted = client.post("/api/auth/otp/request", json={"phone": MALTA})
        assert exhausted.status_code == 429
        answer = client.post(
            "/api/auth/login", json={"username": player.username, "password": "Passw0rd-Long-1!"}
        )
    assert answer.status_code == 401
    assert answer.json["method"] == "sms"
    assert "sign-in code" in messages_to(MALTA)[-1]["body"]


def test_erasure_removes_the_numbers_and_the_codes_destinations(client, factory, token_for):
    from app.identity import gdpr

    player = factory.player()
    phone_id = _add(client, token_for(player)).json["data"]["id"]
    client.post(
        f"/api/user/phones/{phone_id}/verify",
        json={"code": last_code(MALTA)},
        headers=token_for(player),
    )
    admin = factory.staff("admin")
    request_id = client.post("/api/user/erasure-request", json={}, headers=token_for(player)).json[
        "data"
    ]["id"]
    gdpr.approve(request_id, admin)
    db.session.expire_all()
    assert (
        db.session.scalars(sa.select(UserPhone).where(UserPhone.user_id == player.id)).all() == []
    )
    destinations = set(
        db.session.scalars(
            sa.select(OneTimeCode.destination).where(OneTimeCode.user_id == player.id)
        )
    )
    assert MALTA not in destinations
    assert _fresh(User, player.id).phone is None


@pytest.mark.postgres
def test_two_racing_submissions_of_one_code_open_one_account(app, requires_postgres, committed_db):
    """Real commits on separate connections: the conditional UPDATE lets exactly one request
    spend the code, so one account is opened, never two."""
    import threading

    from tests.conftest import Factory
    from tests.identity.identity_helpers_otp import set_mode

    set_mode(Factory(), "otp")
    client = app.test_client()
    assert client.post("/api/auth/otp/request", json={"phone": MALTA}).status_code == 200
    with app.app_context():
        code = last_code(MALTA)
    barrier = threading.Barrier(4)
    results: list[int] = []

    def race(n: int) -> None:
        local = app.test_client()
        barrier.wait(timeout=10)
        answer = local.post(
            "/api/auth/otp/verify", json={"phone": MALTA, "code": code, "username": f"racer{n}"}
        )
        results.append(answer.status_code)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results.count(200) == 1, results
    assert set(results) <= {200, 400, 409}
    with app.app_context():
        opened = db.session.scalars(sa.select(User).where(User.username.like("racer%"))).all()
        assert len(opened) == 1
        db.session.remove()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    raw=st.one_of(
        st.text(max_size=40),
        st.from_regex(r"\+?[0-9 ()\-.]{0,24}", fullmatch=True),
    ),
    region=st.sampled_from([None, "", "MT", "GB", "US", "ZZ", "mt"]),
)
def test_any_input_is_either_e164_or_a_clear_error_naming_the_field(app, raw, region):
    from app.core.errors import ValidationError
    from app.identity.phones import to_e164

    number, error = None, None
    try:
        number = to_e164(raw, region)
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert error.status == 400
        assert [e["field"] for e in error.errors or []] == ["number"]
        return
    assert number is not None
    assert re.fullmatch(r"\+[1-9]\d{6,14}", number), number
    assert to_e164(number) == number  # stable: E.164 parses to itself
