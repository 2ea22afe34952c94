"""Token forgery, expiry, rate limits and network access rules."""

from __future__ import annotations

from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token

from app.compliance import access_rules
from app.core.db import atomic
from tests.identity_helpers import PASSWORD, bearer, login


def _claims(user_id: int) -> dict:
    import time

    now = int(time.time())
    return {
        "sub": str(user_id),
        "type": "access",
        "jti": "forged",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "fresh": False,
    }


def test_a_token_with_alg_none_is_refused(client, factory):
    player = factory.player()
    forged = pyjwt.encode(_claims(player.id), key=None, algorithm="none")
    response = client.get("/api/auth/me", headers=bearer(forged))
    assert response.status_code == 401


# Same secret, other algorithm: the only thing that differs is the algorithm.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_token_signed_with_another_algorithm_is_refused(client, factory, app):
    player = factory.player()
    forged = pyjwt.encode(_claims(player.id), app.config["JWT_SECRET_KEY"], algorithm="HS512")
    assert client.get("/api/auth/me", headers=bearer(forged)).status_code == 401
    genuine = pyjwt.encode(_claims(player.id), app.config["JWT_SECRET_KEY"], algorithm="HS256")
    assert client.get("/api/auth/me", headers=bearer(genuine)).status_code == 200


def test_an_expired_token_is_refused_with_token_expired(client, factory):
    player = factory.player()
    expired = create_access_token(identity=player, expires_delta=timedelta(seconds=-5))
    response = client.get("/api/auth/me", headers=bearer(expired))
    assert response.status_code == 401
    assert response.get_json()["code"] == "TOKEN_EXPIRED"


def test_auth_endpoints_are_rate_limited_with_retry_after(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMIT_AUTH", "3 per minute")
    codes = [login(client, f"someone{n}", "x").status_code for n in range(4)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3] == 429
    limited = login(client, "someone9", "x")
    assert limited.get_json()["code"] == "RATE_LIMITED"
    assert limited.headers.get("Retry-After")


def test_auth_rate_limit_also_counts_per_login_across_addresses(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMIT_AUTH", "3 per minute")
    statuses = [
        client.post(
            "/api/auth/forgot-password",
            json={"email": "target@example.test"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        ).status_code
        for n in range(4)
    ]
    assert statuses[-1] == 429


def test_sign_ins_are_not_rate_limited_per_name_so_a_botnet_cannot_lock_the_victim_out(
    client, app, monkeypatch, factory
):
    # Per name, failures ask for a captcha instead (tests/identity/test_login_throttle.py).
    monkeypatch.setitem(app.config, "RATE_LIMIT_AUTH", "3 per minute")
    player = factory.player()
    for n in range(6):
        client.post(
            "/api/auth/login",
            json={"username": player.username, "password": "x"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
    victim = login(client, player.username, PASSWORD, headers={})
    assert victim.status_code == 200, victim.get_json()


@pytest.fixture
def rules(app):
    def put(**lists):
        with atomic():
            access_rules.set_rules(lists, actor=None)

    return put


def test_a_blocked_ip_cannot_register_or_log_in(client, factory, rules):
    player = factory.player()
    rules(ip_blocklist=["203.0.113.0/24"])
    blocked = {"REMOTE_ADDR": "203.0.113.7"}
    response = client.post(
        "/api/auth/login", json={"username": player.username, "password": "x"}, environ_base=blocked
    )
    assert response.status_code == 403
    assert response.get_json()["reason"] == "ip_blocked"
    assert client.post("/api/auth/register", json={}, environ_base=blocked).status_code == 403
    assert login(client, player.username).status_code == 200  # other addresses unaffected


def test_restricted_countries_are_refused_unless_the_ip_is_allow_listed(
    client, factory, app, rules
):
    player = factory.player()
    rules(restricted_countries=["us", "FR"], ip_allowlist=["198.51.100.10"])
    header = {app.config["COUNTRY_HEADER"]: "US"}
    refused = login(client, player.username, headers=header)
    assert refused.status_code == 403
    assert refused.get_json()["reason"] == "country_restricted"
    allowed = client.post(
        "/api/auth/login",
        json={"username": player.username, "password": "Passw0rd-Long-1!"},
        headers=header,
        environ_base={"REMOTE_ADDR": "198.51.100.10"},
    )
    assert allowed.status_code == 200


def test_staff_ip_allowlist_guards_the_admin_api(client, factory, token_for, rules):
    admin = factory.staff("admin")
    rules(admin_ip_allowlist=["10.0.0.0/8"])
    assert client.get("/api/admin/users", headers=token_for(admin)).status_code == 403
    inside = client.get(
        "/api/admin/users", headers=token_for(admin), environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert inside.status_code == 200


def test_access_rules_are_validated_and_audited_through_the_admin_api(client, factory, token_for):
    admin = factory.staff("admin")
    headers = token_for(admin)
    bad = client.put(
        "/api/admin/security/access-rules", json={"ip_blocklist": ["not-an-ip"]}, headers=headers
    )
    assert bad.status_code == 400
    assert bad.get_json()["errors"][0]["field"] == "ip_blocklist"
    ok = client.put(
        "/api/admin/security/access-rules",
        json={"restricted_countries": ["us"], "reason": "licence terms"},
        headers=headers,
    )
    assert ok.get_json()["data"]["restricted_countries"] == ["US"]
    from app.core.extensions import db
    from app.core.models import AuditLog

    row = db.session.query(AuditLog).filter_by(action="settings.update").one()
    assert row.actor_id == admin.id
    assert row.reason == "licence terms"


def test_cli_users_create_still_makes_a_staff_account_that_can_log_in(runner, client):
    import pyotp

    secret = pyotp.random_base32()
    result = runner.invoke(
        args=[
            "jackpotx",
            "users",
            "create",
            "--username",
            "cliadmin",
            "--email",
            "cli@example.test",
            "--password",
            "Cl1-Admin-Pass!",
            "--role",
            "Admin",
            "--totp-secret",
            secret,
        ]
    )
    assert result.exit_code == 0, result.output
    response = login(
        client, "cliadmin", "Cl1-Admin-Pass!", staff=True, auth_code=pyotp.TOTP(secret).now()
    )
    assert response.status_code == 200
