"""A TOTP code works once per time step, with one step of drift either way."""

from __future__ import annotations

import time

import pyotp

from app.identity import totp


def test_code_is_accepted_once_then_refused(factory):
    user = factory.player()
    secret = totp.new_secret()
    totp.store_secret(user, secret)
    code = pyotp.TOTP(secret).now()
    assert totp.verify_code(user, code)
    assert not totp.verify_code(user, code)


def test_previous_step_is_accepted_but_not_older(factory):
    user = factory.player()
    secret = totp.new_secret()
    totp.store_secret(user, secret)
    gen = pyotp.TOTP(secret)
    assert totp.verify_code(user, gen.at(time.time() - 30))
    user.totp_last_step = None
    assert not totp.verify_code(user, gen.at(time.time() - 95))


def test_garbage_codes_are_refused(factory):
    user = factory.player()
    totp.store_secret(user, totp.new_secret())
    for code in ("", None, "abcdef", "12345", "1234567"):
        assert not totp.verify_code(user, code)


def test_qr_is_an_svg_of_the_provisioning_uri(factory):
    user = factory.player()
    uri = totp.provisioning_uri(user, totp.new_secret())
    assert uri.startswith("otpauth://totp/JackpotX:")
    assert totp.qr_svg(uri).lstrip().startswith("<svg")
