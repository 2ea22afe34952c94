"""A player's phone numbers: E.164, several per player, one primary, verified by SMS code.

Invariants:
* Numbers are parsed with ``phonenumbers`` (the player's country as the default region, so
  a national number works) and stored only in E.164; an invalid number is a 400 naming
  ``number``.
* At most one primary per player (partial unique index); only a verified number can be
  primary. The first verified number becomes primary; ``users.phone`` mirrors the primary.
* A number verified by one account cannot be verified by another (partial unique index).
  That is told only to whoever typed the right code, i.e. to the phone's holder: adding a
  number never reveals whether someone else holds it.
* Verification codes are ``app.identity.otp`` codes (purpose ``phone_verify``, per-number
  and per-address send limits, attempts bounded per code, single use, hashed at rest).
* The primary number of a player with SMS two-factor on cannot be deleted (turn it off or
  make another verified number primary first).
"""

from __future__ import annotations

import phonenumbers
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.core import audit
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, lock_one
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.identity import otp
from app.identity.models import User, UserPhone

INVALID_CODE = "This code is invalid, used or expired"
VERIFY_TEMPLATE = "phone_verification"


def to_e164(raw: str, region: str | None = None, *, field: str = "number") -> str:
    """``raw`` in E.164, or a 400 naming ``field``."""
    text = (raw or "").strip()
    if not text or len(text) > 32 or "\x00" in text:
        raise ValidationError.field(field, "Give a phone number, e.g. +35699123456")
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        raise ValidationError.field(
            field, "Not a phone number: use the international format, e.g. +35699123456"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError.field(field, "This is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def list_of(user_id: int) -> list[UserPhone]:
    return list(
        db.session.scalars(
            select(UserPhone)
            .where(UserPhone.user_id == user_id)
            .order_by(UserPhone.is_primary.desc(), UserPhone.id)
        )
    )


def primary_verified(user_id: int) -> UserPhone | None:
    return db.session.scalar(
        select(UserPhone).where(
            UserPhone.user_id == user_id,
            UserPhone.is_primary.is_(True),
            UserPhone.verified_at.is_not(None),
        )
    )


def _own(user: User, phone_id: int) -> UserPhone:
    phone = lock_one(UserPhone, UserPhone.id == phone_id, UserPhone.user_id == user.id)
    if phone is None:
        raise NotFound("No such phone number on your account")
    return phone


def add(user: User, raw: str, *, ip: str | None = None) -> tuple[UserPhone, otp.Outgoing | None]:
    """Add an unverified number and text it a code (sent after commit by the caller)."""
    number = to_e164(raw, user.country)
    with atomic():
        user = lock_existing(User, User.id == user.id)
        phones = list_of(user.id)
        if any(p.number == number for p in phones):
            raise Conflict("This number is already on your account")
        if len(phones) >= int(current_app.config["PHONE_MAX_PER_USER"]):
            raise Conflict("You have reached the maximum number of phone numbers; delete one")
        phone = UserPhone(user_id=user.id, number=number, created_at=utcnow())
        db.session.add(phone)
        db.session.flush()
        outgoing = otp.issue(
            "phone_verify", "sms", number, template=VERIFY_TEMPLATE, user_id=user.id, ip=ip
        )
        audit.record(
            "user.phone_added",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"phone_id": phone.id, "number": number},
        )
    return phone, outgoing


def resend(user: User, phone_id: int, *, ip: str | None = None) -> otp.Outgoing | None:
    with atomic():
        phone = _own(user, phone_id)
        if phone.verified_at is not None:
            raise ValidationError("This number is already verified")
        return otp.issue(
            "phone_verify", "sms", phone.number, template=VERIFY_TEMPLATE, user_id=user.id, ip=ip
        )


def verify(user: User, phone_id: int, code: str) -> UserPhone:
    """Spend the texted code; the first verified number becomes primary."""
    failure: Exception | None = None
    try:
        with atomic():
            user = lock_existing(User, User.id == user.id)
            phone = _own(user, phone_id)
            if phone.verified_at is not None:
                return phone
            row = otp.spend("phone_verify", phone.number, code, user_id=user.id)
            if row is None:
                # Committed: the wrong guess stays counted on the code.
                failure = ValidationError.field("code", INVALID_CODE)
            else:
                taken = db.session.scalar(
                    select(UserPhone.id).where(
                        UserPhone.number == phone.number,
                        UserPhone.verified_at.is_not(None),
                        UserPhone.user_id != user.id,
                    )
                )
                if taken is not None:
                    failure = Conflict("This number is verified on another account")
                else:
                    phone.verified_at = utcnow()
                    if primary_verified(user.id) is None:
                        _set_primary(user, phone)
                    audit.record(
                        "user.phone_verified",
                        actor=user,
                        target_type="user",
                        target_id=user.id,
                        after={"phone_id": phone.id, "number": phone.number},
                    )
    except IntegrityError:
        # Another account verified the same number a moment ago (unique index).
        raise Conflict("This number is verified on another account") from None
    if failure is not None:
        raise failure
    return phone


def _set_primary(user: User, phone: UserPhone) -> None:
    db.session.execute(
        update(UserPhone)
        .where(UserPhone.user_id == user.id, UserPhone.id != phone.id)
        .values(is_primary=False)
    )
    db.session.flush()
    phone.is_primary = True
    user.phone = phone.number


def make_primary(user: User, phone_id: int) -> UserPhone:
    with atomic():
        user = lock_existing(User, User.id == user.id)
        phone = _own(user, phone_id)
        if phone.verified_at is None:
            raise Conflict("Verify this number before making it primary")
        if not phone.is_primary:
            _set_primary(user, phone)
            audit.record(
                "user.phone_primary",
                actor=user,
                target_type="user",
                target_id=user.id,
                after={"phone_id": phone.id, "number": phone.number},
            )
    return phone


def delete(user: User, phone_id: int) -> None:
    with atomic():
        user = lock_existing(User, User.id == user.id)
        phone = _own(user, phone_id)
        if phone.is_primary and user.sms_2fa_enabled:
            raise Conflict(
                "This number receives your sign-in codes: turn SMS two-factor off or make "
                "another verified number primary first"
            )
        if phone.is_primary:
            user.phone = None
        db.session.delete(phone)
        audit.record(
            "user.phone_deleted",
            actor=user,
            target_type="user",
            target_id=user.id,
            before={"phone_id": phone.id, "number": phone.number},
        )
