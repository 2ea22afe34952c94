"""Sign-in with OpenID Connect (against a real Authlib issuer the suite starts) and Telegram:
accounts linked only by a verified e-mail, single-use state and handoff codes, and every lie
an issuer or a forger could tell refused with nothing created."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import requests
from sqlalchemy import func, select

from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity import oidc, totp
from app.identity.models import IdentityLink, User
from app.wallet.models import Wallet
from tests.oidc_issuer import Issuer, IssuerUser

CALLBACK = "/api/auth/oidc/testidp/callback"


@pytest.fixture(scope="module")
def issuer():
    server = Issuer().start()
    yield server
    server.stop()


@pytest.fixture
def idp(app, issuer, monkeypatch):
    monkeypatch.setitem(app.config, "OIDC_PROVIDERS", {"testidp": issuer.config()})
    issuer.redirect_uris = [app.config["PUBLIC_URL"] + CALLBACK]
    issuer.user = IssuerUser(sub="sub-ada", email="ada@idp.test", preferred_username="ada")
    issuer.misbehave = None
    issuer.down = False
    oidc._cache.clear()
    return issuer


def _start(client, return_to: str = "/lobby"):
    response = client.get(f"/api/auth/oidc/testidp/start?return_to={return_to}")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def _at_issuer(authorize_url: str) -> dict[str, str]:
    """The browser at the issuer: it approves and sends the player back with code + state."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return {k: v[0] for k, v in parse_qs(back.query).items()}


def _callback(client, params: dict[str, str]):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.get(f"{CALLBACK}?{query}")


def _fragment(response) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


def _sign_in(client, return_to: str = "/lobby") -> dict[str, str]:
    return _fragment(_callback(client, _at_issuer(_start(client, return_to))))


def _exchange(client, code: str, **extra):
    return client.post("/api/auth/external/exchange", json={"login_code": code, **extra})


def _users() -> int:
    return db.session.scalar(select(func.count(User.id)))


def test_a_new_player_signs_in_with_the_issuer_and_gets_a_wallet(client, idp):
    authorize = _start(client)
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert authorize.startswith(idp.url + "/authorize?")
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 40
    assert len(query["nonce"]) >= 32
    assert query["scope"] == "openid email profile"

    result = _fragment(_callback(client, _at_issuer(authorize)))
    assert set(result) == {"login_code"}
    answer = _exchange(client, result["login_code"])
    assert answer.status_code == 200, answer.json
    token = answer.json["token"]["access_token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json["data"]
    assert me["email"] == "ada@idp.test"
    user = db.session.get(User, me["id"])
    assert user.email_verified_at is not None  # the issuer verified it
    assert user.username.startswith("ada")
    assert db.session.scalar(select(Wallet).where(Wallet.user_id == user.id)) is not None
    [link] = db.session.scalars(select(IdentityLink)).all()
    assert (link.user_id, link.provider, link.subject) == (user.id, "testidp", "sub-ada")
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.target_id == str(user.id)))
    assert {"auth.identity_link", "auth.login"} <= set(actions)

    # The same issuer account signs in to the same casino account next time.
    again = _exchange(client, _sign_in(client)["login_code"])
    assert again.status_code == 200
    assert again.json["previous_login_at"] is not None
    assert _users() == 1


def test_state_and_handoff_codes_are_single_use(client, idp):
    params = _at_issuer(_start(client))
    first = _fragment(_callback(client, params))
    replay = _callback(client, params)
    assert replay.status_code == 401
    assert replay.json["code"] == "AUTHENTICATION_ERROR"
    assert _exchange(client, first["login_code"]).status_code == 200
    spent = _exchange(client, first["login_code"])
    assert spent.status_code == 401


def test_a_forged_state_is_refused_and_nothing_happens(client, idp):
    params = _at_issuer(_start(client))
    params["state"] = "x" * 43
    refused = _callback(client, params)
    assert refused.status_code == 401
    assert _users() == 0
    assert idp.token_requests == 0 or refused.status_code == 401
    assert _callback(client, {"code": params["code"]}).status_code == 401  # no state at all


@pytest.mark.parametrize("lie", ["nonce", "audience", "key", "issuer"])
def test_an_id_token_that_does_not_verify_signs_in_nobody(client, idp, lie):
    idp.misbehave = lie
    result = _sign_in(client)
    assert "login_code" not in result
    assert result["error"].startswith("The ID token")
    assert _users() == 0
    assert db.session.scalars(select(IdentityLink)).all() == []


def test_an_existing_account_is_linked_only_by_a_verified_email(client, idp, factory):
    player = factory.player(email="ada@idp.test")
    idp.user.email_verified = False
    refused = _sign_in(client)
    assert "An account uses this e-mail" in refused["error"]
    assert db.session.scalars(select(IdentityLink)).all() == []

    idp.user.email_verified = True
    linked = _exchange(client, _sign_in(client)["login_code"])
    assert linked.status_code == 200
    [link] = db.session.scalars(select(IdentityLink)).all()
    assert link.user_id == player.id
    assert _users() == 1


def test_staff_never_sign_in_through_an_issuer(client, idp, factory):
    factory.staff("support", email="ada@idp.test")
    result = _sign_in(client)
    assert result["error"] == "Staff accounts sign in at the console"


def test_a_player_with_2fa_gives_the_code_at_the_exchange(client, idp, factory):
    player = factory.player(email="ada@idp.test")
    secret = totp.new_secret()
    with atomic():
        user = db.session.get(User, player.id)
        totp.store_secret(user, secret)
        user.totp_enabled = True
    code = _sign_in(client)["login_code"]
    missing = _exchange(client, code)
    assert missing.status_code == 401
    assert missing.json["requires_2fa"] is True
    ok = _exchange(client, code, auth_code=pyotp.TOTP(secret).now())
    assert ok.status_code == 200, ok.json  # the code stayed usable for the second try


def test_a_suspended_player_is_refused_at_the_exchange(client, idp, factory):
    player = factory.player(email="ada@idp.test")
    _exchange(client, _sign_in(client)["login_code"])
    with atomic():
        db.session.get(User, player.id).status = "suspended"
    refused = _exchange(client, _sign_in(client)["login_code"])
    assert refused.status_code == 403


def test_return_to_must_be_an_allowed_origin(client, idp):
    refused = client.get("/api/auth/oidc/testidp/start?return_to=https://evil.example/x")
    assert refused.status_code == 400
    assert client.get("/api/auth/oidc/nope/start").status_code == 404
    assert client.get("/api/auth/oidc/providers").json["data"] == [
        {"name": "testidp", "label": "Test IdP"}
    ]


def test_a_declined_consent_goes_back_with_an_error(client, idp):
    params = _at_issuer(_start(client))
    declined = _callback(client, {"state": params["state"], "error": "access_denied"})
    assert "cancelled or refused" in _fragment(declined)["error"]
    assert _users() == 0


def test_an_issuer_that_is_down_is_a_503_and_creates_nothing(client, idp):
    params = _at_issuer(_start(client))
    idp.down = True
    oidc._cache.clear()
    answer = _callback(client, params)
    assert answer.status_code == 503
    assert answer.json["code"] == "SERVICE_UNAVAILABLE"
    assert _users() == 0


# --- Telegram --------------------------------------------------------------------------------

BOT_TOKEN = "123456:telegram-test-bot-token"


@pytest.fixture
def telegram(app, monkeypatch):
    monkeypatch.setitem(app.config, "TELEGRAM_BOT_TOKEN", BOT_TOKEN)


def signed(fields: dict, token: str = BOT_TOKEN) -> dict:
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    key = hashlib.sha256(token.encode()).digest()
    return {**fields, "hash": hmac.new(key, check.encode(), hashlib.sha256).hexdigest()}


def widget(user_id: int = 777001, **kw) -> dict:
    return signed({"id": user_id, "first_name": "Ada", "username": "ada_tg",
                   "auth_date": int(time.time()), **kw})  # fmt: skip


def test_telegram_register_then_sign_in_then_unlink(client, telegram, token_for):
    made = client.post(
        "/api/auth/telegram/register", json={"telegram": widget(), "email": "tg@casino.test"}
    )
    assert made.status_code == 201, made.json
    user = db.session.scalar(select(User).where(User.email == "tg@casino.test"))
    assert user.username == "ada_tg"
    assert user.email_verified_at is None  # Telegram does not vouch for an e-mail
    again = client.post(
        "/api/auth/telegram/register", json={"telegram": widget(), "email": "other@casino.test"}
    )
    assert again.status_code == 409

    signed_in = client.post("/api/auth/telegram", json=widget())
    assert signed_in.status_code == 200
    links = client.get("/api/user/identities", headers=token_for(user)).json["data"]
    assert [(link["provider"], link["display"]) for link in links] == [("telegram", "ada_tg")]
    gone = client.delete(f"/api/user/identities/{links[0]['id']}", headers=token_for(user))
    assert gone.status_code == 204
    assert client.post("/api/auth/telegram", json=widget()).status_code == 404


def test_a_signed_in_player_links_telegram(client, telegram, factory, token_for):
    player, other = factory.player(), factory.player()
    assert client.post("/api/auth/telegram", json=widget(5)).status_code == 404
    linked = client.post("/api/user/identities/telegram", json=widget(5), headers=token_for(player))
    assert linked.status_code == 201
    answer = client.post("/api/auth/telegram", json=widget(5))
    token = answer.json["token"]["access_token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json["data"]["id"] == player.id
    taken = client.post("/api/user/identities/telegram", json=widget(5), headers=token_for(other))
    assert taken.status_code == 409


@pytest.mark.parametrize(
    "forge",
    [
        lambda w: {**w, "hash": "0" * 64},
        lambda w: {**w, "username": "mallory"},  # a field changed after signing
        lambda w: {**w, "id": 777002},
        lambda w: signed({k: v for k, v in w.items() if k != "hash"}, token="another:bot"),
        lambda w: widget(auth_date=int(time.time()) - 3600),  # stale
        lambda w: widget(auth_date=int(time.time()) + 3600),  # from the future
    ],
)
def test_forged_or_stale_telegram_payloads_are_refused(client, telegram, forge):
    client.post("/api/auth/telegram/register", json={"telegram": widget(), "email": "a@b.test"})
    refused = client.post("/api/auth/telegram", json=forge(widget()))
    assert refused.status_code == 401, refused.json
    assert "token" not in refused.json


def test_telegram_is_off_without_a_bot_token(client):
    assert client.post("/api/auth/telegram", json=widget()).status_code == 404
