"""Operator commands keep their names and flags."""

from __future__ import annotations

import pyotp
import sqlalchemy as sa

from app.core.extensions import db
from app.identity.models import MANAGER, PLAYER, User


def test_users_create_prints_the_new_id_and_enables_totp(runner):
    secret = pyotp.random_base32()
    result = runner.invoke(
        args=[
            "jackpotx",
            "users",
            "create",
            "--username",
            "opsmgr",
            "--email",
            "ops@x.test",
            "--password",
            "Str0ng!pass-phrase",
            "--role",
            "Manager",
            "--totp-secret",
            secret,
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.get(User, int(result.output.strip()))
    assert user.role_id == MANAGER
    assert user.totp_enabled
    assert user.password_hash.startswith("$argon2id$")


def test_users_create_refuses_weak_password_and_unknown_role(runner):
    weak = runner.invoke(
        args=[
            "jackpotx",
            "users",
            "create",
            "--username",
            "w",
            "--email",
            "w@x.test",
            "--password",
            "short",
        ]
    )
    assert weak.exit_code == 1
    assert "at least 12 characters" in weak.output
    role = runner.invoke(
        args=[
            "jackpotx",
            "users",
            "create",
            "--username",
            "r",
            "--email",
            "r@x.test",
            "--password",
            "Str0ng!pass-phrase",
            "--role",
            "Emperor",
        ]
    )
    assert role.exit_code == 2
    assert (
        db.session.scalar(sa.select(sa.func.count(User.id)).where(User.username.in_(["w", "r"])))
        == 0
    )


def test_seed_demo_is_idempotent(runner, app, monkeypatch):
    # As `make run` seeds: the deposit-limit prompt gates first deposits (the default).
    monkeypatch.setitem(app.config, "DEPOSIT_LIMIT_PROMPT_REQUIRED", True)
    first = runner.invoke(args=["jackpotx", "seed-demo"])
    assert first.exit_code == 0, first.output
    count = db.session.scalar(sa.select(sa.func.count(User.id)))
    second = runner.invoke(args=["jackpotx", "seed-demo"])
    assert second.exit_code == 0, second.output
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == count
    assert "admin" in first.output
    # The code printed goes stale; the secret also comes as a URI for an authenticator app.
    assert (
        "otpauth://totp/JackpotX:admin%40jackpotx.local?secret=JBSWY3DPEHPK3PXPADMINAAA"
        "&issuer=JackpotX" in first.output
    )


def test_sync_roles_writes_this_releases_permissions_over_stale_ones(runner):
    from app.core.db import atomic
    from app.identity import access
    from app.identity.models import SUPPORT, Role

    with atomic():
        access.ensure_roles()
        db.session.get(Role, SUPPORT).permissions = ["players.read", "affiliates.read"]
    result = runner.invoke(args=["jackpotx", "sync-roles"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.get(Role, SUPPORT).permissions == access.ROLES[SUPPORT][2]
    assert "affiliates.read" not in db.session.get(Role, SUPPORT).permissions


def test_seed_demo_refuses_to_run_in_production(app, runner, monkeypatch):
    monkeypatch.setitem(app.config, "ENV", "production")
    count = db.session.scalar(sa.select(sa.func.count(User.id)))
    result = runner.invoke(args=["jackpotx", "seed-demo"])
    assert result.exit_code != 0
    assert "refusing to seed demo data in production" in result.output
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == count


def test_the_demo_logins_meet_the_password_policy_and_the_docs_show_them(client, runner):
    from pathlib import Path

    from app.seed import DEMO_USERS

    result = runner.invoke(args=["jackpotx", "seed-demo"])
    assert result.exit_code == 0, result.output
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    console_doc = (root / "docs" / "console.md").read_text()
    player = next(u for u in DEMO_USERS if u["username"] == "player1")
    assert f'"password":"{player["password"]}"' in readme
    for spec in DEMO_USERS:
        assert spec["password"] in result.output
        if spec["role_id"] != PLAYER:
            assert f"`{spec['password']}`" in console_doc
    response = client.post(
        "/api/auth/login", json={"username": "player1", "password": player["password"]}
    )
    assert response.status_code == 200, response.get_json()


def test_every_demo_staff_member_signs_in_with_the_printed_totp_secret(client, runner):
    """Issue 21: TOTP for every staff role; the demo secrets keep the demo logins working."""
    import pyotp

    from app.seed import DEMO_TOTP, DEMO_USERS

    result = runner.invoke(args=["jackpotx", "seed-demo"])
    assert result.exit_code == 0, result.output
    staff = [spec for spec in DEMO_USERS if spec["role_id"] != PLAYER]
    assert {spec["username"] for spec in staff} == set(DEMO_TOTP)
    for spec in staff:
        secret = DEMO_TOTP[spec["username"]]
        assert secret in result.output
        response = client.post(
            "/api/admin/auth/login",
            json={
                "username": spec["username"],
                "password": spec["password"],
                "auth_code": pyotp.TOTP(secret).now(),
            },
        )
        assert response.status_code == 200, (spec["username"], response.get_json())
