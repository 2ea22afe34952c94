"""The password policy (ASVS 5: length, no composition rules, no common passwords) holds on
every path that sets a password: registration (test_identity_auth), change, reset, staff."""

from __future__ import annotations

import pytest

from app.core.db import atomic
from app.core.errors import ValidationError
from app.identity import accounts, passwords, users
from app.identity.models import SUPPORT
from tests.identity_helpers import PASSWORD, bearer, tokens


def test_the_bundled_list_is_a_real_list_and_catches_padded_variants(app):
    listed = passwords.common_passwords()
    assert len(listed) > 10_000
    assert {"password", "qwertyuiop", "welcome", "password1234"} <= listed
    for weak in ("Password1!", "Welcome1!", "Qwerty123!", "qwertyuiop123", "PASSWORD1234!!"):
        assert passwords.is_common(weak), weak
    assert not passwords.is_common("correct horse battery staple")
    assert not passwords.is_common("Passw0rd-Long-1!")


@pytest.mark.parametrize("weak", ["Welcome1!", "password1234", "qwertyuiop123"])
def test_a_password_change_refuses_short_and_common_passwords(client, factory, weak):
    player = factory.player()
    headers = bearer(tokens(client, player.username)["access_token"])
    response = client.put(
        "/api/user/password/change",
        json={"current_password": PASSWORD, "new_password": weak, "confirm_password": weak},
        headers=headers,
    )
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "new_password"


def test_a_password_change_to_a_long_passphrase_without_digits_works(client, factory):
    player = factory.player()
    headers = bearer(tokens(client, player.username)["access_token"])
    phrase = "a long passphrase without any digits at all"
    response = client.put(
        "/api/user/password/change",
        json={"current_password": PASSWORD, "new_password": phrase, "confirm_password": phrase},
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    tokens(client, player.username, phrase)


def test_a_reset_refuses_common_passwords(app):
    with pytest.raises(ValidationError, match="too common"):
        accounts.reset_password("any-token", "qwertyuiop123", "qwertyuiop123")


@pytest.mark.parametrize("weak", ["Support123!", "password1234"])
def test_staff_passwords_follow_the_policy(app, weak):
    with pytest.raises(ValidationError), atomic():
        users.create_user(
            username="newsupport", email="newsupport@example.test", password=weak, role_id=SUPPORT
        )


def test_the_cli_refuses_a_weak_staff_password(runner):
    result = runner.invoke(
        args=[
            "jackpotx", "users", "create", "--username", "weakling", "--email",
            "weakling@example.test", "--password", "Admin123!", "--role", "Support",
        ]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "at least 12 characters" in result.output
