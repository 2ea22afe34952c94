"""GDPR rights of a player: the data export (Art. 15/20) and erasure (Art. 17).

Invariants:
* The export walks the table metadata: every table with a foreign key to ``users`` is either
  in ``EXPORTED`` (which columns name the player, which columns are withheld: secrets, file
  locations) or in ``EXCLUDED`` with the reason it is not handed out.
  ``tests/identity/test_gdpr.py`` fails on a table that is in neither, so a new table that
  references players cannot be forgotten. Identity imports no higher domain: the walk only
  reads ``db.metadata`` (``app.models`` registered every table before the first request).
* Erasure is a request (``erasure_requests``) a staff member approves or rejects. Approval
  pseudonymises the player's personal fields, closes the account, ends every session and
  keeps what the law requires (``RETAINED``); it is refused while an ``erasure_checks`` hook
  refuses (positive balance, pending withdrawal: ``app.hooks``), audited, and idempotent (a
  second approval, or a request of an erased player, changes nothing).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, or_, select, update

from app.core import audit
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, lock_one, page_of
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.events import publish, user_room
from app.core.extensions import db
from app.core.registry import Hooks
from app.identity import avatars, passwords
from app.identity.models import (
    PLAYER,
    EmailVerification,
    ErasureRequest,
    IdentityLink,
    LoginEvent,
    OneTimeCode,
    TokenFamily,
    User,
    UserAddress,
    UserPhone,
)

FORMAT = "jackpotx.gdpr-export/1"


@dataclass(frozen=True)
class Export:
    """A table handed out: rows where any of ``by`` equals the player's id, minus ``omit``."""

    by: tuple[str, ...] = ("user_id",)
    omit: tuple[str, ...] = ()


#: Every table that references ``users`` and is part of the export.
EXPORTED: dict[str, Export] = {
    "users": Export(by=("id",), omit=("password_hash", "totp_secret_enc", "totp_last_step")),
    # identity
    "login_history": Export(),
    "token_families": Export(),
    "email_verifications": Export(omit=("token_hash", "code_hash")),
    "user_phones": Export(),
    "user_addresses": Export(),
    "one_time_codes": Export(omit=("salt", "code_hash")),
    "password_reset_tokens": Export(omit=("token_hash",)),
    "erasure_requests": Export(),
    "data_export_archives": Export(omit=("storage_name",)),
    "player_notes": Export(),
    "identity_links": Export(),
    # wallet and payments
    "wallets": Export(),
    "ledger_transactions": Export(omit=("mac",)),
    "payment_transactions": Export(),
    # play
    "game_sessions": Export(omit=("token",)),
    "game_rounds": Export(),
    "provider_transactions": Export(),
    "game_favorites": Export(),
    # compliance: KYC metadata (never the document bytes nor where they are stored), RG
    "kyc_submissions": Export(),
    "kyc_documents": Export(omit=("storage_name",)),
    "rg_limits": Export(),
    "rg_exclusions": Export(),
    "rg_sessions": Export(),
    "rg_settings": Export(),
    "reality_check_settings": Export(),
    # bonus, loyalty, prizes
    "player_bonuses": Export(),
    "free_spin_grants": Export(),
    "free_spin_rounds": Export(),
    "loyalty_accounts": Export(),
    "loyalty_events": Export(),
    "jackpot_contributions": Export(),
    "jackpot_wins": Export(by=("user_id",)),
    "lottery_tickets": Export(),
    "lottery_draws": Export(by=("winner_user_id",), omit=("server_seed",)),
    "tournament_participants": Export(),
    "tournament_score_events": Export(),
    # messaging
    "notifications": Export(),
    "notification_preferences": Export(),
    "support_tickets": Export(),
    "support_messages": Export(by=("author_id",)),
    # affiliates (the player as a referred player or as an agent)
    "affiliate_applications": Export(),
    "commission_plans": Export(by=("agent_id",)),
    "commission_statements": Export(by=("agent_id",)),
    "commission_cpa": Export(by=("player_id", "agent_id")),
}

#: Tables that reference ``users`` but are not exported, and why.
EXCLUDED: dict[str, str] = {
    "risk_flags": "AML suspicion records: disclosing them would tip the player off (AMLD art. 39)",
    "refresh_tokens": "session secrets; the sessions themselves are exported as token_families",
    "external_auth_flows": "sign-in secrets in progress (digests), expired within minutes",
    "idempotency_keys": "a short-lived replay cache of requests whose results are exported",
    "kyc_events": "the staff review trail; its outcomes are exported with kyc_submissions",
    "withdrawal_approvals": "staff decisions; the withdrawals are exported (payment_transactions)",
    "crm_segments": "staff-authored (created_by_id is a staff member, never a player)",
    "crm_broadcasts": "staff-authored; what a player received is exported as notifications",
    "content_items": "staff-authored pages, FAQ, announcements and banners (created_by_id)",
    "content_versions": "staff-authored texts (published_by_id, updated_by_id are staff)",
    "promotions": "staff-authored offers; the player's bonuses are exported",
    "tournaments": "staff-authored; the player's entries are exported (tournament_participants)",
    "report_exports": "files staff asked for (requested_by_id is a staff member, never a player)",
    "staff_recovery_codes": "staff sign-in secrets (digests of one-time codes); players have none",
    "rtp_flags": "game RTP checks; acknowledged_by is a staff member, never a player",
}

#: What an erasure keeps, and why (the answer to the player says it too).
RETAINED: dict[str, str] = {
    "ledger_transactions, wallets, payment_transactions": "financial records: accounting and "
    "AML law require them for years after the relationship ends",
    "kyc_submissions, kyc_documents, risk_flags": "customer due diligence and AML records",
    "rg_exclusions, rg_limits": "self-exclusion must keep applying (regulator's requirement)",
    "game_rounds, provider_transactions": "game records the licence requires",
    "audit_log": "append-only, hash-chained evidence of what happened",
}

#: ``check(user_id)`` raises to refuse an erasure (positive balance, pending withdrawal ...).
erasure_checks: Hooks[[int]] = Hooks()
#: ``erased(user_id)`` runs in the erasure's transaction after the pseudonymisation (the
#: data archives delete their files: ``app.identity.archive.erase_for``).
erased: Hooks[[int]] = Hooks()


def referencing_tables() -> dict[str, list[str]]:
    """Every table with a foreign key to ``users``: its name -> the referencing columns."""
    found: dict[str, list[str]] = {}
    for table in db.metadata.sorted_tables:
        columns = [fk.parent.name for fk in table.foreign_keys if fk.column.table.name == "users"]
        if columns or table.name == "users":
            found[table.name] = sorted(columns)
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def _rows(table: Table, spec: Export, user_id: int) -> list[dict[str, Any]]:
    wanted = [c for c in table.columns if c.name not in spec.omit]
    criteria = [table.c[name] == user_id for name in spec.by]
    pk = list(table.primary_key.columns)
    query = select(*wanted).where(or_(*criteria)).order_by(*pk)
    return [
        {key: _plain(value) for key, value in row._mapping.items()}
        for row in db.session.execute(query)
    ]


def export(user: User) -> dict[str, Any]:
    """Everything held about ``user`` as one JSON-ready document (audited)."""
    unknown = sorted(set(referencing_tables()) - set(EXPORTED) - set(EXCLUDED))
    if unknown:  # a table nobody classified: never answer an incomplete export silently
        raise RuntimeError(f"GDPR export policy misses {', '.join(unknown)}")
    tables = db.metadata.tables
    data = {
        name: _rows(tables[name], spec, user.id)
        for name, spec in EXPORTED.items()
        if name in tables
    }
    with atomic():
        audit.record("user.data_export", actor=user, target_type="user", target_id=user.id)
    return {
        "format": FORMAT,
        "generated_at": utcnow().isoformat(),
        "user_id": user.id,
        "tables": data,
        "withheld_columns": {n: list(s.omit) for n, s in EXPORTED.items() if s.omit},
        "excluded_tables": EXCLUDED,
    }


# --- erasure ------------------------------------------------------------------------------


def request_erasure(user: User, reason: str | None = None) -> ErasureRequest:
    """Ask for erasure; the pending request if one exists (idempotent)."""
    if user.role_id != PLAYER:
        raise ValidationError("Only player accounts can ask for erasure here")
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.erased_at is not None:
            raise Conflict("This account has already been erased")
        pending = db.session.scalar(
            select(ErasureRequest).where(
                ErasureRequest.user_id == user.id, ErasureRequest.status == "pending"
            )
        )
        if pending is not None:
            return pending
        erasure_checks(user.id)
        row = ErasureRequest(user_id=user.id, reason=(reason or "").strip()[:500] or None)
        db.session.add(row)
        db.session.flush()
        audit.record(
            "user.erasure_requested",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"request_id": row.id},
        )
    return row


def list_requests(*, status: str | None, page: int, limit: int):
    query = select(ErasureRequest)
    if status:
        query = query.where(ErasureRequest.status == status)
    return page_of(
        query, ErasureRequest.requested_at.desc(), ErasureRequest.id.desc(), page=page, limit=limit
    )


def _pseudonymise(user: User, now: datetime) -> None:
    alias = f"erased-{user.id}"
    # The picture's file goes once the erasure commits (its URL is cleared below).
    avatars.forget_file(user.avatar_url)
    user.username = alias
    user.email = f"{alias}@erased.invalid"
    user.password_hash = passwords.hash_password(secrets.token_urlsafe(32))
    for field in (
        "first_name",
        "last_name",
        "phone",
        "date_of_birth",
        "address",
        "city",
        "postal_code",
        "avatar_url",
        "gender",
        "nationality",
        "preferences",
        "registration_ip",
        "registration_device",
        "last_login_ip",
        "totp_secret_enc",
        "referral_code",
        "email_verified_at",
    ):
        setattr(user, field, None)
    user.totp_enabled = False
    user.sms_2fa_enabled = False
    user.marketing_consent, user.marketing_consent_at = False, now
    user.status, user.status_reason, user.status_until = "closed", "gdpr_erasure", None
    user.tokens_valid_after = now
    user.erased_at = now
    # Outside identities name the person (an issuer's subject, a Telegram id): unlinked.
    db.session.execute(delete(IdentityLink).where(IdentityLink.user_id == user.id))
    db.session.execute(
        update(LoginEvent)
        .where(LoginEvent.user_id == user.id)
        .values(login=alias, ip=None, user_agent=None, device_fingerprint=None)
    )
    db.session.execute(
        update(TokenFamily)
        .where(TokenFamily.user_id == user.id)
        .values(ip=None, user_agent=None, device_fingerprint=None)
    )
    db.session.execute(
        update(TokenFamily)
        .where(TokenFamily.user_id == user.id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="gdpr_erasure")
    )
    db.session.execute(
        update(EmailVerification)
        .where(EmailVerification.user_id == user.id)
        .values(email=user.email, used_at=now)
    )
    db.session.execute(delete(UserPhone).where(UserPhone.user_id == user.id))
    db.session.execute(delete(UserAddress).where(UserAddress.user_id == user.id))
    db.session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.user_id == user.id)
        .values(destination=alias, ip=None, used_at=now)
    )


def approve(request_id: int, actor: User, note: str | None = None) -> ErasureRequest:
    """Carry out an erasure request (idempotent: a completed one is answered as it is)."""
    with atomic():
        row = lock_one(ErasureRequest, ErasureRequest.id == request_id)
        if row is None:
            raise NotFound("No such erasure request")
        if row.status == "completed":
            return row
        if row.status != "pending":
            raise Conflict("Only a pending erasure request can be approved")
        user = lock_existing(User, User.id == row.user_id)
        now = utcnow()
        if user.erased_at is None:
            erasure_checks(user.id)
            _pseudonymise(user, now)
            erased(user.id)
        row.status, row.decided_at, row.decided_by_id = "completed", now, actor.id
        row.decision_note = (note or "").strip()[:500] or None
        audit.record(
            "user.erasure",
            actor=actor,
            target_type="user",
            target_id=user.id,
            after={"request_id": row.id, "retained": sorted(RETAINED)},
        )
        publish("session.logout", {"reason": "account_erased"}, room=user_room(user.id))
    return row


def reject(request_id: int, actor: User, note: str) -> ErasureRequest:
    if not (note or "").strip():
        raise ValidationError.field("note", "Say why the request is rejected")
    with atomic():
        row = lock_one(ErasureRequest, ErasureRequest.id == request_id)
        if row is None:
            raise NotFound("No such erasure request")
        if row.status != "pending":
            raise Conflict("Only a pending erasure request can be rejected")
        row.status, row.decided_at, row.decided_by_id = "rejected", utcnow(), actor.id
        row.decision_note = note.strip()[:500]
        audit.record(
            "user.erasure_rejected",
            actor=actor,
            target_type="user",
            target_id=row.user_id,
            reason=row.decision_note,
        )
    return row
