"""Payment records: lookups, the player's histories, the staff list, player notices."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from app.core import events
from app.core.db import page_of
from app.core.errors import (
    NotFound,
)
from app.core.extensions import db
from app.core.i18n import Msg, in_language, language_of_user
from app.core.money import format_minor
from app.identity.models import User
from app.payments.models import (
    PaymentTransaction,
)


def new_public_id() -> str:
    return f"txn_{secrets.token_hex(16)}"


def get_payment(public_id: str, *, user: User | None = None) -> PaymentTransaction:
    query = select(PaymentTransaction).where(PaymentTransaction.public_id == public_id)
    if user is not None:
        query = query.where(PaymentTransaction.user_id == user.id)
    txn = db.session.scalar(query)
    if txn is None:
        raise NotFound("Payment not found")
    return txn


def get_payment_by_id(payment_id: int) -> PaymentTransaction:
    txn = db.session.get(PaymentTransaction, payment_id)
    if txn is None:
        raise NotFound("Payment not found")
    return txn


def history_of(user: User, type_: str, page: int, limit: int):
    query = select(PaymentTransaction).where(
        PaymentTransaction.user_id == user.id, PaymentTransaction.type == type_
    )
    return page_of(query, PaymentTransaction.id.desc(), page=page, limit=limit)


def notify_player(user_id: int, kind: str, message: str | Msg, **data: Any) -> None:
    """Tell the player live, in their language (``app.core.i18n``)."""
    (message,) = in_language(language_of_user(user_id), message)
    events.publish(
        "notification", {"type": kind, "message": message, **data}, room=events.user_room(user_id)
    )


def mask_details(details: dict[str, Any] | None) -> dict[str, Any] | None:
    if not details:
        return details
    out = dict(details)
    if "iban" in out:
        value = str(out["iban"])
        out["iban"] = value[:4] + "*" * max(len(value) - 8, 0) + value[-4:]
    return out


def list_payments(
    type_: str,
    *,
    status: str | None = None,
    user_id: int | None = None,
    gateway_id: int | None = None,
    currency: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    page: int = 1,
    limit: int = 20,
) -> tuple[list[PaymentTransaction], int, list[dict[str, Any]]]:
    criteria = [PaymentTransaction.type == type_]
    if status:
        criteria.append(PaymentTransaction.status == status)
    if user_id:
        criteria.append(PaymentTransaction.user_id == user_id)
    if gateway_id:
        criteria.append(PaymentTransaction.gateway_id == gateway_id)
    if currency:
        criteria.append(PaymentTransaction.currency == currency.upper())
    if date_from:
        criteria.append(PaymentTransaction.created_at >= date_from)
    if date_to:
        criteria.append(PaymentTransaction.created_at < date_to)
    total = db.session.scalar(select(func.count(PaymentTransaction.id)).where(*criteria))
    rows = db.session.scalars(
        select(PaymentTransaction)
        .where(*criteria)
        .order_by(PaymentTransaction.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    ).all()
    summary_rows = db.session.execute(
        select(
            PaymentTransaction.status,
            PaymentTransaction.currency,
            func.count(PaymentTransaction.id),
            func.sum(PaymentTransaction.amount_minor),
            func.sum(PaymentTransaction.fee_minor),
        )
        .where(*criteria)
        .group_by(PaymentTransaction.status, PaymentTransaction.currency)
        .order_by(PaymentTransaction.status, PaymentTransaction.currency)
    ).all()
    summary = [
        {
            "status": s,
            "currency": c,
            "count": int(n),
            "amount": format_minor(int(total_amount or 0), c),
            "fees": format_minor(int(fees or 0), c),
        }
        for s, c, n, total_amount, fees in summary_rows
    ]
    return list(rows), int(total or 0), summary
