"""Who is connecting: an access JWT (``auth: {token}`` or ``?token=``) or a staff console session.

The checks are the API's (``app.identity.auth``): signature, ``type=access``, expiry, deny-list and
``tokens_valid_after``, account status. A refusal carries the DESIGN.md error payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
from flask import request
from flask_jwt_extended import decode_token
from socketio.exceptions import ConnectionRefusedError as SocketRefused

from app.core.extensions import db
from app.identity.auth import _is_revoked
from app.identity.models import User

#: Accounts in these states have no live session (a suspension pushes ``session.logout``).
CLOSED_STATUSES = frozenset({"suspended", "banned", "closed"})


def error_payload(code: str, message: str) -> dict[str, Any]:
    """DESIGN.md: ``{"success": false, "event": "error", "message": ...}`` (+ a machine code)."""
    return {"success": False, "event": "error", "code": code, "message": message}


class Refused(SocketRefused):
    """Refuses the connection; the CONNECT_ERROR packet carries the error payload.

    Socket.IO clients read ``message`` (and JS clients ``data``) from that packet, so both
    hold the payload.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error_args = {**error_payload(code, message), "data": error_payload(code, message)}


@dataclass(slots=True)
class Principal:
    user_id: int
    is_staff: bool
    #: ``jwt`` or ``console``
    via: str
    exp: float | None = None
    jti: str | None = None
    iat: int | None = None


def _token_from(auth: Any) -> str | None:
    if isinstance(auth, dict) and auth.get("token"):
        token = auth["token"]
    else:
        token = request.args.get("token")
    if not token:
        return None
    if not isinstance(token, str) or len(token) > 4096:
        raise Refused("invalid_payload", "Malformed token")
    return token.removeprefix("Bearer ").strip()


def principal_from_token(token: str) -> Principal:
    """Verify an access token the way the JSON API does; raise ``Refused`` otherwise."""
    try:
        payload = decode_token(token)
    except pyjwt.ExpiredSignatureError:
        raise Refused("token_expired", "Token has expired") from None
    except Exception:  # any decode failure (signature, format, claims) is the same refusal
        raise Refused("unauthorized", "Invalid token") from None
    if payload.get("type") != "access":
        raise Refused("unauthorized", "An access token is required")
    if _is_revoked(payload):
        raise Refused("unauthorized", "Token has been revoked")
    user = db.session.get(User, int(payload["sub"]))
    if user is None or user.status in CLOSED_STATUSES:
        raise Refused("unauthorized", "This account cannot connect")
    return Principal(
        user_id=user.id,
        is_staff=user.is_staff,
        via="jwt",
        exp=float(payload["exp"]) if payload.get("exp") else None,
        jti=payload.get("jti"),
        iat=payload.get("iat"),
    )


def authenticate(auth: Any) -> Principal:
    token = _token_from(auth)
    if token is not None:
        return principal_from_token(token)
    # Staff pages open the socket with their console cookie; the Flask-Login user loader only
    # returns active staff.
    from flask_login import current_user

    if current_user and current_user.is_authenticated and current_user.is_staff:
        return Principal(user_id=current_user.id, is_staff=True, via="console")
    raise Refused("unauthorized", "Authentication required")
