"""Player logins are throttled per (login name + address), never locked (issue 21): a victim
signing in from their own address is not locked out by someone guessing elsewhere, and no
answer tells whether an account exists."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity import throttle
from app.identity.accounts import BAD_CREDENTIALS
from app.identity.models import LoginEvent, User
from tests.identity_helpers import ADMIN_SECRET, PASSWORD, code

ATTACKER = {"REMOTE_ADDR": "198.51.100.66"}
VICTIM = {"REMOTE_ADDR": "203.0.113.5"}


def attempt(client, username, password=PASSWORD, where=ATTACKER, path="/api/auth/login", **kw):
    body = {"username": username, "password": password, **kw}
    return client.post(path, json=body, environ_base=where)


def test_guesses_throttle_the_guessing_address_and_never_lock_the_player(app, client, factory):
    player = factory.player()
    free = app.config["LOGIN_THROTTLE_FREE_FAILURES"]
    for _ in range(free):
        wrong = attempt(client, player.username, "Wrong-Passw0rd!")
        assert wrong.status_code == 401
        assert wrong.get_json()["message"] == BAD_CREDENTIALS
    # The guessing address waits, even with the right password (no oracle while throttled).
    throttled = attempt(client, player.username)
    assert throttled.status_code == 429
    body = throttled.get_json()
    assert (body["code"], body["message"]) == ("AUTHENTICATION_ERROR", BAD_CREDENTIALS)
    assert int(throttled.headers["Retry-After"]) == app.config["LOGIN_THROTTLE_BASE_SECONDS"]
    # The player, from their own address, signs in at once; the account was never locked.
    assert attempt(client, player.username, where=VICTIM).status_code == 200
    user = db.session.get(User, player.id)
    assert user.locked_until is None
    assert not db.session.scalar(
        sa.select(sa.func.count()).where(
            AuditLog.action == "auth.lockout", AuditLog.target_id == str(player.id)
        )
    )
    reasons = db.session.scalars(
        sa.select(LoginEvent.reason).where(LoginEvent.user_id == player.id, ~LoginEvent.success)
    ).all()
    assert reasons.count("throttled") == 1


def test_unknown_wrong_and_throttled_answers_tell_nothing_about_the_account(app, client, factory):
    player = factory.player()
    free = app.config["LOGIN_THROTTLE_FREE_FAILURES"]
    answers = {}
    for name in (player.username, "nobody-by-this-name"):
        seen = [attempt(client, name, "Wrong-Passw0rd!") for _ in range(free + 1)]
        answers[name] = [
            (
                r.status_code,
                r.get_json()["code"],
                r.get_json()["message"],
                r.headers.get("Retry-After"),
            )
            for r in seen
        ]
    assert answers[player.username] == answers["nobody-by-this-name"]
    assert answers[player.username][-1][0] == 429


def test_delays_grow_per_failure_up_to_the_cap_and_a_success_forgets_them(app, client, factory):
    free = app.config["LOGIN_THROTTLE_FREE_FAILURES"]
    base = app.config["LOGIN_THROTTLE_BASE_SECONDS"]
    cap = app.config["LOGIN_THROTTLE_MAX_SECONDS"]
    assert [throttle.delay_after(n) for n in range(free)] == [0] * free
    assert throttle.delay_after(free) == base
    assert throttle.delay_after(free + 1) == 2 * base
    assert throttle.delay_after(free + 50) == cap

    player = factory.player()
    key = throttle.key_of(player.username.upper(), ATTACKER["REMOTE_ADDR"])
    for _ in range(free):
        attempt(client, player.username, "Wrong-Passw0rd!")
    assert 0 < throttle.retry_after(key) <= base
    app.extensions["redis"].hset(key, "until", "0")  # the wait is over
    assert attempt(client, player.username, "Wrong-Passw0rd!").status_code == 401
    assert throttle.retry_after(key) > base  # the next failure doubled it
    app.extensions["redis"].hset(key, "until", "0")
    assert attempt(client, player.username).status_code == 200
    assert throttle.retry_after(key) == 0
    assert not app.extensions["redis"].exists(key)


def test_redis_down_the_throttle_counts_in_memory(app, monkeypatch):
    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise redis.exceptions.ConnectionError("down")

            return fail

    monkeypatch.setitem(app.extensions, "redis", Down())
    key = throttle.key_of("someone", "192.0.2.9")
    waits = [throttle.failed(key) for _ in range(app.config["LOGIN_THROTTLE_FREE_FAILURES"])]
    assert waits[-1] == app.config["LOGIN_THROTTLE_BASE_SECONDS"]
    assert throttle.retry_after(key) > 0
    throttle.succeeded(key)
    assert throttle.retry_after(key) == 0


def test_staff_accounts_still_lock_and_the_lock_answers_like_a_wrong_password(app, client, factory):
    admin = factory.staff("admin", password=PASSWORD, totp_secret=ADMIN_SECRET)
    path = "/api/admin/auth/login"
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert attempt(client, admin.username, "Wrong-Passw0rd!", path=path).status_code == 401
    assert db.session.get(User, admin.id).locked_until is not None
    # Locked: from another address, even the right password and code get the generic answer.
    locked = attempt(client, admin.username, where=VICTIM, path=path, auth_code=code(ADMIN_SECRET))
    assert locked.status_code == 401
    assert locked.get_json()["message"] == BAD_CREDENTIALS


def test_a_player_probed_through_the_staff_login_is_not_locked(app, client, factory):
    player = factory.player()
    for _ in range(app.config["LOGIN_MAX_FAILURES"] + 2):
        attempt(client, player.username, "Wrong-Passw0rd!", path="/api/admin/auth/login")
    with atomic():
        assert db.session.get(User, player.id).locked_until is None
    assert attempt(client, player.username, where=VICTIM).status_code == 200


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_login_is_refused_generically(client, value):
    response = attempt(client, value, "Wrong-Passw0rd!")
    assert response.status_code in (400, 401)


# --- one name from many addresses (a botnet) -------------------------------------------------


def _addresses(n: int) -> list[dict]:
    return [{"REMOTE_ADDR": f"198.18.{i // 250}.{i % 250 + 1}"} for i in range(n)]


def _solved(app, client) -> dict:
    challenge = client.get("/api/auth/captcha").get_json()["data"]
    answer = app.extensions["redis"].get("jx:captcha:" + challenge["id"]).decode()
    return {"captcha_id": challenge["id"], "captcha_text": answer}


def _botnet(app, client, name: str) -> list:
    """One wrong password per address, from as many addresses as the ceiling: no address
    ever reaches its own throttle."""
    after = app.config["LOGIN_NAME_CHALLENGE_AFTER"]
    assert after < app.config["LOGIN_THROTTLE_FREE_FAILURES"] * after  # one each is under it
    return [attempt(client, name, "Wrong-Passw0rd!", where=w) for w in _addresses(after)]


def _shape(response) -> tuple:
    body = response.get_json()
    return (
        response.status_code,
        body["code"],
        body["message"],
        body.get("captcha_required"),
        response.headers.get("Retry-After"),
    )


def test_a_botnet_guessing_one_name_must_solve_a_captcha_per_guess(app, client, factory):
    player = factory.player()
    answers = _botnet(app, client, player.username)
    assert {r.status_code for r in answers} == {401}  # never throttled, never locked
    fresh = {"REMOTE_ADDR": "198.19.0.1"}
    # Even the right password is not checked without a solved captcha.
    blocked = attempt(client, player.username, where=fresh)
    assert blocked.status_code == 401
    assert blocked.get_json()["captcha_required"] is True
    assert "captcha" in blocked.get_json()["message"]
    wrong = attempt(client, player.username, where=fresh, captcha_id="captcha_x", captcha_text="A")
    assert wrong.get_json()["captcha_required"] is True
    # A solved captcha buys one guess; a wrong guess keeps the name challenged.
    guess = attempt(client, player.username, "Wrong-Passw0rd!", where=fresh, **_solved(app, client))
    assert guess.status_code == 401
    assert guess.get_json()["message"] == BAD_CREDENTIALS
    assert attempt(client, player.username, where=fresh).get_json()["captcha_required"] is True
    # A captcha is spent by its use: replaying it is refused.
    spent = _solved(app, client)
    attempt(client, player.username, "Wrong-Passw0rd!", where=fresh, **spent)
    replay = attempt(client, player.username, where=fresh, **spent)
    assert replay.get_json()["captcha_required"] is True
    with atomic():
        assert db.session.get(User, player.id).locked_until is None


def test_the_victim_signs_in_with_the_right_password_and_a_solved_captcha(app, client, factory):
    player = factory.player()
    _botnet(app, client, player.username)
    assert attempt(client, player.username, where=VICTIM).get_json()["captcha_required"] is True
    signed_in = attempt(client, player.username, where=VICTIM, **_solved(app, client))
    assert signed_in.status_code == 200, signed_in.get_json()
    reasons = db.session.scalars(
        sa.select(LoginEvent.reason).where(LoginEvent.user_id == player.id, ~LoginEvent.success)
    ).all()
    assert reasons.count("challenge_required") == 1
    assert reasons.count("bad_credentials") == app.config["LOGIN_NAME_CHALLENGE_AFTER"]
    # Other names are untouched: no captcha for anyone else.
    other = factory.player()
    assert attempt(client, other.username, where=VICTIM).status_code == 200


def test_a_known_and_an_unknown_name_are_challenged_alike(app, client, factory):
    player = factory.player()
    seen = {}
    for name in (player.username, "nobody-by-this-name"):
        answers = _botnet(app, client, name)
        fresh = {"REMOTE_ADDR": "198.19.0.9"}
        answers.append(attempt(client, name, "Wrong-Passw0rd!", where=fresh))
        answers.append(
            attempt(client, name, "Wrong-Passw0rd!", where=fresh, **_solved(app, client))
        )
        answers.append(attempt(client, name, "Wrong-Passw0rd!", where=fresh))
        seen[name] = [_shape(r) for r in answers]
    assert seen[player.username] == seen["nobody-by-this-name"]
    assert seen[player.username][-3][3] is True
    assert seen[player.username][-2][2] == BAD_CREDENTIALS


def test_the_staff_login_path_is_challenged_too(app, client, factory):
    # Otherwise a botnet would guess a player's password through /api/admin/auth/login.
    player = factory.player()
    _botnet(app, client, player.username)
    staff_path = attempt(client, player.username, where=VICTIM, path="/api/admin/auth/login")
    assert staff_path.status_code == 401
    assert staff_path.get_json()["captcha_required"] is True


def test_the_name_ceiling_is_a_setting_and_zero_turns_it_off(app, client, factory, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_NAME_CHALLENGE_AFTER", 0)
    player = factory.player()
    for where in _addresses(30):
        attempt(client, player.username, "Wrong-Passw0rd!", where=where)
    assert attempt(client, player.username, where=VICTIM).status_code == 200


def test_redis_down_the_name_ceiling_counts_in_memory(app, monkeypatch):
    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise redis.exceptions.ConnectionError("down")

            return fail

    monkeypatch.setitem(app.extensions, "redis", Down())
    key = throttle.name_key("Someone-Else ")
    assert key == throttle.name_key("someone-else")
    for _ in range(app.config["LOGIN_NAME_CHALLENGE_AFTER"] - 1):
        throttle.name_failed(key)
    assert not throttle.challenge_required(key)
    throttle.name_failed(key)
    assert throttle.challenge_required(key)
