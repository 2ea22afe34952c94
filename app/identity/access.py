"""Roles and permissions as data (platform guide 4.4.2).

Invariants: permissions are checked by name through ``User.can``; the table below is the only
place that says which role holds which permission, and ``ensure_roles()`` writes it to the DB.
"""

from __future__ import annotations

from app.core.extensions import db
from app.identity.models import ADMIN, AGENT, MANAGER, PLAYER, SUPPORT, Role

#: Every permission a staff endpoint or console page may require.
PERMISSIONS = {
    "players.read": "See player accounts, balances and history",
    "players.manage": "Ban, suspend, reset passwords, force logout, edit players",
    "players.notes": "Add notes to player accounts",
    "balances.adjust": "Credit or debit a player's balance manually",
    "kyc.read": "See KYC submissions and documents",
    "kyc.review": "Approve or reject KYC submissions",
    "withdrawals.read": "See withdrawal and deposit queues",
    "withdrawals.approve": "Approve or reject withdrawals",
    "transactions.read": "See ledger transactions and bets",
    "games.manage": "Manage games, providers and imports",
    "callbacks.read": "See the provider callback log",
    "callbacks.replay": "Replay a logged provider callback",
    "promotions.manage": "Manage promotions, tournaments, jackpots and lotteries",
    "reports.read": "See financial, player and provider reports",
    "support.manage": "Answer and manage support tickets",
    "affiliates.read": "See agents, affiliate applications, agent statistics and the agent tree",
    "affiliates.manage": "Decide affiliate applications, make agents, set commission plans",
    "affiliates.own": "See the agent's own referred players and commissions",
    "crm.manage": "Manage CRM segments and broadcasts",
    "content.manage": "Edit and publish pages, FAQ, announcements and banners",
    "risk.read": "See AML and risk flags",
    "settings.manage": "Change platform settings (maintenance, limits, IP lists, gateways)",
    "staff.manage": "Create staff accounts and change roles",
    "audit.read": "Read the audit log",
    "jobs.manage": "See and re-run background jobs",
    "exports.own": "Queue CSV exports of what one may read, and download one's own",
}

ROLES: dict[int, tuple[str, str, list[str]]] = {
    ADMIN: ("Admin", "Full access to the platform", ["*"]),
    PLAYER: ("Player", "A casino player", []),
    AGENT: (
        "Agent",
        "An affiliate agent who manages referred players",
        ["affiliates.own"],
    ),
    MANAGER: (
        "Manager",
        "Operations manager: players, money decisions, games, promotions, reports",
        [
            "players.read",
            "players.manage",
            "players.notes",
            "balances.adjust",
            "kyc.read",
            "kyc.review",
            "withdrawals.read",
            "withdrawals.approve",
            "transactions.read",
            "games.manage",
            "callbacks.read",
            "promotions.manage",
            "reports.read",
            "support.manage",
            "affiliates.read",
            "affiliates.manage",
            "crm.manage",
            "content.manage",
            "risk.read",
            "audit.read",
            "exports.own",
        ],
    ),
    SUPPORT: (
        "Support",
        # The platform guide's "Tickets, KYC, user support": Support reviews KYC; money
        # decisions (withdrawals, adjustments) stay with Manager and Admin.
        "Customer support: reads players, reviews KYC, manages tickets",
        [
            "players.read",
            "players.notes",
            "kyc.read",
            "kyc.review",
            "support.manage",
            "transactions.read",
            "exports.own",
        ],
    ),
}


def ensure_roles() -> None:
    """Upsert the role table from ``ROLES`` (caller owns the transaction)."""
    for role_id, (name, description, permissions) in ROLES.items():
        role = db.session.get(Role, role_id)
        if role is None:
            db.session.add(
                Role(id=role_id, name=name, description=description, permissions=permissions)
            )
        else:
            role.name, role.description, role.permissions = name, description, permissions


def role_id_from_name(name: str) -> int:
    for role_id, (role_name, _desc, _perms) in ROLES.items():
        if role_name.lower() == name.strip().lower():
            return role_id
    raise ValueError(f"unknown role {name!r}; one of {', '.join(r[0] for r in ROLES.values())}")
