"""One-time codes sent by SMS or e-mail: phone verification, SMS 2FA, OTP sign-up/sign-in.

Invariants:
* A code is 6 random digits (``secrets``); only ``HMAC-SHA256(key, salt:code)`` is stored, the
  key derived from ``SECRET_KEY``, the salt random per row: a leaked table cannot be tried
  offline against the 10^6 possible codes.
* Issuing a code for a (purpose, destination) ends every earlier open one for it: only the
  newest code works. A code lives ``OTP_TTL_SECONDS`` and is spent by one conditional
  UPDATE (``used_at IS NULL``): a replay or the loser of two racing submissions fails.
* Each wrong guess counts on the row (and is committed even though the request is refused);
  at ``OTP_MAX_ATTEMPTS`` the code is dead. With sends spaced ``OTP_RESEND_SECONDS`` and
  capped at ``OTP_MAX_PER_DESTINATION_PER_DAY`` per destination and
  ``OTP_MAX_PER_IP_PER_HOUR`` per client address, a guesser gets at most
  attempts x sends-per-day tries a day at a 10^-6 chance each. The per-destination budget is
  kept per kind of code (``LIMIT_GROUPS``) so that nobody can use up, with sign-up requests,
  the texts a player needs to sign in.
* An SMS leaves after the row is committed (:func:`deliver`, outside the transaction); an
  e-mail code is queued in the outbox inside it. A provider failure answers 503.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app, render_template
from sqlalchemy import func, select, update

from app.core import mail, sms
from app.core.base import utcnow
from app.core.db import rowcount
from app.core.errors import RateLimited, ServiceUnavailable
from app.core.extensions import db
from app.identity.models import OneTimeCode

#: E-mail subjects of the purposes that may go by e-mail.
SUBJECTS = {
    "signup": "Your JackpotX sign-up code",
    "signin": "Your JackpotX sign-in code",
}


@dataclass
class Outgoing:
    """A code to send once the transaction that recorded it has committed."""

    channel: str
    to: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    user_id: int | None = None
    #: Set by :func:`deliver` (the backend's message id), for logs and tests.
    sent_id: str | None = None


def _key() -> bytes:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hashlib.sha256(b"jackpotx-otp|" + secret).digest()


def digest(salt: str, code: str) -> str:
    return hmac.new(_key(), f"{salt}:{code}".encode(), hashlib.sha256).hexdigest()


def _wait(until, now) -> int:
    return max(1, int((until - now).total_seconds()) + 1)


#: Purposes whose codes share one per-destination budget. Separate budgets keep one use from
#: starving another: strangers asking sign-up codes for a number cannot use up the texts its
#: owner needs to sign in (``login_2fa`` codes are sent only after the right password).
LIMIT_GROUPS: dict[str, tuple[str, ...]] = {
    "phone_verify": ("phone_verify",),
    "login_2fa": ("login_2fa",),
    "signup": ("signup", "signin"),
    "signin": ("signup", "signin"),
}
#: Purposes anyone can trigger without a password: also limited per client address.
PER_IP_PURPOSES = ("phone_verify", "signup", "signin")


def check_send_limits(purpose: str, destination: str, ip: str | None) -> None:
    """429 with ``Retry-After`` when this destination (for this kind of code) or this address
    had enough codes."""
    cfg = current_app.config
    now = utcnow()
    sent = list(
        db.session.scalars(
            select(OneTimeCode.created_at).where(
                OneTimeCode.destination == destination,
                OneTimeCode.purpose.in_(LIMIT_GROUPS[purpose]),
                OneTimeCode.created_at > now - timedelta(days=1),
            )
        )
    )
    spacing = timedelta(seconds=int(cfg["OTP_RESEND_SECONDS"]))
    if sent and max(sent) + spacing > now:
        wait = _wait(max(sent) + spacing, now)
        raise RateLimited(
            "Wait before asking for another code",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )
    if len(sent) >= int(cfg["OTP_MAX_PER_DESTINATION_PER_DAY"]):
        wait = _wait(min(sent) + timedelta(days=1), now)
        raise RateLimited(
            "Too many codes sent to this destination today; try again later",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )
    if ip and purpose in PER_IP_PURPOSES:
        hour = now - timedelta(hours=1)
        from_ip = list(
            db.session.scalars(
                select(OneTimeCode.created_at).where(
                    OneTimeCode.ip == ip,
                    OneTimeCode.purpose.in_(PER_IP_PURPOSES),
                    OneTimeCode.created_at > hour,
                )
            )
        )
        if len(from_ip) >= int(cfg["OTP_MAX_PER_IP_PER_HOUR"]):
            wait = _wait(min(from_ip) + timedelta(hours=1), now)
            raise RateLimited(
                "Too many codes requested from this address; try again later",
                headers={"Retry-After": str(wait)},
                retry_after=wait,
            )


def issue(
    purpose: str,
    channel: str,
    destination: str,
    *,
    template: str,
    user_id: int | None = None,
    ip: str | None = None,
    context: dict[str, Any] | None = None,
    send: bool = True,
) -> Outgoing | None:
    """Record a new code (caller's transaction) within the send limits; answer what to send.

    E-mail codes are queued in the outbox here; SMS codes go out with :func:`deliver` after
    the caller's commit. ``send=False`` records a code nobody receives (answers ``None``):
    the send limits then count a request that must look like any other."""
    check_send_limits(purpose, destination, ip)
    now = utcnow()
    ttl = int(current_app.config["OTP_TTL_SECONDS"])
    db.session.execute(
        update(OneTimeCode)
        .where(
            OneTimeCode.purpose == purpose,
            OneTimeCode.destination == destination,
            OneTimeCode.used_at.is_(None),
            OneTimeCode.expires_at > now,
        )
        .values(expires_at=now)
    )
    code = f"{secrets.randbelow(10**6):06d}"
    salt = secrets.token_hex(16)
    db.session.add(
        OneTimeCode(
            purpose=purpose,
            channel=channel,
            destination=destination,
            user_id=user_id,
            salt=salt,
            code_hash=digest(salt, code),
            ip=ip,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    db.session.flush()
    if not send:
        return None
    values = {**(context or {}), "code": code, "minutes": max(1, ttl // 60)}
    outgoing = Outgoing(channel, destination, template, values, user_id)
    if channel == "email":
        mail.queue_email(
            to=destination,
            user_id=user_id,
            template=template,
            subject=SUBJECTS.get(purpose, "Your JackpotX code"),
            body=render_template(f"mail/{template}.txt", **values),
        )
    return outgoing


def deliver(outgoing: Outgoing | None) -> None:
    """Send an SMS code now (after the commit); 503 when the provider does not take it."""
    if outgoing is None or outgoing.channel != "sms":
        return
    try:
        sent = sms.send_sms(
            outgoing.to, outgoing.template, outgoing.context, user_id=outgoing.user_id
        )
    except sms.SmsError:
        raise ServiceUnavailable("The text message could not be sent; try again later") from None
    outgoing.sent_id = sent.id if sent else None


def find_open(
    purposes: tuple[str, ...], destination: str, *, user_id: int | None = None
) -> OneTimeCode | None:
    """The newest usable code for ``destination`` among ``purposes``, locked (caller's
    transaction): not spent, not expired, attempts left."""
    now = utcnow()
    query = (
        select(OneTimeCode)
        .where(
            OneTimeCode.purpose.in_(purposes),
            OneTimeCode.destination == destination,
            OneTimeCode.used_at.is_(None),
            OneTimeCode.expires_at > now,
            OneTimeCode.attempts < int(current_app.config["OTP_MAX_ATTEMPTS"]),
        )
        .order_by(OneTimeCode.created_at.desc(), OneTimeCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if user_id is not None:
        query = query.where(OneTimeCode.user_id == user_id)
    return db.session.scalar(query)


def matches(row: OneTimeCode, code: str) -> bool:
    """Is ``code`` this row's code? A wrong one counts an attempt (the caller commits it)."""
    code = (code or "").strip()
    good = (
        len(code) == 6
        and code.isascii()
        and code.isdigit()
        and hmac.compare_digest(row.code_hash, digest(row.salt, code))
    )
    if not good:
        count_wrong(row)
    return good


def count_wrong(row: OneTimeCode) -> None:
    """One more wrong guess against this code (a wrong second factor counts too)."""
    db.session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.id == row.id)
        .values(attempts=OneTimeCode.attempts + 1)
    )


def consume(row: OneTimeCode) -> bool:
    """Spend the row: one conditional UPDATE, so of two racing requests one wins."""
    return (
        rowcount(
            db.session.execute(
                update(OneTimeCode)
                .where(OneTimeCode.id == row.id, OneTimeCode.used_at.is_(None))
                .values(used_at=utcnow())
            )
        )
        == 1
    )


def spend(
    purpose: str, destination: str, code: str, *, user_id: int | None = None
) -> OneTimeCode | None:
    """Spend the newest open code for (purpose, destination) if ``code`` is it.

    A wrong code counts an attempt on that row; the caller commits before refusing (the
    count must stay). Answers the spent row, or ``None``."""
    row = find_open((purpose,), destination, user_id=user_id)
    if row is None or not matches(row, code) or not consume(row):
        return None
    return row


def open_count(purpose: str, destination: str) -> int:
    """Codes still usable for (purpose, destination) (0 or 1: issuing ends older ones)."""
    now = utcnow()
    return (
        db.session.scalar(
            select(func.count()).where(
                OneTimeCode.purpose == purpose,
                OneTimeCode.destination == destination,
                OneTimeCode.used_at.is_(None),
                OneTimeCode.expires_at > now,
            )
        )
        or 0
    )
