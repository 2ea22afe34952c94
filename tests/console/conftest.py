"""Fixtures for the back-office tests: staff of every role, signed in through the real form."""

from __future__ import annotations

import re

import pyotp
import pytest

from app.core.bus import subscribe
from app.identity import totp
from app.identity.models import PLAYER, User

PASSWORD = "Str0ng-Pass!"
ROLES = ("admin", "manager", "support", "agent")


@pytest.fixture
def new_client(app):
    return lambda: app.test_client(use_cookies=True)


@pytest.fixture
def client(new_client):
    return new_client()


class Staff:
    """A staff member with their password and TOTP secret (every staff role needs one)."""

    def __init__(self, user: User, secret: str | None) -> None:
        self.user = user
        self.secret = secret

    def code(self) -> str:
        assert self.secret, "this staff member has no TOTP"
        return pyotp.TOTP(self.secret).now()


@pytest.fixture
def make_staff(factory):
    def make(role: str, *, with_totp: bool | None = None, **kw) -> Staff:
        with_totp = True if with_totp is None else with_totp
        secret = totp.new_secret() if with_totp else None
        user = factory.staff(role, password=PASSWORD, totp_secret=secret, **kw)
        return Staff(user, secret)

    return make


def login(client, staff: Staff, *, code: str | None = None, follow: bool = False):
    """Sign in through the real form (with its CSRF token when CSRF is enforced)."""
    if code is None and staff.secret:
        code = staff.code()
    data = {"username": staff.user.username, "password": PASSWORD, "code": code or ""}
    page = client.get("/admin/login").get_data(as_text=True)
    if 'name="csrf_token"' in page:
        data["csrf_token"] = csrf_token_of(page)
    return client.post("/admin/login", data=data, follow_redirects=follow)


@pytest.fixture
def signed_in(new_client, make_staff):
    """``signed_in(role)`` → a test client with a live console session for a new staff member."""

    def make(role: str) -> tuple:
        staff = make_staff(role)
        client = new_client()
        response = login(client, staff)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client, staff

    return make


@pytest.fixture
def player(factory) -> User:
    return factory.player(country="MT", first_name="Ada", last_name="Lovelace")


@pytest.fixture
def events():
    """Every event delivered after commit, as ``(name, data, room)``."""
    seen: list[tuple[str, dict, str | None]] = []
    unsubscribe = subscribe(lambda e: seen.append((e.name, e.data, e.room)))
    yield seen
    unsubscribe()


@pytest.fixture
def csrf_enforced(app):
    """CSRF as in production (the testing profile turns it off for the JSON API tests)."""
    app.config["WTF_CSRF_ENABLED"] = True
    yield
    app.config["WTF_CSRF_ENABLED"] = False


def csrf_token_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


__all__ = ["PASSWORD", "PLAYER", "ROLES", "Staff", "csrf_token_of", "login"]


@pytest.fixture
def gateway(app):
    from tests.payments_helpers import sandbox_gateway

    return sandbox_gateway()


@pytest.fixture
def payout_wire(monkeypatch):
    """The sandbox gateway's outgoing webhooks, recorded instead of sent over the network."""
    from app.payments.gateways import sandbox

    sent: list[tuple[str, bytes, dict]] = []
    monkeypatch.setattr(
        sandbox, "http_post", lambda url, body, headers: sent.append((url, body, headers)) or 202
    )
    return sent
