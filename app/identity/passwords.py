"""Password hashing (argon2id) and the password policy (OWASP ASVS 5, V6.2).

The policy is about length and guessability, not composition:

* at least ``PASSWORD_MIN_LENGTH`` (12) characters and at most ``PASSWORD_MAX_LENGTH`` (128);
  any character counts, spaces and Unicode included, so a passphrase of plain words is
  welcome; nothing is truncated or required (no "a digit, an uppercase letter, a symbol");
* not one of the common or breached passwords shipped in ``data/common_passwords.txt``
  (compared in lower case), nor one of them with digits or symbols added at the end
  (``qwertyuiop123``, ``Password1234!``).

Players (registration, change, reset) and staff (``users.create_user``) share it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from app.core.errors import ValidationError

COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common_passwords.txt"
#: Digits, symbols and spaces at the end of a password: ``password`` + ``1234!``.
_TRAILING_NON_LETTERS = re.compile(r"[\W\d_]+$")


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(
        time_cost=cfg["ARGON2_TIME_COST"],
        memory_cost=cfg["ARGON2_MEMORY_COST"],
        parallelism=cfg["ARGON2_PARALLELISM"],
    )


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common and breached passwords, in lower case (read once)."""
    with COMMON_PASSWORDS_FILE.open(encoding="utf-8") as lines:
        return frozenset(
            line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
        )


def is_common(password: str) -> bool:
    """On the list, or a listed password with only digits or symbols added at its end."""
    lowered = password.lower()
    listed = common_passwords()
    if lowered in listed or lowered.strip() in listed:
        return True
    base = _TRAILING_NON_LETTERS.sub("", lowered)
    return bool(base) and base != lowered and base in listed


def policy_problems(password: str) -> list[str]:
    cfg = current_app.config
    shortest = int(cfg.get("PASSWORD_MIN_LENGTH", 12))
    longest = int(cfg.get("PASSWORD_MAX_LENGTH", 128))
    if len(password) < shortest:
        return [
            f"Password must be at least {shortest} characters long; "
            "a passphrase of a few words is easy to remember"
        ]
    if len(password) > longest:
        return [f"Password must be at most {longest} characters long"]
    if is_common(password):
        return ["This password is too common (it appears in lists of breached passwords)"]
    return []


def check_policy(password: str, field: str = "password") -> None:
    problems = policy_problems(password)
    if problems:
        raise ValidationError.field(field, problems[0])


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


#: A real hash to verify against for unknown users, so both paths cost the same time.
_DUMMY: dict[str, str] = {}


def burn_time(password: str) -> None:
    key = f"{current_app.config['ARGON2_TIME_COST']}:{current_app.config['ARGON2_MEMORY_COST']}"
    if key not in _DUMMY:
        _DUMMY[key] = hash_password("Dummy-Password-1!")
    verify_password(_DUMMY[key], password)
