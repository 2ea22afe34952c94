"""Player and staff identity: registration, login, sessions, refresh rotation, passwords, 2FA.

Invariants:
* A password login opens a session (``TokenFamily``) with an absolute expiry; every access and
  refresh token carries its id (``fam``) and its issue time in microseconds (``iat_us``).
* A refresh token is spent by one conditional UPDATE (``used_at IS NULL``): two racing
  refreshes cannot both win. Presenting a spent token revokes its whole session, access tokens
  included (``app.identity.auth`` checks the family on every request).
* An unknown login, a wrong password and a locked staff account give the same answer
  (``BAD_CREDENTIALS``, 401) after the same amount of hashing work. Failed secrets are
  throttled per (login name + client address) with progressive delays
  (``app.identity.throttle``): a throttled attempt answers 429 with ``Retry-After`` and the
  same message and code, and no player can be locked out by someone else's guesses. Staff
  accounts also lock after ``LOGIN_MAX_FAILURES`` (``app.identity.lockout``, PCI DSS 8.3.4).
* Every attempt is written to ``login_history`` and the audit log in the same transaction as
  its effects; a refused attempt commits its record and then raises.
* Logout, password change and reset revoke sessions at once and publish ``session.logout``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import jwt as pyjwt
from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from sqlalchemy import distinct, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.core import audit, mail_templates, opsettings
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, lock_one, page_of, parse_row_id, rowcount
from app.core.errors import (
    AccessDenied,
    AppError,
    AuthenticationError,
    Conflict,
    NotFound,
    RateLimited,
    TokenExpired,
    ValidationError,
)
from app.core.events import publish, user_room
from app.core.extensions import db
from app.core.registry import Hooks
from app.identity import (
    captcha,
    lockout,
    otp,
    passwords,
    phones,
    recovery,
    throttle,
    totp,
    verification,
)
from app.identity.access import ROLES, role_id_from_name
from app.identity.auth import deny_jti, issued_at_us
from app.identity.models import (
    AGENT,
    PLAYER,
    STAFF_ROLES,
    LoginEvent,
    PasswordResetToken,
    RefreshToken,
    TokenFamily,
    User,
)
from app.identity.users import create_user

PLAYER_PORTAL, STAFF_PORTAL = "player", "staff"
#: Roles that may not use the API without a second factor: every staff role (issue 21).
TOTP_MANDATORY_ROLES = STAFF_ROLES
BAD_CREDENTIALS = "Invalid username/email or password"
#: A name under attack from many addresses (app.identity.throttle): same for every name.
CHALLENGE_REQUIRED = (
    "Too many failed sign-ins for this name: solve the captcha (GET /api/auth/captcha) and "
    "send captcha_id and captcha_text with your login"
)

#: Profile fields a player may change about themselves (platform guide 5.4.2 + integration guide).
PLAYER_EDITABLE = (
    "first_name",
    "last_name",
    "phone",
    "date_of_birth",
    "nationality",
    "country",
    "city",
    "address",
    "postal_code",
    "gender",
    "timezone",
    "language",
    "preferences",
    "marketing_consent",
)


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from (the blueprint reads it off the request)."""

    ip: str | None = None
    user_agent: str | None = None
    device_fingerprint: str | None = None
    country: str | None = None


@dataclass
class LoginResult:
    user: User
    token: dict[str, Any]
    previous_login_at: datetime | None
    previous_login_ip: str | None
    #: A staff member's first recovery codes, from the login that enrolled their TOTP (shown
    #: once, in that answer only).
    recovery_codes: list[str] | None = None


class LoginThrottled(AuthenticationError):
    """Too many failed attempts for this login name from this address: wait ``Retry-After``.
    Same code and message as a wrong password (nothing tells whether the account exists)."""

    status = 429
    message = BAD_CREDENTIALS


def _throttled(wait: int) -> LoginThrottled:
    return LoginThrottled(headers={"Retry-After": str(wait)}, retry_after=wait)


# --- sessions and tokens ------------------------------------------------------------------


def _now_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _issue(user: User, family: TokenFamily, parent_jti: str | None = None) -> dict[str, Any]:
    """A new access + refresh pair for ``family``; the refresh token is recorded unspent."""
    now = utcnow()
    claims = {"fam": family.id, "iat_us": _now_us(now), "portal": family.portal}
    access_ttl = int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"])
    access = create_access_token(identity=user, additional_claims=claims)
    # Rotation never extends a session past its absolute end.
    refresh_ttl = family.expires_at - now
    if refresh_ttl.total_seconds() < 1:
        raise AuthenticationError("The session has reached its maximum lifetime; log in again")
    refresh = create_refresh_token(
        identity=user, additional_claims=claims, expires_delta=refresh_ttl
    )
    jti = decode_token(refresh)["jti"]
    db.session.add(
        RefreshToken(
            jti=jti,
            family_id=family.id,
            user_id=user.id,
            issued_at=now,
            expires_at=family.expires_at,
            parent_jti=parent_jti,
        )
    )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": access_ttl,
        "role": user.role.as_json(),
    }


def _open_session(user: User, portal: str, client: ClientInfo) -> dict[str, Any]:
    now = utcnow()
    family = TokenFamily(
        id=str(uuid.uuid4()),
        user_id=user.id,
        portal=portal,
        created_at=now,
        expires_at=now + timedelta(seconds=int(current_app.config["JWT_REFRESH_TOKEN_EXPIRES"])),
        ip=client.ip,
        user_agent=(client.user_agent or "")[:500] or None,
        device_fingerprint=client.device_fingerprint,
    )
    db.session.add(family)
    db.session.flush()
    return _issue(user, family)


def revoke_sessions(
    user: User, reason: str, *, except_family: str | None = None, cut_off: bool = False
) -> int:
    """Revoke the user's open sessions (caller's transaction); returns how many.

    ``cut_off`` also kills every token issued until now, sessions or not (ban, reset).
    """
    now = utcnow()
    stmt = (
        update(TokenFamily)
        .where(TokenFamily.user_id == user.id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    if except_family:
        stmt = stmt.where(TokenFamily.id != except_family)
    count = rowcount(db.session.execute(stmt))
    if cut_off:
        user.tokens_valid_after = now
    return count


def _publish_logout(user_id: int, reason: str, **data: Any) -> None:
    publish("session.logout", {"reason": reason, **data}, room=user_room(user_id))


def _decode_refresh(raw: str) -> dict[str, Any]:
    try:
        payload = decode_token(raw)
    except pyjwt.ExpiredSignatureError:
        raise TokenExpired("Refresh token has expired") from None
    except pyjwt.PyJWTError:
        raise AuthenticationError("Invalid refresh token") from None
    if payload.get("type") != "refresh":
        raise AuthenticationError("A refresh token is required")
    return payload


def refresh(raw_token: str, *, portal: str = PLAYER_PORTAL) -> dict[str, Any]:
    """Rotate: spend ``raw_token`` and answer a new pair in the same session."""
    payload = _decode_refresh(raw_token)
    failure: AppError | None = None
    with atomic():
        row = db.session.get(RefreshToken, payload["jti"])
        family = db.session.get(TokenFamily, row.family_id) if row else None
        user = db.session.get(User, row.user_id) if row else None
        if row is None or family is None or user is None:
            failure = AuthenticationError("Invalid refresh token")
        elif family.portal != portal:
            failure = AuthenticationError("This refresh token belongs to another portal")
        elif family.revoked_at is not None or (
            user.tokens_valid_after and issued_at_us(payload) < _now_us(user.tokens_valid_after)
        ):
            failure = AuthenticationError("This session has been revoked")
        elif blocked := _status_problem(user):
            failure = blocked
        elif (
            portal == STAFF_PORTAL
            and user.role_id in TOTP_MANDATORY_ROLES
            and not user.totp_enabled
        ):
            # A staff session opened before TOTP was mandatory for the role: sign in again
            # (and enrol). Nothing is spent, so nothing is revoked.
            failure = AuthenticationError(
                "Two-factor authentication is mandatory for your role: sign in again",
                requires_2fa=True,
            )
        elif row.used_at is not None:
            # Presented again after it was spent: stolen or replayed. The whole session dies.
            revoked = rowcount(
                db.session.execute(
                    update(TokenFamily)
                    .where(TokenFamily.id == family.id, TokenFamily.revoked_at.is_(None))
                    .values(revoked_at=utcnow(), revoked_reason="refresh_reuse")
                )
            )
            if revoked:
                audit.record(
                    "auth.refresh_reuse",
                    target_type="user",
                    target_id=user.id,
                    after={"session": family.id, "jti": row.jti},
                )
                _publish_logout(user.id, "refresh_reuse", session=family.id)
            failure = AuthenticationError(
                "This refresh token was already used; the session has been revoked"
            )
        else:
            spent = rowcount(
                db.session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.jti == row.jti, RefreshToken.used_at.is_(None))
                    .values(used_at=utcnow())
                )
            )
            if spent != 1:
                # Unused when we read it, spent by the time we wrote: a simultaneous refresh
                # of the same token (two tabs, a retry) won. Not a replay, so the session
                # stays; this request just loses.
                failure = Conflict("This refresh token is being used by another request")
            else:
                token = _issue(user, family, parent_jti=row.jti)
    if failure is not None:
        raise failure
    return token


def logout(user: User, payload: dict[str, Any]) -> None:
    """End the session the access token belongs to: access denied at once, refresh dead."""
    with atomic():
        family_id = payload.get("fam")
        if not family_id:
            # Outside a login session only the deny-list can revoke it (app.identity.auth).
            deny_jti(payload["jti"], payload["exp"])
        else:
            db.session.execute(
                update(TokenFamily)
                .where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason="logout")
            )
        audit.record("auth.logout", actor=user, target_type="user", target_id=user.id)
        _publish_logout(user.id, "logout", session=family_id)


# --- login --------------------------------------------------------------------------------


def _status_problem(user: User) -> AppError | None:
    now = utcnow()
    if user.status == "banned":
        return AccessDenied(
            "This account is banned" + (f": {user.status_reason}" if user.status_reason else ""),
            reason=user.status_reason,
        )
    if user.status == "suspended":
        if user.status_until is not None and user.status_until <= now:
            user.status, user.status_reason, user.status_until = "active", None, None
            return None
        until = f" until {user.status_until.isoformat()}" if user.status_until else ""
        return AccessDenied(
            f"This account is suspended{until}"
            + (f": {user.status_reason}" if user.status_reason else ""),
            reason=user.status_reason,
            until=user.status_until.isoformat() if user.status_until else None,
        )
    if user.status in {"closed", "locked"}:
        return AccessDenied(f"This account is {user.status}", reason=user.status_reason)
    return None


def _history(
    user: User | None,
    login: str,
    portal: str,
    client: ClientInfo,
    *,
    success: bool,
    reason: str | None = None,
) -> None:
    db.session.add(
        LoginEvent(
            user_id=user.id if user else None,
            login=login[:255],
            portal=portal,
            success=success,
            reason=reason,
            ip=client.ip,
            user_agent=(client.user_agent or "")[:500] or None,
            device_fingerprint=(client.device_fingerprint or "")[:128] or None,
            country=client.country,
        )
    )


def _failed(user: User | None, login: str, portal: str, client: ClientInfo, reason: str):
    _history(user, login, portal, client, success=False, reason=reason)
    audit.record(
        "auth.login_failed",
        target_type="user",
        target_id=user.id if user else None,
        after={"login": login[:100], "portal": portal, "reason": reason},
    )


def _wrong_secret(user: User | None, key: str, name_key: str) -> None:
    """Count a failed secret: the throttle (per address and per name across addresses) for
    everyone, the lockout for staff accounts."""
    if user is not None and user.is_staff:
        lockout.count_failure(user)
    throttle.failed(key)
    throttle.name_failed(name_key)


def _sms_second_factor(
    user: User, auth_code: str | None, key: str, client: ClientInfo, name_key: str
) -> tuple[AppError | None, str, otp.Outgoing | None]:
    """A player's SMS step: no code → text one to the primary verified phone; a code → spend
    it (a wrong one counts on the code and on the throttle)."""
    phone = phones.primary_verified(user.id)
    if phone is None:
        # Cannot happen through the API (the primary of an SMS-2FA account cannot be
        # deleted); refuse rather than let the second factor silently vanish.
        return (
            AccessDenied("No verified phone for SMS two-factor: contact support"),
            "sms_no_phone",
            None,
        )
    hint = phone.number[:4] + "*" * max(0, len(phone.number) - 7) + phone.number[-3:]
    if not auth_code:
        try:
            outgoing = otp.issue(
                "login_2fa",
                "sms",
                phone.number,
                template="login_code",
                user_id=user.id,
                ip=client.ip,
            )
        except RateLimited as exc:
            return exc, "sms_rate_limited", None
        return (
            AuthenticationError(
                "A code has been texted to your phone",
                requires_2fa=True,
                method="sms",
                phone=hint,
            ),
            "sms_sent",
            outgoing,
        )
    if otp.spend("login_2fa", phone.number, auth_code, user_id=user.id) is None:
        _wrong_secret(user, key, name_key)
        return (
            AuthenticationError(
                "Invalid, used or expired SMS code", requires_2fa=True, method="sms", phone=hint
            ),
            "sms_invalid",
            None,
        )
    return None, "", None


def _second_factor(
    user: User, portal: str, auth_code: str | None, key: str, name_key: str
) -> tuple[AppError | None, str]:
    """Check the TOTP step of a login; returns (refusal or None, history reason). A staff
    member may give one of their recovery codes instead of a TOTP code."""
    if user.totp_enabled:
        if not auth_code:
            return (
                AuthenticationError("A two-factor code is required", requires_2fa=True),
                "totp_required",
            )
        if not totp.verify_code(user, auth_code) and not (
            portal == STAFF_PORTAL and user.is_staff and recovery.use(user, auth_code)
        ):
            _wrong_secret(user, key, name_key)
            return AuthenticationError(
                "Invalid or already used two-factor code", requires_2fa=True
            ), "totp_invalid"
        return None, ""
    if portal == STAFF_PORTAL and user.role_id in TOTP_MANDATORY_ROLES:
        secret = totp.secret_of(user)
        if secret and auth_code and totp.verify_code(user, auth_code, secret=secret):
            user.totp_enabled = True
            audit.record("auth.2fa_enrolled", actor=user, target_type="user", target_id=user.id)
            return None, "totp_enrolled"
        if not secret:
            secret = totp.new_secret()
            totp.store_secret(user, secret)
        uri = totp.provisioning_uri(user, secret)
        return (
            AccessDenied(
                "Two-factor authentication is mandatory for your role: add this secret to an "
                "authenticator app and sign in again with auth_code",
                enrolment_required=True,
                qr_code=totp.qr_svg(uri),
                auth_secret=secret,
                otpauth_uri=uri,
            ),
            "totp_enrolment",
        )
    return None, ""


def login(
    login_name: str,
    password: str,
    *,
    auth_code: str | None = None,
    portal: str = PLAYER_PORTAL,
    client: ClientInfo | None = None,
    captcha_id: str | None = None,
    captcha_text: str | None = None,
) -> LoginResult:
    client = client or ClientInfo()
    value = (login_name or "").strip().lower()
    refusal: AppError | None = None
    codes: list[str] | None = None
    outgoing: otp.Outgoing | None = None
    key = throttle.key_of(value, client.ip)
    name_key = throttle.name_key(value)
    with atomic():
        wait = throttle.retry_after(key)
        # A name many addresses failed with: no password is checked without a solved captcha
        # (known and unknown names alike; the captcha is spent only when it is needed).
        challenged = throttle.challenge_required(name_key) and not captcha.check(
            captcha_id, captcha_text
        )
        # The row lock serializes attempts on one account, so failures are counted exactly.
        user = (
            lock_one(User, or_(func.lower(User.username) == value, func.lower(User.email) == value))
            if value
            else None
        )
        now = utcnow()
        if wait:
            # No password is checked while this name waits at this address.
            _failed(user, value, portal, client, "throttled")
            refusal = _throttled(wait)
        elif challenged:
            _failed(user, value, portal, client, "challenge_required")
            refusal = AuthenticationError(CHALLENGE_REQUIRED, captcha_required=True)
        elif user is None:
            passwords.burn_time(password)
            _failed(None, value, portal, client, "bad_credentials")
            _wrong_secret(None, key, name_key)
            refusal = AuthenticationError(BAD_CREDENTIALS)
        elif user.is_staff and lockout.is_locked(user, now):
            passwords.burn_time(password)
            _failed(user, value, portal, client, "locked")
            throttle.failed(key)
            throttle.name_failed(name_key)
            refusal = AuthenticationError(BAD_CREDENTIALS)
        elif not passwords.verify_password(user.password_hash, password):
            _failed(user, value, portal, client, "bad_credentials")
            _wrong_secret(user, key, name_key)
            refusal = AuthenticationError(BAD_CREDENTIALS)
        elif problem := _status_problem(user):
            _failed(user, value, portal, client, user.status)
            refusal = problem
        elif portal == PLAYER_PORTAL and user.is_staff:
            _failed(user, value, portal, client, "wrong_portal")
            refusal = AccessDenied("Staff accounts sign in at /api/admin/auth/login")
        elif portal == STAFF_PORTAL and not user.is_staff:
            _failed(user, value, portal, client, "wrong_portal")
            refusal = AccessDenied("This login is for staff accounts")
        elif portal == PLAYER_PORTAL and user.sms_2fa_enabled and not user.totp_enabled:
            refusal, reason, outgoing = _sms_second_factor(user, auth_code, key, client, name_key)
            if refusal is not None:
                _failed(user, value, portal, client, reason)
        else:
            refusal, reason = _second_factor(user, portal, auth_code, key, name_key)
            if refusal is not None:
                _failed(user, value, portal, client, reason)
            elif reason == "totp_enrolled":
                codes = recovery.generate(user)
        if refusal is None:
            assert user is not None
            lockout.clear(user)
            throttle.succeeded(key)
            if passwords.needs_rehash(user.password_hash):
                user.password_hash = passwords.hash_password(password)
            result = signed_in(user, value, portal, client)
            result.recovery_codes = codes
    # The texted code leaves only once its row is committed (503 if the provider fails).
    otp.deliver(outgoing)
    if refusal is not None:
        raise refusal
    return result


def signed_in(
    user: User, login_name: str, portal: str, client: ClientInfo, *, method: str = "password"
) -> LoginResult:
    """The success half of a sign-in (caller's transaction): session, history, audit."""
    previous_at, previous_ip = user.last_login_at, user.last_login_ip
    user.last_login_at, user.last_login_ip = utcnow(), client.ip
    token = _open_session(user, portal, client)
    _history(user, login_name, portal, client, success=True)
    audit.record(
        "auth.login",
        actor=user,
        target_type="user",
        target_id=user.id,
        after={"portal": portal, "device": client.device_fingerprint, "method": method},
    )
    return LoginResult(user, token, previous_at, previous_ip)


def status_problem(user: User) -> AppError | None:
    """Why this account may not sign in (banned, suspended, closed, locked), or ``None``."""
    return _status_problem(user)


def failed_sign_in(user: User | None, login_name: str, client: ClientInfo, reason: str) -> None:
    """Record a refused player sign-in (history + audit), caller's transaction."""
    _failed(user, login_name, PLAYER_PORTAL, client, reason)


def username_available(username: str) -> bool:
    """Whether no account has this username (case-insensitively)."""
    name = (username or "").strip().lower()
    return bool(name) and (
        db.session.scalar(select(User.id).where(func.lower(User.username) == name)) is None
    )


def referrer_of(ref_code: str | None) -> User | None:
    """The account behind a referral code (400 naming ``ref_code`` when unknown)."""
    if not ref_code:
        return None
    referrer = db.session.scalar(
        select(User).where(func.upper(User.referral_code) == ref_code.strip().upper())
    )
    if referrer is None:
        raise ValidationError.field("ref_code", "Unknown referral code")
    return referrer


# --- registration -------------------------------------------------------------------------


@dataclass
class Registration:
    user: User
    auth_secret: str
    qr_code: str


#: Run inside the registration transaction once the player row exists:
#: ``hook(user_id, currency)`` (the wallet domain opens the player's wallet).
player_created: Hooks[[int, str]] = Hooks()


def register(
    *,
    username: str,
    email: str,
    password: str,
    captcha_id: str | None = None,
    captcha_text: str | None = None,
    ref_code: str | None = None,
    marketing_consent: bool = False,
    client: ClientInfo | None = None,
) -> Registration:
    if opsettings.value("signup_mode") == "otp":
        raise AccessDenied(
            "Accounts are opened with a one-time code: POST /api/auth/otp/request",
            signup_mode="otp",
        )
    if current_app.config["CAPTCHA_REQUIRED"] and not captcha.check(captcha_id, captcha_text):
        raise ValidationError.field(
            "captcha_text", "The captcha answer is wrong or expired; request a new captcha"
        )
    passwords.check_policy(password)
    try:
        with atomic():
            referrer = referrer_of(ref_code)
            user = create_user(
                username=username,
                email=email,
                password=password,
                role_id=PLAYER,
                country=(client.country if client else None),
                referred_by_id=referrer.id if referrer else None,
                agent_id=referrer.id if referrer and referrer.role_id == AGENT else None,
                marketing_consent=bool(marketing_consent),
                marketing_consent_at=utcnow(),
                registration_ip=(client.ip if client else None),
                registration_device=(client.device_fingerprint if client else None),
            )
            # Every player has a wallet in their currency from the first second (app.hooks).
            player_created(user.id, user.currency)
            # The verification mail (link + code) leaves with the committed registration.
            verification.issue(user)
            secret = totp.new_secret()
            totp.store_secret(user, secret)
            qr = totp.qr_svg(totp.provisioning_uri(user, secret))
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name (unique index).
        raise Conflict("Username or e-mail is already registered") from None
    return Registration(user=user, auth_secret=secret, qr_code=qr)


# --- passwords ----------------------------------------------------------------------------


def change_password(
    user: User,
    *,
    current_password: str,
    new_password: str,
    confirm_password: str | None = None,
    current_session: str | None = None,
) -> int:
    """Change the password; every other session dies. Returns how many were revoked."""
    if not passwords.verify_password(user.password_hash, current_password):
        raise ValidationError.field("current_password", "The current password is incorrect")
    if confirm_password is not None and confirm_password != new_password:
        raise ValidationError.field("confirm_password", "Passwords do not match")
    passwords.check_policy(new_password, field="new_password")
    if passwords.verify_password(user.password_hash, new_password):
        raise ValidationError.field("new_password", "The new password must differ from the old")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        user.password_hash = passwords.hash_password(new_password)
        user.password_changed_at = utcnow()
        revoked = revoke_sessions(
            user,
            "password_change",
            except_family=current_session,
            cut_off=current_session is None,
        )
        audit.record("user.password_change", actor=user, target_type="user", target_id=user.id)
        _publish_logout(user.id, "password_changed", except_session=current_session)
    return revoked


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_reset_token(user: User, *, origin: str = PLAYER_PORTAL) -> None:
    """Create a one-time reset token and queue the e-mail carrying it (caller's transaction)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    ttl = int(current_app.config["PASSWORD_RESET_TTL"])
    db.session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=_hash_token(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            origin=origin,
        )
    )
    link = f"{current_app.config['PUBLIC_URL']}/reset-password?token={token}"
    mail_templates.queue_templated(
        "password_reset",
        to=user.email,
        user_id=user.id,
        language=user.language,
        context={"username": user.username, "minutes": ttl // 60, "link": link, "token": token},
    )


def forgot_password(email: str) -> None:
    """Mail a reset link if the address belongs to an open account; silent otherwise."""
    value = (email or "").strip().lower()
    with atomic():
        user = db.session.scalar(select(User).where(func.lower(User.email) == value))
        if user is not None and user.status not in {"banned", "closed"}:
            issue_reset_token(user)
            audit.record("user.password_reset_requested", target_type="user", target_id=user.id)


def reset_password(token: str, new_password: str, confirm_password: str | None = None) -> None:
    if confirm_password is not None and confirm_password != new_password:
        raise ValidationError.field("confirm_password", "Passwords do not match")
    passwords.check_policy(new_password, field="new_password")
    digest = _hash_token(token or "")
    with atomic():
        now = utcnow()
        spent = rowcount(
            db.session.execute(
                update(PasswordResetToken)
                .where(
                    PasswordResetToken.token_hash == digest,
                    PasswordResetToken.used_at.is_(None),
                    PasswordResetToken.expires_at > now,
                )
                .values(used_at=now)
            )
        )
        if spent != 1:
            raise ValidationError.field("token", "This reset link is invalid, used or expired")
        user_id = db.session.scalar(
            select(PasswordResetToken.user_id).where(PasswordResetToken.token_hash == digest)
        )
        user = lock_existing(User, User.id == user_id)
        # Any other outstanding link for this account dies with this one.
        db.session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now)
        )
        user.password_hash = passwords.hash_password(new_password)
        user.password_changed_at = now
        user.failed_logins, user.failed_logins_since, user.locked_until = 0, None, None
        revoke_sessions(user, "password_reset", cut_off=True)
        audit.record("user.password_reset", target_type="user", target_id=user.id)
        _publish_logout(user.id, "password_reset")


# --- two-factor ---------------------------------------------------------------------------


def two_factor_status(user: User) -> dict[str, Any]:
    mandatory = user.role_id in TOTP_MANDATORY_ROLES
    return {
        "is_enabled": user.totp_enabled,
        "has_secret": user.totp_secret_enc is not None,
        "has_secret_setup": user.totp_secret_enc is not None,
        "mandatory": mandatory,
        "can_skip": not mandatory and not user.totp_enabled and not user.sms_2fa_enabled,
        "sms_enabled": user.sms_2fa_enabled,
        "method": "totp" if user.totp_enabled else ("sms" if user.sms_2fa_enabled else None),
        "skipped": user.totp_skipped_at is not None,
    }


def sms_two_factor_enable(user: User, password: str) -> None:
    """Players with a verified primary phone: texted codes become the second factor."""
    if user.is_staff:
        raise AccessDenied("Staff accounts use an authenticator app (TOTP)")
    if not passwords.verify_password(user.password_hash, password or ""):
        raise ValidationError.field("password", "The password is incorrect")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.sms_2fa_enabled:
            raise Conflict("SMS two-factor is already enabled")
        if user.totp_enabled:
            raise Conflict("An authenticator app is your second factor; disable it first")
        phone = phones.primary_verified(user.id)
        if phone is None:
            raise Conflict("Verify a phone number (it becomes primary) before enabling SMS codes")
        user.sms_2fa_enabled = True
        user.totp_skipped_at = None
        audit.record(
            "user.2fa_sms_enable",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"phone": phone.number},
        )


def sms_two_factor_disable(user: User, password: str) -> None:
    if not passwords.verify_password(user.password_hash, password or ""):
        raise ValidationError.field("password", "The password is incorrect")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if not user.sms_2fa_enabled:
            raise Conflict("SMS two-factor is not enabled")
        user.sms_2fa_enabled = False
        audit.record("user.2fa_sms_disable", actor=user, target_type="user", target_id=user.id)


def two_factor_setup(user: User) -> dict[str, str]:
    """A fresh pending secret (2FA not yet enabled) with its QR code."""
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already enabled; disable it first")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        secret = totp.new_secret()
        totp.store_secret(user, secret)
        audit.record("user.2fa_setup", actor=user, target_type="user", target_id=user.id)
    return {"auth_secret": secret, "qr_code": totp.qr_svg(totp.provisioning_uri(user, secret))}


def two_factor_enable(user: User, auth_code: str) -> None:
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.totp_enabled:
            raise Conflict("Two-factor authentication is already enabled")
        if user.totp_secret_enc is None:
            raise Conflict("No secret set up yet: call POST /api/user/2fa/setup first")
        if not totp.verify_code(user, auth_code):
            raise ValidationError.field("auth_code", "Invalid or already used code")
        user.totp_enabled = True
        user.totp_skipped_at = None
        audit.record("user.2fa_enable", actor=user, target_type="user", target_id=user.id)


def two_factor_disable(user: User, *, auth_code: str | None, password: str | None) -> None:
    if user.role_id in TOTP_MANDATORY_ROLES:
        raise AccessDenied("Two-factor authentication is mandatory for your role")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if not user.totp_enabled:
            raise Conflict("Two-factor authentication is not enabled")
        if auth_code:
            if not totp.verify_code(user, auth_code):
                raise ValidationError.field("auth_code", "Invalid or already used code")
        elif not password or not passwords.verify_password(user.password_hash, password):
            raise ValidationError.field("password", "A valid code or the password is required")
        user.totp_enabled = False
        user.totp_secret_enc = None
        user.totp_last_step = None
        audit.record("user.2fa_disable", actor=user, target_type="user", target_id=user.id)


def two_factor_skip(user: User, password: str) -> None:
    if user.role_id in TOTP_MANDATORY_ROLES:
        raise AccessDenied("Two-factor authentication is mandatory for your role")
    if not passwords.verify_password(user.password_hash, password or ""):
        raise ValidationError.field("password", "The password is incorrect")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.totp_enabled:
            raise Conflict("Two-factor authentication is already enabled")
        user.totp_skipped_at = utcnow()
        audit.record("user.2fa_skip", actor=user, target_type="user", target_id=user.id)


# --- profile and activity -----------------------------------------------------------------


def _adult(dob: str) -> None:
    try:
        born = date.fromisoformat(dob)
    except ValueError:
        raise ValidationError.field("date_of_birth", "Use the format YYYY-MM-DD") from None
    today = utcnow().date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < 18:
        raise ValidationError.field("date_of_birth", "Players must be at least 18 years old")
    if age > 120:
        raise ValidationError.field("date_of_birth", "Not a plausible date of birth")


def update_profile(user: User, changes: dict[str, Any]) -> User:
    """Apply the player-editable fields in ``changes`` (anything else is refused)."""
    for name in changes:
        if name not in PLAYER_EDITABLE:
            raise ValidationError.field(name, f"{name} cannot be changed here")
    if changes.get("date_of_birth"):
        _adult(changes["date_of_birth"])
    changes = dict(changes)
    prefs = changes.get("preferences")
    if isinstance(prefs, dict) and "marketing_consent" in prefs:
        # Older clients kept the opt-in in preferences: it now lives in its own column only.
        prefs = dict(prefs)
        legacy = prefs.pop("marketing_consent")
        changes["preferences"] = prefs
        if "marketing_consent" not in changes:
            changes["marketing_consent"] = legacy is True
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if "marketing_consent" in changes:
            changes["marketing_consent"] = bool(changes["marketing_consent"])
            if changes["marketing_consent"] == user.marketing_consent:
                del changes["marketing_consent"]  # unchanged: keep the time it was given
        before = {name: getattr(user, name) for name in changes}
        for name, value in changes.items():
            setattr(user, name, value)
        if "marketing_consent" in changes:
            user.marketing_consent_at = utcnow()
        audit.record(
            "user.profile_update",
            actor=user,
            target_type="user",
            target_id=user.id,
            before=before,
            after=changes,
        )
    return user


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def login_history(user_id: int, *, page: int, limit: int) -> tuple[list[LoginEvent], int]:
    query = select(LoginEvent).where(LoginEvent.user_id == user_id)
    return page_of(
        query, LoginEvent.created_at.desc(), LoginEvent.id.desc(), page=page, limit=limit
    )


def active_sessions(user_id: int) -> list[TokenFamily]:
    return list(
        db.session.scalars(
            select(TokenFamily)
            .where(
                TokenFamily.user_id == user_id,
                TokenFamily.revoked_at.is_(None),
                TokenFamily.expires_at > utcnow(),
            )
            .order_by(TokenFamily.created_at.desc())
        )
    )


def activity_summary(user: User) -> dict[str, Any]:
    ok = select(LoginEvent).where(LoginEvent.user_id == user.id, LoginEvent.success.is_(True))
    sub = ok.subquery()
    logins = db.session.scalar(select(func.count()).select_from(sub)) or 0
    failed = (
        db.session.scalar(
            select(func.count()).where(LoginEvent.user_id == user.id, LoginEvent.success.is_(False))
        )
        or 0
    )
    ips = db.session.scalar(select(func.count(distinct(sub.c.ip)))) or 0
    devices = db.session.scalar(select(func.count(distinct(sub.c.device_fingerprint)))) or 0
    days = {row.created_at.date() for row in db.session.scalars(ok)}
    last = db.session.scalar(select(func.max(sub.c.created_at)))
    return {
        "user_id": user.id,
        "username": user.username,
        "member_since": user.created_at,
        "login_count": logins,
        "failed_login_count": failed,
        "active_days": len(days),
        "unique_ips": ips,
        "unique_devices": devices,
        "last_login": last,
        "active_sessions": len(active_sessions(user.id)),
        "two_factor_enabled": user.totp_enabled,
    }


def parse_role(value: Any) -> int:
    """A role given by id or name."""
    role_id = parse_row_id(value)
    if role_id is not None:
        if role_id not in ROLES:
            raise ValidationError.field("role", f"Unknown role {value}")
        return role_id
    try:
        return role_id_from_name(str(value))
    except ValueError as exc:
        raise ValidationError.field("role", str(exc)) from None


def now() -> datetime:
    return utcnow()


# --- sign-in through an outside identity (app.identity.external) ---------------------------


def create_external_player(
    *, username: str, email: str, password_hash: str, email_verified: bool
) -> User:
    """A player created by an OpenID Connect or Telegram sign-in (caller's transaction): a
    wallet like every player, the verification mail unless the issuer verified the e-mail."""
    user = create_user(
        username=username,
        email=email,
        password=secrets.token_urlsafe(48),
        role_id=PLAYER,
        enforce_policy=False,
        marketing_consent=False,
        marketing_consent_at=utcnow(),
    )
    user.password_hash = password_hash
    player_created(user.id, user.currency)
    if email_verified:
        user.email_verified_at = utcnow()
    else:
        verification.issue(user)
    return user


def external_login(
    user_id: int,
    provider: str,
    *,
    auth_code: str | None = None,
    client: ClientInfo | None = None,
    on_refusal: Callable[[], None] | None = None,
) -> LoginResult:
    """Open a session for a player an outside identity vouched for: the account's status and
    second factor are checked as at a password login (``on_refusal`` runs inside the same
    transaction when it is refused, e.g. to make a handoff code usable again)."""
    client = client or ClientInfo()
    refusal: AppError | None = None
    outgoing: otp.Outgoing | None = None
    with atomic():
        user = lock_existing(User, User.id == user_id)
        label = f"{provider}:{user.username}"
        key = throttle.key_of(label, client.ip)
        if wait := throttle.retry_after(key):
            refusal = _throttled(wait)
            _failed(user, label, PLAYER_PORTAL, client, "throttled")
        elif problem := _status_problem(user):
            refusal = problem
            _failed(user, label, PLAYER_PORTAL, client, user.status)
        elif user.is_staff:
            refusal = AccessDenied("Staff accounts sign in at /api/admin/auth/login")
            _failed(user, label, PLAYER_PORTAL, client, "wrong_portal")
        elif user.sms_2fa_enabled and not user.totp_enabled:
            refusal, reason, outgoing = _sms_second_factor(
                user, auth_code, key, client, throttle.name_key(label)
            )
            if refusal is not None:
                _failed(user, label, PLAYER_PORTAL, client, reason)
        else:
            refusal, reason = _second_factor(
                user, PLAYER_PORTAL, auth_code, key, throttle.name_key(label)
            )
            if refusal is not None:
                _failed(user, label, PLAYER_PORTAL, client, reason)
        if refusal is not None:
            if on_refusal is not None:
                on_refusal()
        else:
            throttle.succeeded(key)
            result = signed_in(user, label, PLAYER_PORTAL, client, method=provider)
    otp.deliver(outgoing)
    if refusal is not None:
        raise refusal
    return result
