"""A player's postal addresses: several, at most one default.

Invariants:
* At most ``MAX_ADDRESSES`` per player; the first one becomes the default; making another the
  default clears the old one in the same transaction (the partial unique index
  ``uq_user_addresses_default`` is the last word); deleting the default promotes the oldest
  remaining address.
* A player only ever reaches their own rows (another player's id answers 404, like a missing
  one). Every change is audited. Country codes are ISO 3166-1 alpha-2 regions
  (``phonenumbers``' region list: no new dependency for a list of countries).
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlalchemy import func, select

from app.core import audit
from app.core.db import atomic, lock_existing, lock_one
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.identity.models import User, UserAddress

MAX_ADDRESSES = 10
FIELDS = ("label", "line1", "line2", "city", "region", "postal_code", "country")
REQUIRED = ("line1", "city", "country")


def addresses_of(user_id: int) -> list[UserAddress]:
    return list(
        db.session.scalars(
            select(UserAddress)
            .where(UserAddress.user_id == user_id)
            .order_by(UserAddress.is_default.desc(), UserAddress.id)
        )
    )


def _clean(changes: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name in FIELDS:
        if name not in changes:
            if not partial and name in REQUIRED:
                raise ValidationError.field(name, "This field is required")
            continue
        value = changes[name]
        value = value.strip() if isinstance(value, str) else value
        if name in REQUIRED and not value:
            raise ValidationError.field(name, "This field is required")
        if isinstance(value, str) and any(ord(ch) < 32 for ch in value):
            raise ValidationError.field(name, "Control characters are not allowed")
        if name == "country":
            code = str(value).upper()
            if code not in phonenumbers.SUPPORTED_REGIONS:
                raise ValidationError.field("country", "Use an ISO 3166-1 alpha-2 country code")
            value = code
        clean[name] = value or None
    return clean


def _own(user: User, address_id: int) -> UserAddress:
    row = lock_one(UserAddress, UserAddress.id == address_id, UserAddress.user_id == user.id)
    if row is None:
        raise NotFound("No such address")
    return row


def _make_default(user: User, row: UserAddress) -> None:
    for other in db.session.scalars(
        select(UserAddress).where(
            UserAddress.user_id == user.id, UserAddress.is_default, UserAddress.id != row.id
        )
    ):
        other.is_default = False
    db.session.flush()  # the old default is cleared before the index sees the new one
    row.is_default = True


def add_address(user: User, data: dict[str, Any], *, make_default: bool = False) -> UserAddress:
    clean = _clean(data, partial=False)
    with atomic():
        lock_existing(User, User.id == user.id)  # one change of a player's addresses at a time
        count = int(
            db.session.scalar(
                select(func.count()).select_from(UserAddress).where(UserAddress.user_id == user.id)
            )
            or 0
        )
        if count >= MAX_ADDRESSES:
            raise Conflict(f"At most {MAX_ADDRESSES} addresses")
        row = UserAddress(user_id=user.id, **clean)
        db.session.add(row)
        db.session.flush()
        if make_default or count == 0:
            _make_default(user, row)
        db.session.flush()
        audit.record(
            "user.address.add",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"address_id": row.id, "default": row.is_default},
        )
    return row


def update_address(
    user: User, address_id: int, changes: dict[str, Any], *, make_default: bool = False
) -> UserAddress:
    clean = _clean(changes, partial=True)
    with atomic():
        lock_existing(User, User.id == user.id)
        row = _own(user, address_id)
        for name, value in clean.items():
            setattr(row, name, value)
        if make_default and not row.is_default:
            _make_default(user, row)
        db.session.flush()
        audit.record(
            "user.address.update",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"address_id": row.id, "fields": sorted(clean), "default": row.is_default},
        )
    return row


def delete_address(user: User, address_id: int) -> None:
    with atomic():
        lock_existing(User, User.id == user.id)
        row = _own(user, address_id)
        was_default = row.is_default
        db.session.delete(row)
        db.session.flush()
        if was_default:
            oldest = db.session.scalar(
                select(UserAddress)
                .where(UserAddress.user_id == user.id)
                .order_by(UserAddress.id)
                .limit(1)
            )
            if oldest is not None:
                oldest.is_default = True
        audit.record(
            "user.address.delete",
            actor=user,
            target_type="user",
            target_id=user.id,
            before={"address_id": address_id, "default": was_default},
        )
