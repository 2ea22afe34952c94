"""Referrals, affiliate applications, agents, the agent tree and commission plans.

A player registered with someone's ``ref_code`` has ``referred_by_id`` set to them, and
``agent_id`` too when the referrer is an Agent. A referral is **qualified** once they made a
completed deposit. Commissions are paid by ``app.affiliates.commissions`` (the job) and shown
here as what the ledger holds (type ``commission``).

Invariants:
* A player's commission-bearing agent is ``users.agent_id``; an Agent's own ``agent_id`` is
  their parent agent (level 2 of the commission plan).
* A player has at most one *pending* application (partial unique index). Approving one makes
  the user an Agent (role change, player sessions revoked: agents sign in at the staff
  portal); the players they referred before become theirs (``agent_id``). Self-excluded,
  blocked or non-player accounts can neither apply nor be made agents.
* Every staff decision (approve, reject, make agent, plan change) is audited in the same
  transaction. Percentages are stored as basis points (0..10000), amounts in minor units.

A referrer sees their referrals' usernames, join dates and activity, never e-mails or
balances.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.exc import IntegrityError

from app.affiliates.models import APPLICATION_CHANNELS, AffiliateApplication, CommissionPlan
from app.compliance import responsible_gaming as rg
from app.core import audit, notifications
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, lock_one, page_of
from app.core.errors import AccessDenied, Conflict, NotFound, SelfExcluded, ValidationError
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor, to_decimal
from app.identity import accounts as identity
from app.identity.models import AGENT, PLAYER, User
from app.payments.models import PaymentTransaction
from app.play import guard as play_guard
from app.play.models import GameRound
from app.wallet.models import LedgerTransaction


def _mine(user: User):
    # Agents own the players attached to them as agent; everyone owns whom they referred.
    if user.role_id == AGENT:
        return or_(User.agent_id == user.id, User.referred_by_id == user.id)
    return User.referred_by_id == user.id


def _by_currency(rows) -> list[dict[str, Any]]:
    return [{"currency": cur, "amount": format_minor(int(total or 0), cur)} for cur, total in rows]


def stats(user: User) -> dict[str, Any]:
    referred = select(User.id).where(_mine(user)).scalar_subquery()
    total = db.session.scalar(select(func.count(User.id)).where(_mine(user)))
    deposits = db.session.execute(
        select(PaymentTransaction.currency, func.sum(PaymentTransaction.amount_minor))
        .where(
            PaymentTransaction.user_id.in_(referred),
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
        )
        .group_by(PaymentTransaction.currency)
    ).all()
    qualified = db.session.scalar(
        select(func.count(func.distinct(PaymentTransaction.user_id))).where(
            PaymentTransaction.user_id.in_(referred),
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
        )
    )
    play = db.session.execute(
        select(
            GameRound.currency,
            func.sum(GameRound.total_bet - GameRound.total_refund),
            func.sum(GameRound.total_win),
        )
        .where(GameRound.user_id.in_(referred))
        .group_by(GameRound.currency)
    ).all()
    commissions = db.session.execute(
        select(LedgerTransaction.currency, func.sum(LedgerTransaction.cash_delta))
        .where(LedgerTransaction.user_id == user.id, LedgerTransaction.type == "commission")
        .group_by(LedgerTransaction.currency)
    ).all()
    base = current_app.config.get("PUBLIC_URL", "")
    return {
        "referral_code": user.referral_code,
        "referral_link": f"{base}/register?ref={user.referral_code}"
        if user.referral_code
        else None,
        "is_agent": user.role_id == AGENT,
        "referrals": total,
        "qualified_referrals": qualified,
        "deposits": _by_currency(deposits),
        "wagered": _by_currency((cur, bet) for cur, bet, _win in play),
        "ggr": _by_currency((cur, (bet or 0) - (win or 0)) for cur, bet, win in play),
        "commissions": _by_currency(commissions),
    }


def referrals(user: User, page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    total = db.session.execute(select(func.count(User.id)).where(_mine(user))).scalar_one()
    dep = (
        select(
            PaymentTransaction.user_id.label("uid"),
            func.count(PaymentTransaction.id).label("n"),
            func.min(PaymentTransaction.processed_at).label("first_at"),
        )
        .where(PaymentTransaction.type == "deposit", PaymentTransaction.status == "completed")
        .group_by(PaymentTransaction.user_id)
        .subquery()
    )
    rows = db.session.execute(
        select(User, dep.c.n, dep.c.first_at)
        .outerjoin(dep, and_(dep.c.uid == User.id))
        .where(_mine(user))
        .order_by(User.created_at.desc(), User.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    ).all()
    out = [
        {
            "id": u.id,
            "username": u.username,
            "country": u.country,
            "joined_at": u.created_at.isoformat(),
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            "qualified": bool(n),
            "deposits_count": int(n or 0),
            "first_deposit_at": first_at.isoformat() if first_at else None,
            "via": "agent" if u.agent_id == user.id else "referral",
        }
        for u, n, first_at in rows
    ]
    return out, total


# --- applications ---------------------------------------------------------------------------


def _check_can_become_agent(user: User, field: str = "user_id") -> None:
    if user.role_id == AGENT:
        raise Conflict("This account is already an agent")
    if user.role_id != PLAYER:
        raise AccessDenied("Only player accounts can become agents")
    if play_guard.status_blocks(user.status, user.status_until) or user.status != "active":
        raise AccessDenied("This account is blocked and cannot become an agent")
    if rg.is_excluded(user.id):
        raise SelfExcluded("A self-excluded account cannot become an agent")


def apply(
    user: User,
    *,
    channel: str,
    website: str | None = None,
    audience: str | None = None,
    message: str | None = None,
) -> AffiliateApplication:
    """A player applies to become an agent; one pending application at a time."""
    if channel not in APPLICATION_CHANNELS:
        raise ValidationError.field(
            "channel", f"channel is one of {', '.join(APPLICATION_CHANNELS)}"
        )
    if channel == "website" and not (website or "").strip():
        raise ValidationError.field("website", "A website application names the website")
    try:
        with atomic():
            user = lock_existing(User, User.id == user.id)
            _check_can_become_agent(user)
            if _pending_of(user.id) is not None:
                raise Conflict("You already have an application under review")
            app_row = AffiliateApplication(
                user_id=user.id,
                channel=channel,
                website=(website or "").strip() or None,
                audience=(audience or "").strip() or None,
                message=(message or "").strip() or None,
                status="pending",
            )
            db.session.add(app_row)
            db.session.flush()  # the id goes into the audit row
            audit.record(
                "affiliate.apply",
                actor=user,
                target_type="affiliate_application",
                target_id=app_row.id,
                after={"channel": channel, "website": app_row.website},
            )
    except IntegrityError:
        # A concurrent application won the partial unique index.
        raise Conflict("You already have an application under review") from None
    return app_row


def _pending_of(user_id: int) -> AffiliateApplication | None:
    return db.session.scalar(
        select(AffiliateApplication).where(
            AffiliateApplication.user_id == user_id, AffiliateApplication.status == "pending"
        )
    )


def my_applications(user: User) -> list[AffiliateApplication]:
    return list(
        db.session.scalars(
            select(AffiliateApplication)
            .where(AffiliateApplication.user_id == user.id)
            .order_by(AffiliateApplication.id.desc())
        )
    )


def list_applications(
    status: str | None, page: int, limit: int
) -> tuple[list[AffiliateApplication], int]:
    query = select(AffiliateApplication)
    if status:
        query = query.where(AffiliateApplication.status == status)
    return page_of(query, AffiliateApplication.id.desc(), page=page, limit=limit)


def application_json(a: AffiliateApplication) -> dict[str, Any]:
    user = db.session.get(User, a.user_id)
    return {
        "id": a.id,
        "user_id": a.user_id,
        "username": user.username if user else None,
        "status": a.status,
        "channel": a.channel,
        "website": a.website,
        "audience": a.audience,
        "message": a.message,
        "decision_reason": a.decision_reason,
        "reviewed_by_id": a.reviewed_by_id,
        "reviewed_at": a.reviewed_at.isoformat() if a.reviewed_at else None,
        "created_at": a.created_at.isoformat(),
    }


def decide_application(
    actor: User,
    application_id: int,
    *,
    approve: bool,
    reason: str | None = None,
    parent_agent_id: int | None = None,
) -> AffiliateApplication:
    """Approve (the applicant becomes an Agent) or reject (reason required) a pending
    application; audited."""
    reason = (reason or "").strip() or None
    if not approve and not reason:
        raise ValidationError.field("reason", "A rejection needs a reason")
    with atomic():
        row = lock_one(AffiliateApplication, AffiliateApplication.id == application_id)
        if row is None:
            raise NotFound("No such application")
        if row.status != "pending":
            raise Conflict(f"The application was already {row.status}")
        row.reviewed_by_id, row.reviewed_at, row.decision_reason = actor.id, utcnow(), reason
        if approve:
            _make_agent(actor, row.user_id, parent_agent_id, reason or "application approved")
            row.status = "approved"
        else:
            row.status = "rejected"
        audit.record(
            f"affiliate.application_{row.status}",
            actor=actor,
            target_type="affiliate_application",
            target_id=row.id,
            before={"status": "pending"},
            after={"status": row.status, "user_id": row.user_id},
            reason=reason,
        )
        _notify_applicant(row)
    return row


def _notify_applicant(row: AffiliateApplication) -> None:
    if row.status == "approved":
        title, text = (
            Msg("Affiliate application approved"),
            Msg("You are now an agent. Sign in to the agent area with your usual credentials."),
        )
    else:
        title = Msg("Affiliate application declined")
        text = Msg(
            "Your affiliate application was declined: %(reason)s", reason=row.decision_reason
        )
    notifications.notify(row.user_id, "affiliate", title, text, data={"application_id": row.id})


# --- agents ---------------------------------------------------------------------------------


def make_agent(
    actor: User, user_id: int, parent_agent_id: int | None = None, reason: str | None = None
) -> User:
    """Staff make an existing player an agent (a pending application of theirs is approved)."""
    with atomic():
        pending = _pending_of(user_id)
        if pending is not None:
            pending = lock_existing(AffiliateApplication, AffiliateApplication.id == pending.id)
            pending.status, pending.reviewed_by_id = "approved", actor.id
            pending.reviewed_at, pending.decision_reason = utcnow(), reason
        user = _make_agent(actor, user_id, parent_agent_id, reason)
    return user


def _make_agent(actor: User, user_id: int, parent_agent_id: int | None, reason: str | None) -> User:
    user = lock_one(User, User.id == user_id)
    if user is None:
        raise NotFound("No such user")
    _check_can_become_agent(user)
    parent = None
    if parent_agent_id is not None:
        parent = db.session.get(User, parent_agent_id)
        if parent is None or parent.role_id != AGENT:
            raise ValidationError.field("parent_agent_id", "Not an agent account")
        if parent.status != "active":
            raise ValidationError.field("parent_agent_id", "The parent agent is not active")
    elif user.agent_id is not None:
        # A player who joined through an agent becomes that agent's sub-agent.
        parent = db.session.get(User, user.agent_id)
    before = {"role_id": user.role_id, "agent_id": user.agent_id}
    user.role_id = AGENT
    user.agent_id = parent.id if parent is not None and parent.role_id == AGENT else None
    # Their referrals become their players (commission follows ``agent_id``).
    moved = (
        db.session.query(User)
        .filter(User.referred_by_id == user.id, User.agent_id.is_(None), User.role_id == PLAYER)
        .update({User.agent_id: user.id}, synchronize_session=False)
    )
    # Player-portal tokens die: agents sign in at the staff portal.
    identity.revoke_sessions(user, "became_agent", cut_off=True)
    audit.record(
        "affiliate.agent_create",
        actor=actor,
        target_type="user",
        target_id=user.id,
        before=before,
        after={"role_id": AGENT, "agent_id": user.agent_id, "players_attached": moved},
        reason=reason,
    )
    db.session.flush()
    return user


def _agent(agent_id: int) -> User:
    agent = db.session.get(User, agent_id)
    if agent is None or agent.role_id != AGENT:
        raise NotFound("No such agent")
    return agent


def list_agents(page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    agents, total = page_of(
        select(User).where(User.role_id == AGENT), User.id.desc(), page=page, limit=limit
    )
    return agents_json(agents), total


def agents_json(agents: list[User]) -> list[dict[str, Any]]:
    """Agents with parent, player and sub-agent counts and plan kind (three queries)."""
    ids = [a.id for a in agents]
    counts = dict(
        db.session.execute(
            select(User.agent_id, func.count(User.id))
            .where(User.agent_id.in_(ids), User.role_id == PLAYER)
            .group_by(User.agent_id)
        ).all()
    )
    subs = dict(
        db.session.execute(
            select(User.agent_id, func.count(User.id))
            .where(User.agent_id.in_(ids), User.role_id == AGENT)
            .group_by(User.agent_id)
        ).all()
    )
    own_plans = set(
        db.session.scalars(select(CommissionPlan.agent_id).where(CommissionPlan.agent_id.in_(ids)))
    )
    return [
        {
            "id": a.id,
            "username": a.username,
            "status": a.status,
            "referral_code": a.referral_code,
            "parent_agent_id": a.agent_id,
            "players": int(counts.get(a.id, 0)),
            "sub_agents": int(subs.get(a.id, 0)),
            "plan": "own" if a.id in own_plans else "default",
            "created_at": a.created_at.isoformat(),
        }
        for a in agents
    ]


# --- commission plans -----------------------------------------------------------------------


def _bps(field: str, value: Any) -> int:
    """A percentage 0..100 with at most two decimals, as basis points."""
    try:
        pct = to_decimal(value)
    except MoneyError as exc:
        raise ValidationError.field(field, str(exc)) from None
    if pct < 0 or pct > 100:
        raise ValidationError.field(field, "A percentage is between 0 and 100")
    bps = pct * 100
    if bps != bps.to_integral_value():
        raise ValidationError.field(field, "A percentage has at most two decimals")
    return int(bps)


def _minor(field: str, value: Any, currency: str) -> int:
    try:
        return parse_minor(value, currency)
    except MoneyError as exc:
        raise ValidationError.field(field, str(exc)) from None


def plan_for(agent_id: int | None) -> CommissionPlan | None:
    """The agent's own plan, else the default plan, else ``None`` (nothing is paid)."""
    if agent_id is not None:
        own = db.session.scalar(select(CommissionPlan).where(CommissionPlan.agent_id == agent_id))
        if own is not None:
            return own
    return db.session.scalar(select(CommissionPlan).where(CommissionPlan.agent_id.is_(None)))


def set_plan(actor: User, values: dict[str, Any]) -> CommissionPlan:
    """Create or replace the default plan (``agent_id`` absent/null) or one agent's plan.

    ``revenue_share_percent`` (level 1, NGR of the agent's players), ``level2_share_percent``
    (NGR of the players of the agent's direct sub-agents), ``cpa_amount`` + ``cpa_currency``
    per referral whose first deposit is at least ``cpa_min_deposit``. Fields left out keep
    their value (or 0 for a new plan)."""
    agent_id = values.get("agent_id")
    if agent_id is not None:
        _agent(int(agent_id))
    try:
        with atomic():
            return _set_plan(actor, agent_id, values)
    except IntegrityError:
        # Two first PUTs for the same plan raced on the unique index: the other one won.
        raise Conflict("The plan was created concurrently; send the change again") from None


def _set_plan(actor: User, agent_id: int | None, values: dict[str, Any]) -> CommissionPlan:
    plan = db.session.scalar(
        select(CommissionPlan)
        .where(
            CommissionPlan.agent_id == agent_id
            if agent_id is not None
            else CommissionPlan.agent_id.is_(None)
        )
        .with_for_update()
    )
    # Amounts are read in the currency the plan will have (left out: the plan's own).
    current = plan.cpa_currency if plan is not None else "EUR"
    try:
        currency = normalize_currency(values.get("cpa_currency") or current)
    except MoneyError as exc:
        raise ValidationError.field("cpa_currency", str(exc)) from None
    changes: dict[str, Any] = {}
    if values.get("revenue_share_percent") is not None:
        changes["revenue_share_bps"] = _bps(
            "revenue_share_percent", values["revenue_share_percent"]
        )
    if values.get("level2_share_percent") is not None:
        changes["level2_share_bps"] = _bps("level2_share_percent", values["level2_share_percent"])
    if values.get("cpa_amount") is not None:
        changes["cpa_amount"] = _minor("cpa_amount", values["cpa_amount"], currency)
    if values.get("cpa_min_deposit") is not None:
        changes["cpa_min_deposit"] = _minor("cpa_min_deposit", values["cpa_min_deposit"], currency)
    if not changes:
        raise ValidationError.field("revenue_share_percent", "Nothing to change")
    if (
        plan is not None
        and currency != plan.cpa_currency
        and not {
            "cpa_amount",
            "cpa_min_deposit",
        }
        <= set(changes)
    ):
        raise ValidationError.field(
            "cpa_currency", "Changing the CPA currency needs cpa_amount and cpa_min_deposit in it"
        )
    before = plan_json(plan) if plan is not None else None
    if plan is None:
        plan = CommissionPlan(
            agent_id=agent_id,
            revenue_share_bps=0,
            level2_share_bps=0,
            cpa_amount=0,
            cpa_min_deposit=0,
        )
        db.session.add(plan)
    plan.cpa_currency = currency
    for key, value in changes.items():
        setattr(plan, key, value)
    plan.updated_by_id = actor.id
    db.session.flush()  # the id goes into the audit row
    audit.record(
        "affiliate.commission_plan",
        actor=actor,
        target_type="commission_plan",
        target_id=plan.id,
        before=before,
        after=plan_json(plan),
    )
    return plan


def _pct(bps: int) -> str:
    return str((Decimal(bps) / 100).quantize(Decimal("0.01")))


def plan_json(plan: CommissionPlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "id": plan.id,
        "agent_id": plan.agent_id,
        "revenue_share_percent": _pct(plan.revenue_share_bps),
        "level2_share_percent": _pct(plan.level2_share_bps),
        "cpa_amount": format_minor(plan.cpa_amount, plan.cpa_currency),
        "cpa_currency": plan.cpa_currency,
        "cpa_min_deposit": format_minor(plan.cpa_min_deposit, plan.cpa_currency),
    }


# --- staff statistics and the tree ----------------------------------------------------------

#: Ledger types that make up a player's NGR (see ``app.affiliates.commissions``).
NGR_TYPES = ("bet", "win", "jackpot_win", "refund", "rollback", "bonus_grant", "bonus_forfeit")


def ngr_expression():
    """Per ledger row: what it adds to the operator's NGR (stakes - refunds - wins - bonus
    cost). Every listed type's wallet movement is the opposite of the operator's gain."""
    lt = LedgerTransaction
    return case(
        (lt.type.in_(NGR_TYPES), -(lt.cash_delta + lt.bonus_delta)),
        else_=0,
    )


def agent_stats(agent_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per agent: players, qualified players, deposits, NGR (all time, from the ledger) and
    commissions paid, per currency."""
    out: dict[int, dict[str, Any]] = {
        aid: {"referrals": 0, "qualified": 0, "deposits": [], "ngr": [], "commissions": []}
        for aid in agent_ids
    }
    if not agent_ids:
        return out
    players = (
        select(User.id.label("uid"), User.agent_id.label("aid"))
        .where(User.agent_id.in_(agent_ids), User.role_id == PLAYER)
        .subquery()
    )
    for aid, n in db.session.execute(
        select(players.c.aid, func.count(players.c.uid)).group_by(players.c.aid)
    ):
        out[aid]["referrals"] = int(n)
    pt = PaymentTransaction
    completed = and_(pt.type == "deposit", pt.status == "completed")
    for aid, n in db.session.execute(
        select(players.c.aid, func.count(func.distinct(pt.user_id)))
        .join(pt, and_(pt.user_id == players.c.uid, completed))
        .group_by(players.c.aid)
    ):
        out[aid]["qualified"] = int(n)
    for aid, cur, total in db.session.execute(
        select(players.c.aid, pt.currency, func.sum(pt.amount_minor))
        .join(pt, and_(pt.user_id == players.c.uid, completed))
        .group_by(players.c.aid, pt.currency)
    ):
        out[aid]["deposits"].append({"currency": cur, "amount": format_minor(int(total), cur)})
    lt = LedgerTransaction
    for aid, cur, total in db.session.execute(
        select(players.c.aid, lt.currency, func.sum(ngr_expression()))
        .join(lt, and_(lt.user_id == players.c.uid, lt.type.in_(NGR_TYPES)))
        .group_by(players.c.aid, lt.currency)
    ):
        out[aid]["ngr"].append({"currency": cur, "amount": format_minor(int(total or 0), cur)})
    for aid, cur, total in db.session.execute(
        select(lt.user_id, lt.currency, func.sum(lt.cash_delta))
        .where(lt.user_id.in_(agent_ids), lt.type == "commission")
        .group_by(lt.user_id, lt.currency)
    ):
        out[aid]["commissions"].append({"currency": cur, "amount": format_minor(int(total), cur)})
    return out


def staff_stats(page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    agents, total = page_of(
        select(User).where(User.role_id == AGENT), User.id.desc(), page=page, limit=limit
    )
    figures = agent_stats([a.id for a in agents])
    return [
        {"agent_id": a.id, "username": a.username, "parent_agent_id": a.agent_id} | figures[a.id]
        for a in agents
    ], total


#: How deep the tree goes below its root, and how many players one node lists.
TREE_DEPTH = 5
TREE_PLAYERS = 100


def tree(root_agent_id: int | None = None) -> list[dict[str, Any]]:
    """Agent -> sub-agents -> players. Without a root: every top-level agent (no parent)."""
    if root_agent_id is not None:
        roots = [_agent(root_agent_id)]
    else:
        parent = db.aliased(User)
        roots = list(
            db.session.scalars(
                select(User)
                .outerjoin(parent, parent.id == User.agent_id)
                .where(
                    User.role_id == AGENT,
                    or_(User.agent_id.is_(None), parent.role_id != AGENT),
                )
                .order_by(User.id)
            )
        )
    return [_node(a, 0, {a.id}) for a in roots]


def _node(agent: User, depth: int, seen: set[int]) -> dict[str, Any]:
    players = list(
        db.session.scalars(
            select(User)
            .where(User.agent_id == agent.id, User.role_id == PLAYER)
            .order_by(User.id)
            .limit(TREE_PLAYERS)
        )
    )
    player_count = db.session.scalar(
        select(func.count(User.id)).where(User.agent_id == agent.id, User.role_id == PLAYER)
    )
    subs = []
    if depth < TREE_DEPTH:
        for sub in db.session.scalars(
            select(User).where(User.agent_id == agent.id, User.role_id == AGENT).order_by(User.id)
        ):
            if sub.id not in seen:  # a cycle in hand-edited data must not loop forever
                subs.append(_node(sub, depth + 1, seen | {sub.id}))
    return {
        "id": agent.id,
        "username": agent.username,
        "status": agent.status,
        "level": depth + 1,
        "players_total": int(player_count or 0),
        "players": [
            {
                "id": p.id,
                "username": p.username,
                "status": p.status,
                "joined_at": p.created_at.isoformat(),
            }
            for p in players
        ],
        "sub_agents": subs,
    }
