"""One welcome bonus per person: accounts that share a device, an IP or a payment instrument.

A welcome offer is a promotion with ``first_deposit_only`` or of type ``no_deposit``. Before one
is granted (claim, pending claim met by a deposit, auto-applied deposit match) the player's
identities are compared with those of every other account that already *received* a welcome
bonus (granted, whatever happened to it later):

* ``device``: the ``X-Device-Fingerprint`` header recorded at registration
  (``users.registration_device``) and at each successful login (``login_history``,
  ``token_families``);
* ``ip``: the registration IP and every successful login's IP, public addresses only
  (loopback and private ranges are shared by everyone behind the same proxy or NAT);
* ``payment``: the gateway's stable card/account reference of completed deposits
  (``payment_transactions.instrument_fingerprint``; the sandbox's ``account_reference``).

Free spins count as a welcome offer on the same terms: a ``free_spins`` promotion with
``first_deposit_only`` (an offer for accounts that have not deposited: a sign-up gift) is one;
free spins without it are a retention offer and are not compared.

Two accounts sharing an identity that claim at the same instant are serialized (PostgreSQL):
before the comparison the claimant takes a transaction-scoped advisory lock per identity value
(``lock_identities``; sorted, so two claimants never wait for each other crosswise), held until
commit, so the second one's comparison sees the first one's bonus. Lock order: wallet row,
identity locks, promotion row (then the audit chain lock of ``audit.record``).

A match refuses the bonus (reason ``duplicate_identity``) and raises a ``duplicate_identity``
risk flag for staff (``admin.notification``), audited. Which signals count is
``WELCOME_DUPLICATE_SIGNALS`` (default all three). Staff accounts are never compared. The
check is a signal, not proof: staff review the flag and may grant the bonus by hand.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, Select, and_, or_, select, text, union

from app.bonus.models import PlayerBonus, Promotion
from app.compliance import risk
from app.compliance.models import RiskFlag
from app.core import audit, opsettings
from app.core.extensions import db
from app.identity.models import PLAYER, LoginEvent, TokenFamily, User
from app.payments.models import PaymentTransaction

SIGNALS = ("device", "ip", "payment")


def is_welcome(p: Promotion) -> bool:
    """The offer is a welcome offer (also a ``free_spins`` one with ``first_deposit_only``);
    ``welcome_clause`` is the same rule in SQL."""
    return bool(p.first_deposit_only) or p.type == "no_deposit"


def welcome_clause() -> Any:
    return or_(Promotion.first_deposit_only.is_(True), Promotion.type == "no_deposit")


#: Namespace of the identity advisory locks (hashed with the identity into one bigint key).
_LOCK_NAMESPACE = "jx-welcome-identity"


def _lock_key(kind: str, value: str) -> int:
    digest = hashlib.sha256(f"{_LOCK_NAMESPACE}:{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_identities(user_id: int, *, instrument: str | None = None) -> None:
    """Take a transaction-scoped advisory lock on each of the player's identity values (the
    signals compared by ``duplicates``), in sorted key order, before the comparison: another
    account sharing one of them waits until this transaction ends and then sees its bonus.
    Re-entrant (taking it twice in one transaction is harmless). No-op on SQLite, which
    serializes writers anyway."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    keys = {
        _lock_key(kind, value)
        for kind in _enabled()
        for value in _values(
            user_id, kind, {instrument} if kind == "payment" and instrument else set()
        )
    }
    for key in sorted(keys):
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


@dataclass(frozen=True)
class Match:
    user_id: int
    signals: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "signals": list(self.signals)}


def _enabled() -> set[str]:
    return {s for s in opsettings.value("welcome_duplicate_signals") if s in SIGNALS}


def _values(user_id: int, kind: str, extra: set[str]) -> set[str]:
    """The player's own identities of one kind (plus ``extra``: the deposit being credited)."""
    stmt: Select[str | None] | CompoundSelect[str | None]
    if kind == "payment":
        stmt = select(PaymentTransaction.instrument_fingerprint).where(
            PaymentTransaction.user_id == user_id,
            PaymentTransaction.instrument_fingerprint.is_not(None),
        )
    else:
        reg = User.registration_device if kind == "device" else User.registration_ip
        login = LoginEvent.device_fingerprint if kind == "device" else LoginEvent.ip
        fam = TokenFamily.device_fingerprint if kind == "device" else TokenFamily.ip
        stmt = union(
            select(reg).where(User.id == user_id),
            select(login).where(LoginEvent.user_id == user_id, LoginEvent.success.is_(True)),
            select(fam).where(TokenFamily.user_id == user_id),
        )
    found = {v for v in db.session.scalars(stmt) if v} | {v for v in extra if v}
    return {v for v in found if _public(v)} if kind == "ip" else found


def _public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def _sharing(kind: str, values: set[str], user_id: int) -> set[int]:
    """Other accounts that used one of ``values``."""
    stmt: Select[int] | CompoundSelect[int]
    if kind == "payment":
        stmt = select(PaymentTransaction.user_id).where(
            PaymentTransaction.instrument_fingerprint.in_(values),
            PaymentTransaction.user_id != user_id,
        )
    else:
        reg = User.registration_device if kind == "device" else User.registration_ip
        login = LoginEvent.device_fingerprint if kind == "device" else LoginEvent.ip
        fam = TokenFamily.device_fingerprint if kind == "device" else TokenFamily.ip
        stmt = union(
            select(User.id).where(reg.in_(values), User.id != user_id),
            select(LoginEvent.user_id).where(
                login.in_(values), LoginEvent.success.is_(True), LoginEvent.user_id != user_id
            ),
            select(TokenFamily.user_id).where(fam.in_(values), TokenFamily.user_id != user_id),
        )
    return {uid for uid in db.session.scalars(stmt) if uid is not None}


def duplicates(user_id: int, *, instrument: str | None = None) -> list[Match]:
    """Other player accounts sharing an identity with ``user_id`` that received a welcome
    bonus, with the signals they share (empty: no duplicate)."""
    shared: dict[int, set[str]] = {}
    for kind in sorted(_enabled()):
        values = _values(user_id, kind, {instrument} if kind == "payment" and instrument else set())
        if not values:
            continue
        for other in _sharing(kind, values, user_id):
            shared.setdefault(other, set()).add(kind)
    if not shared:
        return []
    welcomed = set(
        db.session.scalars(
            select(PlayerBonus.user_id)
            .join(Promotion, Promotion.id == PlayerBonus.promotion_id)
            .join(User, User.id == PlayerBonus.user_id)
            .where(
                PlayerBonus.user_id.in_(shared),
                PlayerBonus.granted_at.is_not(None),
                welcome_clause(),
                User.role_id == PLAYER,
            )
        )
    )
    return [Match(uid, tuple(sorted(shared[uid]))) for uid in sorted(welcomed)]


def explain(matches: list[Match]) -> str:
    kinds = sorted({s for m in matches for s in m.signals})
    names = {"device": "device", "ip": "network address", "payment": "payment method"}
    return (
        "A welcome bonus was already given to another account using the same "
        + " / ".join(names[k] for k in kinds)
        + "; one welcome bonus per person"
    )


def flag(user_id: int, promotion_id: int, matches: list[Match], *, context: str) -> None:
    """Raise (once per player and promotion while open) the staff flag, and audit it.

    The caller's transaction; for a refused claim that is a new transaction after the
    refusal (the claim's own transaction is rolled back)."""
    reference = f"promotion:{promotion_id}"
    details = {
        "promotion_id": promotion_id,
        "context": context,
        "matches": [m.as_json() for m in matches],
    }
    audit.record(
        "bonus.refused_duplicate_identity",
        target_type="user",
        target_id=user_id,
        after=details,
    )
    already = db.session.scalar(
        select(RiskFlag.id).where(
            and_(
                RiskFlag.user_id == user_id,
                RiskFlag.kind == "duplicate_identity",
                RiskFlag.reference == reference,
                RiskFlag.status == "open",
            )
        )
    )
    if already is None:
        risk.flag("duplicate_identity", user_id=user_id, reference=reference, details=details)
