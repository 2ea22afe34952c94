"""OTP sign-up and sign-in (UserState style): an e-mail address or a phone number and a
one-time code instead of the captcha + password step. The operator setting ``signup_mode``
(``password`` | ``otp`` | ``both``) decides which registration is open.

Invariants:
* ``request_code`` answers the same whatever the destination: a new address gets a sign-up
  code, an address that belongs to a player gets a sign-in code (the text says they already
  have an account), and an address of a staff, banned or closed account gets a code recorded
  but never sent. The send limits count every request alike, so neither the answer, nor the
  429, nor its timing (one row written either way) tells whether an account exists.
* ``verify`` finds the newest open code of the destination; a wrong code counts an attempt
  (committed) and answers the same 400 whether the destination is known or not. Only after
  a right code, i.e. to whoever reads that mailbox or phone, does the answer differ
  (``created`` true or false, a missing username).
* A sign-up code opens a player account with the destination verified (``email_verified_at``
  or a verified primary phone) and signs it in; the password is optional (``has_password``
  false: the stored hash is of a random secret; ``POST /api/user/password/set`` adds one).
* A sign-in code signs the player in; with TOTP on, ``auth_code`` is required too, and a
  wrong one counts as a wrong code. An account with SMS two-factor is refused (a code alone
  would skip the password). Staff never sign in here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.core import audit, opsettings
from app.core.base import utcnow
from app.core.db import atomic, lock_existing
from app.core.errors import AccessDenied, AppError, AuthenticationError, Conflict, ValidationError
from app.core.extensions import db
from app.identity import accounts, otp, passwords, phones, totp
from app.identity.models import AGENT, PLAYER, User, UserPhone
from app.identity.users import create_user

INVALID = "This code is invalid, used or expired"


def mode() -> str:
    return opsettings.value("signup_mode") or "password"


def _require_otp_mode() -> None:
    if mode() not in ("otp", "both"):
        raise AccessDenied("Sign-up with a one-time code is not enabled", signup_mode=mode())


@dataclass(frozen=True)
class Destination:
    channel: str  # "email" | "sms"
    value: str  # lower-cased e-mail address or E.164 number

    @property
    def field(self) -> str:
        return "email" if self.channel == "email" else "phone"


def destination(email: str | None, phone: str | None, region: str | None) -> Destination:
    if bool(email) == bool(phone):
        raise ValidationError.field("email", "Give an e-mail address or a phone number (one)")
    if email:
        value = email.strip().lower()
        if "@" not in value or len(value) > 255 or "\x00" in value:
            raise ValidationError.field("email", "Not a valid e-mail address")
        return Destination("email", value)
    return Destination("sms", phones.to_e164(phone or "", region, field="phone"))


def _owner(dest: Destination) -> User | None:
    if dest.channel == "email":
        return db.session.scalar(select(User).where(func.lower(User.email) == dest.value))
    return db.session.scalar(
        select(User)
        .join(UserPhone, UserPhone.user_id == User.id)
        .where(UserPhone.number == dest.value, UserPhone.verified_at.is_not(None))
    )


def request_code(dest: Destination, *, ip: str | None) -> otp.Outgoing | None:
    """Record (and, where it should, send) a code for ``dest``; same answer for every one."""
    _require_otp_mode()
    with atomic():
        owner = _owner(dest)
        if owner is None:
            return otp.issue("signup", dest.channel, dest.value, template="signup_code", ip=ip)
        reachable = owner.role_id == PLAYER and owner.status not in ("banned", "closed")
        return otp.issue(
            "signin",
            dest.channel,
            dest.value,
            template="signin_code",
            user_id=owner.id,
            ip=ip,
            send=reachable,
        )


@dataclass
class OtpResult:
    created: bool
    login: accounts.LoginResult


def _placeholder_email(dest: Destination) -> str:
    """``users.email`` is required: a phone-only account gets an address that can never
    receive mail (RFC 2606 ``.invalid``) and is unverified."""
    return f"phone-{dest.value.lstrip('+')}@no-email.invalid"


def verify(
    dest: Destination,
    code: str,
    *,
    username: str | None = None,
    password: str | None = None,
    marketing_consent: bool = False,
    ref_code: str | None = None,
    auth_code: str | None = None,
    client: accounts.ClientInfo | None = None,
) -> OtpResult:
    _require_otp_mode()
    client = client or accounts.ClientInfo()
    if password:
        passwords.check_policy(password)
    failure: AppError | None = None
    result: OtpResult | None = None
    try:
        with atomic():
            row = otp.find_open(("signup", "signin"), dest.value)
            if row is None or not otp.matches(row, code):
                failure = ValidationError.field("code", INVALID)
            elif row.purpose == "signin":
                failure, result = _sign_in(dest, row, auth_code, client)
            else:
                failure, result = _sign_up(
                    dest, row, username, password, marketing_consent, ref_code, client
                )
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name or address.
        raise Conflict("Username, e-mail or phone number is already registered") from None
    if failure is not None:
        raise failure
    assert result is not None
    return result


def _sign_in(dest, row, auth_code, client) -> tuple[AppError | None, OtpResult | None]:
    owner = _owner(dest)
    if owner is None or owner.id != row.user_id:
        otp.consume(row)  # the address changed hands since the code was sent
        return ValidationError.field("code", INVALID), None
    user = lock_existing(User, User.id == owner.id)
    if user.role_id != PLAYER:
        otp.consume(row)
        accounts.failed_sign_in(user, dest.value, client, "wrong_portal")
        return AccessDenied("Staff accounts sign in at /api/admin/auth/login"), None
    if problem := accounts.status_problem(user):
        otp.consume(row)
        accounts.failed_sign_in(user, dest.value, client, user.status)
        return problem, None
    if user.sms_2fa_enabled and not user.totp_enabled:
        # A one-time code alone would skip the texted second factor (or be it, without the
        # password): such accounts sign in with the password and the texted code.
        otp.consume(row)
        accounts.failed_sign_in(user, dest.value, client, "sms_2fa_account")
        return AccessDenied(
            "This account uses SMS two-factor: sign in with your password", method="sms"
        ), None
    if user.totp_enabled:
        if not auth_code:
            # The code stays open: send it again with the authenticator's code.
            return AuthenticationError(
                "A two-factor code is required", requires_2fa=True, method="totp"
            ), None
        if not totp.verify_code(user, auth_code):
            otp.count_wrong(row)  # a wrong second factor costs an attempt on this code
            accounts.failed_sign_in(user, dest.value, client, "totp_invalid")
            return AuthenticationError(
                "Invalid or already used two-factor code", requires_2fa=True, method="totp"
            ), None
    if not otp.consume(row):
        return ValidationError.field("code", INVALID), None
    _mark_verified(user, dest)
    login = accounts.signed_in(user, dest.value, accounts.PLAYER_PORTAL, client, method="otp")
    return None, OtpResult(created=False, login=login)


def _mark_verified(user: User, dest: Destination) -> None:
    if dest.channel == "email" and user.email_verified_at is None:
        user.email_verified_at = utcnow()


def _sign_up(
    dest, row, username, password, marketing_consent, ref_code, client
) -> tuple[AppError | None, OtpResult | None]:
    if _owner(dest) is not None:
        otp.consume(row)
        return Conflict(f"This {dest.field} is already registered: sign in instead"), None
    if not username:
        # Told only to the code's reader; the code stays open for the corrected request.
        return ValidationError.field("username", "Choose a username"), None
    if not otp.consume(row):
        return ValidationError.field("code", INVALID), None
    referrer = accounts.referrer_of(ref_code)
    now = utcnow()
    user = create_user(
        username=username,
        email=dest.value if dest.channel == "email" else _placeholder_email(dest),
        password=password or secrets.token_urlsafe(32),
        enforce_policy=False,  # checked above when given; a random one otherwise
        role_id=PLAYER,
        country=client.country,
        referred_by_id=referrer.id if referrer else None,
        agent_id=referrer.id if referrer and referrer.role_id == AGENT else None,
        marketing_consent=bool(marketing_consent),
        marketing_consent_at=now,
        registration_ip=client.ip,
        registration_device=client.device_fingerprint,
        has_password=bool(password),
        email_verified_at=now if dest.channel == "email" else None,
    )
    accounts.player_created(user.id, user.currency)
    if dest.channel == "sms":
        db.session.add(
            UserPhone(user_id=user.id, number=dest.value, is_primary=True, verified_at=now)
        )
        user.phone = dest.value
    audit.record(
        "user.otp_signup",
        actor=user,
        target_type="user",
        target_id=user.id,
        after={"channel": dest.channel, "password": bool(password)},
    )
    login = accounts.signed_in(user, dest.value, accounts.PLAYER_PORTAL, client, method="otp")
    return None, OtpResult(created=True, login=login)


def set_first_password(user: User, new_password: str) -> None:
    """An OTP-opened account adds a password (afterwards: the usual change-password)."""
    passwords.check_policy(new_password, field="new_password")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.has_password:
            raise Conflict("This account has a password: use PUT /api/user/password/change")
        user.password_hash = passwords.hash_password(new_password)
        user.has_password = True
        user.password_changed_at = utcnow()
        audit.record("user.password_set", actor=user, target_type="user", target_id=user.id)
