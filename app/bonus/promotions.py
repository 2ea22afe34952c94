"""Promotions and bonuses: offers, claims, grants, wagering, conversion, forfeits.

Invariants:
* Bonus money moves only through ``app.wallet.ledger`` (ledger ``bonus_grant``,
  ``bonus_convert``, ``bonus_forfeit``), each keyed by the bonus id: a replay moves nothing.
* Lock order, everywhere: the player's wallet row, then the promotion row, then the bonus row.
  The wallet lock serializes everything one player does (claims, bets, deposits, withdrawals);
  the promotion lock serializes the total-claims counter across players.
* One open (pending or active) bonus per (player, currency), enforced by a partial unique
  index: the wallet's single bonus balance always belongs to one contract.
* Rules are enforced in the money path, not the UI: the max bet on the bet callback
  (``play_guard``), wagering progress on applied stakes (``play_events``, inside the callback
  transaction), a withdrawal refused while a bonus is wagering unless the player forfeits it
  (``payments`` hooks), the deposit match credited inside the deposit's transaction.
* Self-excluded or blocked players receive nothing (claims refused, deposits not matched).
* A deposit triggers at most one bonus (unique ``trigger_ref``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select

from app.bonus import abuse as bonus_abuse
from app.bonus import bonuses, free_spins
from app.bonus.models import BONUS_STATES, OPEN_BONUS_STATUSES, PlayerBonus, Promotion
from app.compliance import responsible_gaming as rg
from app.core import audit, events
from app.core.base import utcnow
from app.core.db import atomic, page_of, parse_row_id
from app.core.errors import AppError, Conflict, NotFound, SelfExcluded, ValidationError
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import format_minor, normalize_currency
from app.identity.models import PLAYER, User
from app.messaging import crm
from app.messaging.models import CrmSegment
from app.payments.models import PaymentTransaction
from app.play import events as play_events
from app.play import guard as play_guard
from app.play.models import GameRound
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction as Ltx

SOURCE = bonuses.SOURCE
DEPOSIT_TYPES = ("deposit_match", "reload")
#: Fields staff may set on a promotion (money fields in minor units).
EDITABLE = (
    "name",
    "description",
    "terms",
    "image_url",
    "type",
    "currency",
    "match_percent",
    "max_bonus_minor",
    "min_deposit_minor",
    "bonus_amount_minor",
    "cashback_percent",
    "cashback_period_days",
    "wagering_multiplier",
    "default_contribution",
    "game_contributions",
    "max_bet_minor",
    "max_cashout_minor",
    "bonus_valid_days",
    "starts_at",
    "ends_at",
    "max_claims_per_player",
    "max_claims_total",
    "countries",
    "voucher_code",
    "segment_id",
    "first_deposit_only",
    "auto_apply",
    "priority",
    "free_spins_count",
    "free_spins_game_id",
    "free_spin_value_minor",
    "free_spins_valid_days",
)


class PromotionUnavailable(AppError):
    status, code, message = (
        400,
        "PROMOTION_NOT_AVAILABLE",
        "Promotion is not available for this user",
    )

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(errors=[{"field": "promotion", "message": detail}], reason=reason)


class DuplicateIdentity(PromotionUnavailable):
    """A welcome bonus already went to another account sharing a device, IP or card."""

    def __init__(self, promotion_id: int, matches: list[Any]) -> None:
        super().__init__("duplicate_identity", bonus_abuse.explain(matches))
        self.promotion_id = promotion_id
        self.matches = matches


class BonusWageringOpen(AppError):
    status, code = 409, "BONUS_WAGERING_OPEN"
    message = "A bonus is still being wagered"


class MaxBetExceeded(AppError):
    status, code = 400, "BONUS_MAX_BET"
    message = "This stake is above the maximum bet allowed while a bonus is wagered"


# --- staff: promotions -----------------------------------------------------------------------


def _validate(p: Promotion) -> None:
    def bad(field: str, message: str) -> None:
        raise ValidationError.field(field, message)

    if p.type in DEPOSIT_TYPES and not p.match_percent:
        bad("match_percent", "A deposit match needs a percentage")
    if p.type == "no_deposit" and p.bonus_amount_minor <= 0:
        bad("bonus_amount", "A no-deposit bonus needs an amount")
    if p.type == "cashback" and not p.cashback_percent:
        bad("cashback_percent", "A cashback needs a percentage")
    if p.type == "free_spins":
        if not p.free_spins_count or p.free_spins_count <= 0:
            bad("free_spins_count", "Free spins need a number of spins")
        if not p.free_spin_value_minor or p.free_spin_value_minor <= 0:
            bad("free_spin_value", "Free spins need a stake per spin")
        found = free_spins.supports(p.free_spins_game_id)
        if found is None:
            bad("free_spins_game_id", "Free spins need a game whose provider supports free rounds")
        if p.auto_apply:
            bad("auto_apply", "Free spins are claimed, not applied to a deposit")
    if p.starts_at and p.ends_at and p.ends_at <= p.starts_at:
        bad("ends_at", "ends_at must be after starts_at")
    for key, pct in (p.game_contributions or {}).items():
        if parse_row_id(str(key)) is None or not isinstance(pct, int) or not 0 <= pct <= 100:
            bad("game_contributions", "Map game ids to whole percentages 0-100")
    if p.voucher_code is not None:
        p.voucher_code = p.voucher_code.strip() or None
    if p.countries:
        p.countries = sorted({c.upper() for c in p.countries})
    if p.segment_id is not None and db.session.get(CrmSegment, p.segment_id) is None:
        bad("segment_id", "Unknown CRM segment")


def _promotion_event(p: Promotion, action: str) -> None:
    events.publish(
        "promotion.update",
        {"action": action, "promotion_id": p.id, "name": p.name, "status": p.status},
        room="global",
    )


def create_promotion(data: dict[str, Any], actor: Any = None) -> Promotion:
    with atomic():
        p = Promotion(status="draft", claims_count=0, game_contributions={}, countries=[])
        for key in EDITABLE:
            if key in data:
                setattr(p, key, data[key])
        p.currency = normalize_currency(p.currency)
        p.created_by_id = getattr(actor, "id", None)
        _validate(p)
        _voucher_free(p.voucher_code, None)
        db.session.add(p)
        db.session.flush()  # the id goes into the audit row and the event
        audit.record("promotion.create", actor=actor, target_type="promotion", target_id=p.id,
                     after=_audit_view(p))  # fmt: skip
        _promotion_event(p, "created")
    return p


def _voucher_free(code: str | None, own_id: int | None) -> None:
    if code is None:
        return
    other = db.session.scalar(
        select(Promotion.id).where(func.lower(Promotion.voucher_code) == code.lower())
    )
    if other is not None and other != own_id:
        raise Conflict("This voucher code is already used by another promotion")


def _audit_view(p: Promotion) -> dict[str, Any]:
    return {k: getattr(p, k) for k in (*EDITABLE, "status") if k not in ("starts_at", "ends_at")}


def get_promotion(promotion_id: int) -> Promotion:
    p = db.session.get(Promotion, promotion_id)
    if p is None:
        raise NotFound("Promotion not found")
    return p


def update_promotion(promotion_id: int, data: dict[str, Any], actor: Any = None) -> Promotion:
    with atomic():
        p = bonuses.locked(Promotion, promotion_id)
        if p is None:
            raise NotFound("Promotion not found")
        before = _audit_view(p)
        for key in EDITABLE:
            if key in data:
                setattr(p, key, data[key])
        p.currency = normalize_currency(p.currency)
        _validate(p)
        _voucher_free(p.voucher_code, p.id)
        audit.record("promotion.update", actor=actor, target_type="promotion", target_id=p.id,
                     before=before, after=_audit_view(p))  # fmt: skip
        _promotion_event(p, "updated")
    return p


def set_status(promotion_id: int, status: str, actor: Any = None) -> Promotion:
    with atomic():
        p = bonuses.locked(Promotion, promotion_id)
        if p is None:
            raise NotFound("Promotion not found")
        before = p.status
        p.status = status
        audit.record(f"promotion.{'activate' if status == 'active' else 'deactivate'}",
                     actor=actor, target_type="promotion", target_id=p.id,
                     before={"status": before}, after={"status": status})  # fmt: skip
        _promotion_event(p, "activated" if status == "active" else "deactivated")
    return p


def list_promotions(
    status: str | None,
    page: int,
    limit: int,
    *,
    type_: str | None = None,
    query: str | None = None,
) -> tuple[list[Promotion], int]:
    """Newest first; ``query`` matches the name or the voucher code (case-insensitive)."""
    stmt = select(Promotion)
    if status:
        stmt = stmt.where(Promotion.status == status)
    if type_:
        stmt = stmt.where(Promotion.type == type_)
    if query:
        needle = f"%{query.lower()}%"
        name, voucher = func.lower(Promotion.name), func.lower(Promotion.voucher_code)
        stmt = stmt.where(name.like(needle) | voucher.like(needle))
    return page_of(stmt, Promotion.id.desc(), page=page, limit=limit)


def bonuses_of_promotion(promotion_id: int, page: int, limit: int):
    stmt = select(PlayerBonus).where(PlayerBonus.promotion_id == promotion_id)
    return page_of(stmt, PlayerBonus.id.desc(), page=page, limit=limit)


# --- eligibility -----------------------------------------------------------------------------


def _live(p: Promotion, now: datetime) -> bool:
    return (
        p.status == "active"
        and (p.starts_at is None or p.starts_at <= now)
        and (p.ends_at is None or p.ends_at > now)
    )


def visible_to(p: Promotion, user_id: int | None) -> bool:
    """A segment-targeted offer is shown only to the segment's players."""
    return p.segment_id is None or (user_id is not None and crm.in_segment(p.segment_id, user_id))


def active_promotions(user_id: int | None = None) -> list[Promotion]:
    """Running offers the player (or an anonymous visitor) may see; voucher-only ones never."""
    now = utcnow()
    rows = db.session.scalars(
        select(Promotion)
        .where(Promotion.status == "active", Promotion.voucher_code.is_(None))
        .order_by(Promotion.priority.desc(), Promotion.id.desc())
    ).all()
    return [p for p in rows if _live(p, now) and visible_to(p, user_id)]


def _open_bonus(user_id: int, currency: str) -> PlayerBonus | None:
    return db.session.scalar(
        select(PlayerBonus).where(
            PlayerBonus.user_id == user_id,
            PlayerBonus.currency == currency,
            PlayerBonus.status.in_(OPEN_BONUS_STATUSES),
        )
    )


def _completed_deposits(user_id: int, *, other_than: int | None = None) -> int:
    return db.session.execute(
        select(func.count(PaymentTransaction.id)).where(
            PaymentTransaction.user_id == user_id,
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
            PaymentTransaction.id != (other_than or 0),
        )
    ).scalar_one()


def _player_claims(p: Promotion, user_id: int) -> int:
    # A claim that ended without being granted (cancelled, or expired while pending) frees its
    # slot; everything else counts.
    return db.session.execute(
        select(func.count(PlayerBonus.id)).where(
            PlayerBonus.promotion_id == p.id,
            PlayerBonus.user_id == user_id,
            ~(PlayerBonus.granted_at.is_(None) & PlayerBonus.status.in_(("cancelled", "expired"))),
        )
    ).scalar_one()


def refusal(
    p: Promotion, user: User, *, voucher: str | None = None, deposits_before: int | None = None
) -> tuple[str, str] | None:
    """Why ``user`` may not receive ``p`` now, as ``(reason code, explanation)``; else None."""
    now = utcnow()
    if not _live(p, now):
        return "not_active", "This promotion is not running"
    try:
        rg.check_promotions_allowed(user)
    except SelfExcluded:
        return "self_excluded", "Promotions are not available while you are self-excluded"
    if play_guard.status_blocks(user.status, user.status_until) or user.role_id != PLAYER:
        return "restricted", "This account may not receive promotions"
    if p.voucher_code and (voucher or "").strip().lower() != p.voucher_code.lower():
        return "voucher_required", "This promotion needs its voucher code"
    if p.countries and (user.country or "").upper() not in p.countries:
        return "country", "This promotion is not offered in your country"
    if not visible_to(p, user.id):
        return "segment", "This promotion is for selected players"
    if p.type == "cashback":
        return "automatic", "Cashback is paid automatically at the end of each period"
    if p.max_claims_total is not None and p.claims_count >= p.max_claims_total:
        return "sold_out", "This promotion has reached its claim limit"
    if (
        p.max_claims_per_player is not None
        and _player_claims(p, user.id) >= p.max_claims_per_player
    ):
        return "already_claimed", "You have already claimed this promotion"
    if p.first_deposit_only:
        done = _completed_deposits(user.id) if deposits_before is None else deposits_before
        if done > 0:
            return "first_deposit_only", "This offer is for your first deposit only"
    if _open_bonus(user.id, p.currency) is not None:
        return "bonus_open", "You already have a bonus in progress; finish or forfeit it first"
    return None


def _refuse_if_needed(p: Promotion, user: User, **kw: Any) -> None:
    found = refusal(p, user, **kw)
    if found is not None:
        raise PromotionUnavailable(*found)


# --- claims and grants -----------------------------------------------------------------------


def _new_bonus(p: Promotion, user: User, status: str, **kw: Any) -> PlayerBonus:
    now = utcnow()
    bonus = PlayerBonus(
        promotion_id=p.id,
        user_id=user.id,
        currency=p.currency,
        status=status,
        amount_minor=0,
        wagering_required_minor=0,
        wagering_progress_minor=0,
        max_bet_minor=p.max_bet_minor,
        max_cashout_minor=p.max_cashout_minor,
        default_contribution=p.default_contribution,
        game_contributions=dict(p.game_contributions or {}),
        converted_minor=0,
        forfeited_minor=0,
        ledger_refs={},
        claimed_at=now,
        **kw,
    )
    if status == "pending":
        window = now + timedelta(days=p.bonus_valid_days)
        bonus.expires_at = min(window, p.ends_at) if p.ends_at else window
    db.session.add(bonus)
    p.claims_count += 1
    db.session.flush()  # the bonus id keys its ledger movements
    return bonus


def claim(user: User, promotion_id: int, *, voucher: str | None = None) -> PlayerBonus:
    """Claim an offer: a no-deposit bonus is granted now; a deposit offer waits (``pending``)
    for the next qualifying deposit. Refusals raise ``PromotionUnavailable`` with the reason.

    A welcome offer refused as a duplicate identity raises a staff flag, written (and
    audited) in its own transaction once the claim's has been rolled back."""
    try:
        return _claim(user, promotion_id, voucher=voucher)
    except DuplicateIdentity as exc:
        with atomic():
            bonus_abuse.flag(user.id, exc.promotion_id, exc.matches, context="claim")
        raise


def _claim(user: User, promotion_id: int, *, voucher: str | None) -> PlayerBonus:
    with atomic():
        p = db.session.get(Promotion, promotion_id)
        if p is None:
            raise NotFound("Promotion not found")
        wallet.lock(user.id, p.currency)
        # Accounts sharing a device/IP/card claiming at once: the second waits here (after
        # its wallet, before the promotion row) and then sees the first one's bonus.
        welcome = bonus_abuse.is_welcome(p)
        if welcome:
            bonus_abuse.lock_identities(user.id)
        p = bonuses.locked_existing(Promotion, promotion_id)
        _refuse_if_needed(p, user, voucher=voucher)
        if bonus_abuse.is_welcome(p):
            if not welcome:  # the offer became a welcome offer meanwhile
                bonus_abuse.lock_identities(user.id)
            matches = bonus_abuse.duplicates(user.id)
            if matches:
                raise DuplicateIdentity(p.id, matches)
        if p.type in DEPOSIT_TYPES:
            bonus = _new_bonus(p, user, "pending", voucher_code=voucher)
            audit.record("bonus.claim", actor=user, target_type="player_bonus", target_id=bonus.id,
                         after={"promotion": p.id, "status": "pending"})  # fmt: skip
            bonuses.bonus_event(bonus, "claimed")
        elif p.type == "free_spins":
            bonus = _new_bonus(p, user, "active", voucher_code=voucher)
            free_spins.grant(bonus, p)
            bonuses.notify_player(
                bonus,
                "free_spins_granted",
                Msg("%(name)s: %(count)s free spins", name=p.name, count=p.free_spins_count),
            )
            bonuses.bonus_event(bonus, "granted")
        else:
            bonus = _new_bonus(p, user, "active", voucher_code=voucher)
            _grant(bonus, p, p.bonus_amount_minor, actor=user)
    return bonus


def redeem_voucher(user: User, code: str) -> PlayerBonus:
    code = (code or "").strip()
    p = db.session.scalar(
        select(Promotion).where(func.lower(Promotion.voucher_code) == code.lower())
    )
    if not code or p is None:
        raise PromotionUnavailable("voucher_unknown", "This voucher code is not valid")
    return claim(user, p.id, voucher=code)


def _grant(bonus: PlayerBonus, p: Promotion, amount: int, *, actor: Any = None) -> None:
    """Credit ``amount`` as bonus money and start the wagering contract (wallet locked)."""
    now = utcnow()
    if bonus.status != "active":  # a pending claim granted by its deposit
        BONUS_STATES.move(bonus, "active")
    bonus.amount_minor = amount
    bonus.wagering_required_minor = amount * p.wagering_multiplier
    bonus.granted_at = now
    bonus.expires_at = now + timedelta(days=p.bonus_valid_days)
    posting = wallet.post(
        bonus.user_id,
        bonus.currency,
        "bonus_grant",
        bonus_delta=amount,
        source=SOURCE,
        idempotency_key=f"bonus-grant:{bonus.id}",
        reference_type="player_bonus",
        reference_id=bonus.id,
        description=f"Bonus: {p.name}",
        meta={"promotion_id": p.id},
        actor=actor,
    )
    bonus.ledger_refs = {**(bonus.ledger_refs or {}), "grant": posting.transaction_id}
    audit.record("bonus.grant", actor=actor, target_type="player_bonus", target_id=bonus.id,
                 after={"promotion": p.id, "amount": format_minor(amount, bonus.currency),
                        "currency": bonus.currency,
                        "wagering_required": format_minor(bonus.wagering_required_minor,
                                                          bonus.currency)})  # fmt: skip
    bonuses.notify_player(
        bonus,
        "bonus_granted",
        Msg(
            "%(name)s: %(amount)s %(currency)s bonus credited",
            name=p.name,
            amount=format_minor(amount, bonus.currency),
            currency=bonus.currency,
        ),
    )
    bonuses.bonus_event(bonus, "granted")
    if bonus.wagering_required_minor == 0:
        bonuses.complete(bonus)


def grant_prize(
    user_id: int, promotion_id: int, amount: int, trigger_ref: str, *, description: str
) -> PlayerBonus | None:
    """A prize paid as bonus money (tournaments): a bonus of ``promotion_id``'s terms
    (wagering multiplier, max bet, validity) for ``amount``, keyed by ``trigger_ref`` (unique:
    a rerun returns the first bonus). Joins the caller's transaction.

    Returns ``None`` while the player has another bonus open (one contract per wallet); the
    caller retries later. A prize is not a promotion claim: claim limits and the offer's
    window do not apply, but a blocked account receives nothing until unblocked (``None``).
    """
    existing = db.session.scalar(select(PlayerBonus).where(PlayerBonus.trigger_ref == trigger_ref))
    if existing is not None:
        return existing
    p = db.session.get(Promotion, promotion_id)
    if p is None:
        raise NotFound("Promotion not found")
    wallet.lock(user_id, p.currency)
    if _open_bonus(user_id, p.currency) is not None:
        return None
    user = db.session.get_one(User, user_id)
    if play_guard.status_blocks(user.status, user.status_until):
        return None
    promo = bonuses.locked_existing(Promotion, p.id)
    bonus = _new_bonus(promo, user, "active", trigger_ref=trigger_ref)
    _grant(bonus, promo, amount)
    audit.record("bonus.prize", actor=None, target_type="player_bonus", target_id=bonus.id,
                 after={"trigger": trigger_ref, "description": description})  # fmt: skip
    return bonus


def reward_refusal(user: User, currency: str) -> tuple[str, str] | None:
    """Why ``user`` may not receive a bonus bought with loyalty points now (wallet locked)."""
    try:
        rg.check_promotions_allowed(user)
    except SelfExcluded:
        return "self_excluded", "Rewards are not available while you are self-excluded"
    if play_guard.status_blocks(user.status, user.status_until) or user.role_id != PLAYER:
        return "restricted", "This account may not receive rewards"
    if _open_bonus(user.id, currency) is not None:
        return "bonus_open", "You already have a bonus in progress; finish or forfeit it first"
    return None


def grant_reward(
    user: User, promotion_id: int, amount: int | None, trigger_ref: str, *, description: str
) -> PlayerBonus:
    """A bonus bought with loyalty points, on ``promotion_id``'s terms (which need not be
    running: the promotion is the reward's template): ``amount`` of bonus money, or for a
    ``free_spins`` promotion its spins. Keyed by ``trigger_ref`` (unique). Joins the caller's
    transaction, which holds the player's wallet lock (``reward_refusal`` said yes under it);
    claim limits and the offer's window do not apply."""
    p = bonuses.locked_existing(Promotion, promotion_id)
    bonus = _new_bonus(p, user, "active", trigger_ref=trigger_ref)
    if p.type == "free_spins":
        free_spins.grant(bonus, p)
        bonuses.notify_player(
            bonus,
            "free_spins_granted",
            Msg("%(name)s: %(count)s free spins", name=description, count=p.free_spins_count),
        )
        bonuses.bonus_event(bonus, "granted")
    else:
        if not amount or amount <= 0:
            raise ValidationError.field("amount", "A bonus-money reward needs an amount")
        _grant(bonus, p, amount, actor=user)
    audit.record("bonus.loyalty_reward", actor=user, target_type="player_bonus",
                 target_id=bonus.id,
                 after={"trigger": trigger_ref, "description": description})  # fmt: skip
    return bonus


def _match_amount(p: Promotion, deposit_minor: int) -> int:
    amount = deposit_minor * p.match_percent // 100
    if p.max_bonus_minor is not None:
        amount = min(amount, p.max_bonus_minor)
    return amount


def on_deposit_credited(txn: Any) -> None:
    """Payments hook, inside the deposit's transaction (wallet already locked): match the
    deposit once, for the player's pending claim or else the best auto-applied offer. A
    welcome offer is not granted to a duplicate identity (a pending claim is cancelled; the
    flag is raised in the deposit's transaction, which never fails because of a bonus)."""
    user = db.session.get(User, txn.user_id)
    ref = f"payment:{txn.public_id}"
    if user is None or db.session.scalar(
        select(PlayerBonus.id).where(PlayerBonus.trigger_ref == ref)
    ):
        return
    bonus = _open_bonus(user.id, txn.currency)
    if bonus is not None:
        if bonus.status != "pending":
            return  # a bonus is being wagered: no stacking
        # Identity locks before the promotion row (bonus_abuse's lock order).
        welcome = bonus_abuse.is_welcome(db.session.get_one(Promotion, bonus.promotion_id))
        if welcome:
            bonus_abuse.lock_identities(user.id, instrument=txn.instrument_fingerprint)
        p = bonuses.locked_existing(Promotion, bonus.promotion_id)
        if txn.amount_minor < p.min_deposit_minor or not _live(p, utcnow()):
            return
        if _receives_nothing(user):
            return
        if bonus_abuse.is_welcome(p):
            if not welcome:  # the offer became a welcome offer meanwhile
                bonus_abuse.lock_identities(user.id, instrument=txn.instrument_fingerprint)
            duplicates = bonus_abuse.duplicates(user.id, instrument=txn.instrument_fingerprint)
            if duplicates:
                bonus = bonuses.locked_existing(PlayerBonus, bonus.id)
                _end(bonus, "cancelled", "duplicate_identity")
                bonus_abuse.flag(user.id, p.id, duplicates, context="deposit")
                return
        bonus.trigger_ref, bonus.deposit_minor = ref, txn.amount_minor
        _grant(bonus, p, _match_amount(p, txn.amount_minor))
        return
    candidates = db.session.scalars(
        select(Promotion)
        .where(
            Promotion.status == "active",
            Promotion.auto_apply.is_(True),
            Promotion.type.in_(DEPOSIT_TYPES),
            Promotion.currency == txn.currency,
            Promotion.voucher_code.is_(None),
            Promotion.min_deposit_minor <= txn.amount_minor,
        )
        .order_by(Promotion.priority.desc(), Promotion.id)
    ).all()
    before = _completed_deposits(user.id, other_than=txn.id)
    matches: list[bonus_abuse.Match] | None = None
    identities_locked = any(bonus_abuse.is_welcome(c) for c in candidates)
    if identities_locked:  # identity locks before the promotion rows (bonus_abuse)
        bonus_abuse.lock_identities(user.id, instrument=txn.instrument_fingerprint)
    for candidate in candidates:
        p = bonuses.locked_existing(Promotion, candidate.id)
        if refusal(p, user, deposits_before=before) is not None:
            continue
        if bonus_abuse.is_welcome(p):
            if matches is None:
                if not identities_locked:  # the offer became a welcome offer meanwhile
                    bonus_abuse.lock_identities(user.id, instrument=txn.instrument_fingerprint)
                matches = bonus_abuse.duplicates(user.id, instrument=txn.instrument_fingerprint)
            if matches:
                bonus_abuse.flag(user.id, p.id, matches, context="deposit")
                continue
        bonus = _new_bonus(p, user, "active", trigger_ref=ref, deposit_minor=txn.amount_minor)
        _grant(bonus, p, _match_amount(p, txn.amount_minor))
        return


def _receives_nothing(user: User) -> bool:
    return rg.is_excluded(user.id) or play_guard.status_blocks(user.status, user.status_until)


# --- wagering, conversion, forfeits ----------------------------------------------------------


def contribution(bonus: PlayerBonus, game_id: int | None) -> int:
    listed = (bonus.game_contributions or {}).get(str(game_id)) if game_id is not None else None
    return bonus.default_contribution if listed is None else int(listed)


def _active_bonus(user_id: int, currency: str) -> PlayerBonus | None:
    return db.session.scalar(
        select(PlayerBonus).where(
            PlayerBonus.user_id == user_id,
            PlayerBonus.currency == currency,
            PlayerBonus.status == "active",
        )
    )


def wanted(user_id: Any, currency: Any, _game_id: Any, _now: Any) -> ColumnElement[bool]:
    """``play_events`` bet probe: is a bonus being wagered in the bet's currency? (Without
    one, :func:`on_play` does nothing for a bet.)"""
    b = PlayerBonus
    return (
        select(b.id).where(b.user_id == user_id, b.currency == currency, b.status == "active")
    ).exists()


def on_play(event: play_events.PlayEvent) -> None:
    """``play_events`` listener (callback transaction, wallet locked by the callback)."""
    if event.kind == "bet" or (event.kind in ("refund", "rollback") and event.reverses == "bet"):
        bonus = _active_bonus(event.user_id, event.currency)
        if bonus is None or not event.amount:
            return
        if free_spins.spins_pending(bonus.id):
            return  # wagering of free-spin winnings starts once the spins are played
        game_id = event.game_id
        if game_id is None and event.round_id is not None:
            # Refund/rollback events don't name the game; their round does.
            game_id = db.session.scalar(
                select(GameRound.game_id).where(
                    GameRound.provider_id == event.provider_id,
                    GameRound.external_round_id == event.round_id,
                )
            )
        step = event.amount * contribution(bonus, game_id) // 100
        if event.kind != "bet":
            # A stake given back never counted as wagered.
            bonus.wagering_progress_minor = max(bonus.wagering_progress_minor - step, 0)
            return
        if step:
            bonus.wagering_progress_minor += step
            if bonus.wagering_progress_minor >= bonus.wagering_required_minor:
                bonuses.complete(bonus)
    elif event.kind == "win" and event.bonus_part:
        _settle_late_bonus_win(event)


def _settle_late_bonus_win(event: play_events.PlayEvent) -> None:
    """A win paid to the bonus balance after its contract ended (the round was staked while
    wagering): it follows the contract's outcome — converted within the cash-out cap, else
    forfeited — so no bonus money is left without a contract."""
    if _active_bonus(event.user_id, event.currency) is not None:
        return
    last = db.session.scalar(
        select(PlayerBonus)
        .where(
            PlayerBonus.user_id == event.user_id,
            PlayerBonus.currency == event.currency,
            PlayerBonus.granted_at.is_not(None),
        )
        .order_by(PlayerBonus.ended_at.desc(), PlayerBonus.id.desc())
        .limit(1)
    )
    if last is None:
        return
    amount = event.bonus_part
    key = f"late-win:{event.transaction_id}"
    if last.status == "completed":
        room = (
            None
            if last.max_cashout_minor is None
            else last.max_cashout_minor - last.converted_minor
        )
        convert = amount if room is None else max(min(amount, room), 0)
        if convert:
            bonuses.move(last, "bonus_convert", convert, key, cash=True)
            last.converted_minor += convert
        amount -= convert
    if amount:
        bonuses.move(last, "bonus_forfeit", amount, key, cash=False)
        last.forfeited_minor += amount


def _end(bonus: PlayerBonus, status: str, reason: str, *, actor: Any = None) -> None:
    """Forfeit (active) or drop (pending) an open bonus; the caller holds the wallet lock."""
    if bonus.status == "active":
        balance = wallet.lock(bonus.user_id, bonus.currency).bonus_balance
        if balance:
            bonus.ledger_refs = {
                **(bonus.ledger_refs or {}),
                "forfeit": bonuses.move(bonus, "bonus_forfeit", balance, status, cash=False),
            }
            bonus.forfeited_minor += balance
        free_spins.close_for_bonus(bonus, status)
    else:
        # Never granted: give the claim slot back.
        p = bonuses.locked_existing(Promotion, bonus.promotion_id)
        p.claims_count = max(p.claims_count - 1, 0)
        status = "cancelled" if status == "forfeited" else status
    BONUS_STATES.move(bonus, status)
    bonus.ended_at, bonus.end_reason = utcnow(), reason
    audit.record(f"bonus.{status}", actor=actor, target_type="player_bonus", target_id=bonus.id,
                 after={"reason": reason, "forfeited": format_minor(bonus.forfeited_minor,
                                                                   bonus.currency)})  # fmt: skip
    bonuses.bonus_event(bonus, status)


def forfeit(user: User, bonus_id: int) -> PlayerBonus:
    """The player gives up a bonus (active: its balance is forfeited; pending: cancelled)."""
    with atomic():
        bonus = db.session.get(PlayerBonus, bonus_id)
        if bonus is None or bonus.user_id != user.id:
            raise NotFound("Bonus not found")
        wallet.lock(user.id, bonus.currency)
        bonus = bonuses.locked_existing(PlayerBonus, bonus_id)
        if bonus.status not in OPEN_BONUS_STATUSES:
            raise Conflict(f"This bonus is already {bonus.status}")
        _end(bonus, "forfeited", "forfeited by the player", actor=user)
    return bonus


def check_withdrawal(user_id: int, amount_minor: int, currency: str) -> None:
    """Payments check: no withdrawal while bonus money is being wagered, unless forfeited."""
    bonus = _active_bonus(user_id, currency)
    if bonus is None:
        return
    balance = wallet.lock(user_id, currency).bonus_balance
    if balance:
        raise BonusWageringOpen(
            f"Withdrawing now forfeits your bonus of {format_minor(balance, currency)} {currency} "
            f"(wagered {format_minor(bonus.wagering_progress_minor, currency)} of "
            f"{format_minor(bonus.wagering_required_minor, currency)}); "
            "send forfeit_bonus: true to confirm",
            bonus_id=bonus.id,
            bonus_balance=format_minor(balance, currency),
        )


def forfeit_for_withdrawal(user_id: int, currency: str, actor: Any = None) -> None:
    """Payments forfeit hook, inside the withdrawal's transaction."""
    wallet.lock(user_id, currency)
    bonus = _active_bonus(user_id, currency)
    if bonus is not None:
        bonus = bonuses.locked_existing(PlayerBonus, bonus.id)
        _end(bonus, "forfeited", "forfeited on withdrawal request", actor=actor)


def check_bet(
    user_id: int, amount_minor: int, currency: str, *, probed: Sequence[Any] | None = None
) -> None:
    """``play_guard`` check (probe: :func:`max_bet_probe`): the max bet of the bonus being
    wagered."""
    if probed is None:
        limit = db.session.scalar(select(*max_bet_probe(user_id, currency, None)))
    else:
        (limit,) = probed
    if limit is not None and amount_minor > limit:
        raise MaxBetExceeded(
            f"The maximum bet while wagering a bonus is {format_minor(limit, currency)} {currency}"
        )


def max_bet_probe(user_id: Any, currency: Any, _now: Any) -> tuple[ColumnElement[Any], ...]:
    """The max bet of the player's active bonus in ``currency`` (at most one is open: a partial
    unique index), for ``play.guard`` to read with the player."""
    return (
        select(PlayerBonus.max_bet_minor)
        .where(
            PlayerBonus.user_id == user_id,
            PlayerBonus.currency == currency,
            PlayerBonus.status == "active",
        )
        .scalar_subquery(),
    )


def expire_due(now: datetime | None = None) -> int:
    """End open bonuses past their validity (job). Each in its own transaction; re-checked
    under the locks, so a run racing a conversion or another run does nothing twice."""
    now = now or utcnow()
    free_spins.expire_due(now)
    due = db.session.execute(
        select(PlayerBonus.id, PlayerBonus.user_id, PlayerBonus.currency).where(
            PlayerBonus.status.in_(OPEN_BONUS_STATUSES), PlayerBonus.expires_at <= now
        )
    ).all()
    done = 0
    for bonus_id, user_id, currency in due:
        with atomic():
            wallet.lock(user_id, currency)
            bonus = bonuses.locked_existing(PlayerBonus, bonus_id)
            # NULL never expires (as in the query above); nothing sets it back to NULL.
            expires_at = bonus.expires_at
            if bonus.status in OPEN_BONUS_STATUSES and expires_at is not None and expires_at <= now:
                _end(bonus, "expired", "validity ended")
                done += 1
    return done


# --- cashback --------------------------------------------------------------------------------

PLAY_TYPES = ("bet", "win", "refund", "rollback")


def cashback_period(p: Promotion, now: datetime) -> tuple[int, datetime, datetime]:
    """The last *completed* period: periods are ``cashback_period_days`` long, counted from
    the Unix epoch (UTC), so every run agrees on the boundaries."""
    from datetime import UTC

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    length = timedelta(days=p.cashback_period_days)
    index = (now - epoch) // length - 1
    start = epoch + index * length
    return index, start, start + length


def pay_cashback(now: datetime | None = None) -> dict[str, int]:
    """Pay every active cashback promotion for its last completed period (job; idempotent:
    one bonus per promotion, player and period, ``trigger_ref`` unique, checked under the
    wallet lock). Net loss = stakes - wins - refunds over the period in the promotion's
    currency, from the ledger. Without wagering the cashback is cash (``bonus_grant`` then
    ``bonus_convert`` of exactly that amount, so another bonus in progress is untouched);
    with wagering it waits for a player with no bonus open (skipped, reported)."""
    now = now or utcnow()
    report = {"paid": 0, "skipped_open_bonus": 0, "skipped_ineligible": 0}
    for p in db.session.scalars(
        select(Promotion).where(Promotion.type == "cashback", Promotion.status == "active")
    ).all():
        if not _live(p, now):
            continue
        index, start, end = cashback_period(p, now)
        losses = db.session.execute(
            select(Ltx.user_id, -func.sum(Ltx.cash_delta + Ltx.bonus_delta))
            .where(
                Ltx.currency == p.currency,
                Ltx.type.in_(PLAY_TYPES),
                Ltx.created_at >= start,
                Ltx.created_at < end,
            )
            .group_by(Ltx.user_id)
            .having(-func.sum(Ltx.cash_delta + Ltx.bonus_delta) > 0)
        ).all()
        for user_id, loss in losses:
            amount = int(loss) * p.cashback_percent // 100
            if p.max_bonus_minor is not None:
                amount = min(amount, p.max_bonus_minor)
            if amount <= 0:
                continue
            ref = f"cashback:{p.id}:{index}"
            with atomic():
                wallet.lock(user_id, p.currency)
                if db.session.scalar(
                    select(PlayerBonus.id).where(PlayerBonus.trigger_ref == f"{ref}:{user_id}")
                ):
                    continue
                user = db.session.get_one(User, user_id)
                if (
                    user.role_id != PLAYER
                    or rg.is_excluded(user.id)
                    or play_guard.status_blocks(user.status, user.status_until)
                    or (p.countries and (user.country or "").upper() not in p.countries)
                    or not visible_to(p, user.id)
                ):
                    report["skipped_ineligible"] += 1
                    continue
                promo = bonuses.locked_existing(Promotion, p.id)
                trigger = {"trigger_ref": f"{ref}:{user_id}"}
                if p.wagering_multiplier == 0:
                    # Never open: it must not collide with a bonus being wagered.
                    bonus = _new_bonus(promo, user, "completed", **trigger)
                    bonus.amount_minor = bonus.converted_minor = amount
                    bonus.granted_at = bonus.ended_at = utcnow()
                    bonus.end_reason = "cashback paid as cash"
                    grant = wallet.post(
                        user_id, p.currency, "bonus_grant", bonus_delta=amount, source=SOURCE,
                        idempotency_key=f"bonus-grant:{bonus.id}", reference_type="player_bonus",
                        reference_id=bonus.id, description=f"Cashback: {p.name}",
                    )  # fmt: skip
                    convert = bonuses.move(bonus, "bonus_convert", amount, "cashback", cash=True)
                    bonus.ledger_refs = {"grant": grant.transaction_id, "convert": convert}
                    bonuses.notify_player(
                        bonus,
                        "cashback",
                        Msg(
                            "%(name)s: %(amount)s %(currency)s cashback paid",
                            name=p.name,
                            amount=format_minor(amount, p.currency),
                            currency=p.currency,
                        ),
                    )
                    bonuses.bonus_event(bonus, "completed")
                elif _open_bonus(user_id, p.currency) is not None:
                    report["skipped_open_bonus"] += 1
                    continue
                else:
                    bonus = _new_bonus(promo, user, "active", **trigger)
                    _grant(bonus, promo, amount)
                report["paid"] += 1
    return report


# --- player views ----------------------------------------------------------------------------


def history(user: User, page: int, limit: int) -> tuple[list[PlayerBonus], int]:
    stmt = select(PlayerBonus).where(PlayerBonus.user_id == user.id)
    return page_of(stmt, PlayerBonus.id.desc(), page=page, limit=limit)
