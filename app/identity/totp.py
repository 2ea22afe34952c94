"""TOTP second factor (RFC 6238 via pyotp).

Invariants:
* The secret is stored encrypted (``User.totp_secret_enc``) and shown only at provisioning.
* A code is accepted at most once per time step (``User.totp_last_step``), ±1 step of drift:
  a replayed or shoulder-surfed code is refused. The caller's transaction persists the step.
"""

from __future__ import annotations

import io
import time

import pyotp
import segno

from app.core.crypto import decrypt, encrypt
from app.identity.models import User

ISSUER = "JackpotX"
STEP = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The provisioning URI as an inline SVG QR code (no external service sees the secret)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, border=2)
    return buffer.getvalue().decode()


def store_secret(user: User, secret: str) -> None:
    user.totp_secret_enc = encrypt(secret)
    user.totp_last_step = None


def secret_of(user: User) -> str | None:
    return decrypt(user.totp_secret_enc) if user.totp_secret_enc else None


def verify_code(user: User, code: str | None, *, secret: str | None = None) -> bool:
    """Check ``code`` against the user's (or the given pending) secret; burn its time step."""
    secret = secret or secret_of(user)
    if not secret or not code:
        return False
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(secret, interval=STEP)
    now_step = int(time.time()) // STEP
    for step in (now_step - 1, now_step, now_step + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False  # already used (or an older code after a newer one)
            user.totp_last_step = step
            return True
    return False
