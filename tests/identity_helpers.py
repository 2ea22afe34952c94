"""Small helpers for the identity tests (login through HTTP, TOTP codes)."""

from __future__ import annotations

import time

import pyotp

PASSWORD = "Passw0rd-Long-1!"
ADMIN_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def login(client, username, password=PASSWORD, *, auth_code=None, staff=False, headers=None):
    body = {"username": username, "password": password}
    if auth_code is not None:
        body["auth_code"] = auth_code
    path = "/api/admin/auth/login" if staff else "/api/auth/login"
    return client.post(path, json=body, headers=headers or {})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tokens(client, username, password=PASSWORD, **kw) -> dict:
    response = login(client, username, password, **kw)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]


def code(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)
