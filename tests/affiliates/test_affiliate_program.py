"""Affiliate applications, agents, commission plans and who may touch them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.affiliates.models import AffiliateApplication, CommissionPlan
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import AGENT, PLAYER, User
from tests.originals.test_originals_wallet import studio  # noqa: F401 - fixture

APPLY = {"channel": "website", "website": "https://slots-reviews.example", "message": "Hi"}


def audit_actions(target_type, target_id) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditLog.action)
            .where(AuditLog.target_type == target_type, AuditLog.target_id == str(target_id))
            .order_by(AuditLog.id)
        )
    )


def test_a_player_applies_once_and_staff_reject_then_approve(client, factory, token_for):
    player = factory.player()
    friend = factory.player(referred_by_id=player.id)
    headers = token_for(player)
    manager = token_for(factory.staff("manager"))

    first = client.post("/api/affiliate/apply", headers=headers, json=APPLY)
    assert first.status_code == 201, first.json
    assert first.json["data"]["status"] == "pending"
    again = client.post("/api/affiliate/apply", headers=headers, json=APPLY)
    assert (again.status_code, again.json["code"]) == (409, "CONFLICT")

    queue = client.get("/api/admin/affiliate/applications?status=pending", headers=manager).json
    assert [a["user_id"] for a in queue["data"]] == [player.id]
    app_id = queue["data"][0]["id"]
    no_reason = client.post(
        f"/api/admin/affiliate/applications/{app_id}/reject", headers=manager, json={}
    )
    assert no_reason.status_code == 400
    rejected = client.post(
        f"/api/admin/affiliate/applications/{app_id}/reject",
        headers=manager,
        json={"reason": "No traffic shown"},
    )
    assert rejected.json["data"]["status"] == "rejected"
    twice = client.post(
        f"/api/admin/affiliate/applications/{app_id}/approve", headers=manager, json={}
    )
    assert twice.status_code == 409
    mine = client.get("/api/affiliate/applications", headers=headers).json["data"]
    assert mine[0]["decision_reason"] == "No traffic shown"

    second = client.post("/api/affiliate/apply", headers=headers, json={"channel": "social"})
    assert second.status_code == 201
    approved = client.post(
        f"/api/admin/affiliate/applications/{second.json['data']['id']}/approve",
        headers=manager,
        json={},
    )
    assert approved.json["data"]["status"] == "approved", approved.json
    db.session.expire_all()
    assert db.session.get(User, player.id).role_id == AGENT
    # Their referral became their player; their player-portal token is dead.
    assert db.session.get(User, friend.id).agent_id == player.id
    assert client.get("/api/affiliate/stats", headers=headers).status_code == 401
    assert audit_actions("affiliate_application", app_id) == [
        "affiliate.apply",
        "affiliate.application_rejected",
    ]
    assert "affiliate.agent_create" in audit_actions("user", player.id)
    agents = client.get("/api/admin/affiliate/agents", headers=manager).json["data"]
    assert {"id": player.id, "players": 1}.items() <= agents[0].items()


def test_self_excluded_and_blocked_players_cannot_become_agents(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    excluded = client.post(
        "/api/responsible-gaming/self-exclude", headers=headers, json={"duration": "6_months"}
    )
    assert excluded.status_code in (200, 201), excluded.json
    refused = client.post("/api/affiliate/apply", headers=headers, json=APPLY)
    assert (refused.status_code, refused.json["code"]) == (403, "SELF_EXCLUDED")
    manager = token_for(factory.staff("manager"))
    direct = client.post(
        "/api/admin/affiliate/agents", headers=manager, json={"user_id": player.id}
    )
    assert direct.status_code == 403
    suspended = factory.player(status="suspended")
    made = client.post(
        "/api/admin/affiliate/agents", headers=manager, json={"user_id": suspended.id}
    )
    assert made.status_code == 403
    assert db.session.scalar(select(func.count(AffiliateApplication.id))) == 0
    db.session.expire_all()
    assert db.session.get(User, suspended.id).role_id == PLAYER


def test_an_applicant_who_self_excludes_while_pending_is_not_approved(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    app_id = client.post("/api/affiliate/apply", headers=headers, json=APPLY).json["data"]["id"]
    client.post(
        "/api/responsible-gaming/self-exclude", headers=headers, json={"duration": "6_months"}
    )
    manager = token_for(factory.staff("manager"))
    answer = client.post(
        f"/api/admin/affiliate/applications/{app_id}/approve", headers=manager, json={}
    )
    assert answer.status_code == 403
    db.session.expire_all()
    assert db.session.get(AffiliateApplication, app_id).status == "pending"
    assert db.session.get(User, player.id).role_id == PLAYER


def test_staff_make_a_sub_agent_and_see_the_tree(client, factory, token_for):
    manager = token_for(factory.staff("manager"))
    top = factory.staff("agent")
    player = factory.player()
    sub_player = factory.player()
    made = client.post(
        "/api/admin/affiliate/agents",
        headers=manager,
        json={"user_id": sub_player.id, "parent_agent_id": top.id, "reason": "partner"},
    )
    assert made.status_code == 201, made.json
    assert made.json["data"]["parent_agent_id"] == top.id
    with_player = factory.player(agent_id=sub_player.id)
    direct = factory.player(agent_id=top.id)
    tree = client.get("/api/admin/affiliate/tree", headers=manager).json["data"]
    node = next(n for n in tree if n["id"] == top.id)
    assert [p["id"] for p in node["players"]] == [direct.id]
    (sub,) = node["sub_agents"]
    assert (sub["id"], sub["level"], [p["id"] for p in sub["players"]]) == (
        sub_player.id,
        2,
        [with_player.id],
    )
    assert all(n["id"] != sub_player.id for n in tree)  # sub-agents are not roots
    bad_parent = client.post(
        "/api/admin/affiliate/agents",
        headers=manager,
        json={"user_id": player.id, "parent_agent_id": with_player.id},
    )
    assert bad_parent.status_code == 400
    both = client.post(
        "/api/admin/affiliate/agents", headers=manager, json={"user_id": 1, "application_id": 1}
    )
    assert both.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"revenue_share_percent": -5},
        {"revenue_share_percent": "abc"},
        {"revenue_share_percent": "101"},
        {"revenue_share_percent": "12.345"},
        {"revenue_share_percent": True},
        {"level2_share_percent": "-0.01"},
        {"cpa_amount": -5},
        {"cpa_amount": "abc"},
        {"cpa_amount": "10.001"},
        {"cpa_min_deposit": "-1"},
        {"cpa_amount": "10", "cpa_currency": "XXX1"},
        {"agent_id": 999999, "revenue_share_percent": 10},
        {},
    ],
    ids=lambda b: json.dumps(b),
)
def test_bad_plan_inputs_are_refused_and_change_nothing(client, factory, token_for, body):
    headers = token_for(factory.staff("manager"))
    answer = client.put("/api/admin/affiliate/commission", headers=headers, json=body)
    assert answer.status_code in (400, 404), answer.json
    assert answer.json["success"] is False
    assert db.session.scalar(select(func.count(CommissionPlan.id))) == 0


@pytest.mark.parametrize("field", ["revenue_share_percent", "cpa_amount"])
def test_an_infinite_number_is_refused(client, factory, token_for, field):
    headers = token_for(factory.staff("manager")) | {"Content-Type": "application/json"}
    answer = client.put(
        "/api/admin/affiliate/commission", headers=headers, data=f'{{"{field}": 1e309}}'
    )
    assert (answer.status_code, answer.json["code"]) == (400, "VALIDATION_ERROR")
    assert db.session.scalar(select(func.count(CommissionPlan.id))) == 0


def test_plans_default_and_per_agent_are_audited(client, factory, token_for):
    admin_headers = token_for(factory.staff("manager"))
    agent = factory.staff("agent")
    default = client.put(
        "/api/admin/affiliate/commission",
        headers=admin_headers,
        json={"revenue_share_percent": "25", "cpa_amount": "20.00", "cpa_min_deposit": 10},
    )
    assert default.status_code == 200, default.json
    assert default.json["data"] | {"id": 0} == {
        "id": 0,
        "agent_id": None,
        "revenue_share_percent": "25.00",
        "level2_share_percent": "0.00",
        "cpa_amount": "20.00",
        "cpa_currency": "EUR",
        "cpa_min_deposit": "10.00",
    }
    own = client.put(
        "/api/admin/affiliate/commission",
        headers=admin_headers,
        json={"agent_id": agent.id, "revenue_share_percent": "30.5", "level2_share_percent": 5},
    )
    assert own.json["data"]["revenue_share_percent"] == "30.50"
    shown = client.get(
        f"/api/admin/affiliate/commission?agent_id={agent.id}", headers=admin_headers
    ).json["data"]
    assert shown["effective"]["agent_id"] == agent.id
    assert shown["default"]["revenue_share_percent"] == "25.00"
    # Changing one field keeps the others.
    client.put(
        "/api/admin/affiliate/commission", headers=admin_headers, json={"revenue_share_percent": 20}
    )
    again = client.get("/api/admin/affiliate/commission", headers=admin_headers).json["data"]
    assert (again["default"]["revenue_share_percent"], again["default"]["cpa_amount"]) == (
        "20.00",
        "20.00",
    )
    assert (
        db.session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action == "affiliate.commission_plan")
        )
        == 3
    )


MATRIX = [
    ("GET", "/api/admin/affiliate/agents", None, "affiliates.read"),
    ("POST", "/api/admin/affiliate/agents", {"user_id": "{uid}"}, "affiliates.manage"),
    ("GET", "/api/admin/affiliate/applications", None, "affiliates.read"),
    ("POST", "/api/admin/affiliate/applications/{app}/approve", {}, "affiliates.manage"),
    (
        "POST",
        "/api/admin/affiliate/applications/{app}/reject",
        {"reason": "no site"},
        "affiliates.manage",
    ),
    ("GET", "/api/admin/affiliate/stats", None, "affiliates.read"),
    ("GET", "/api/admin/affiliate/commission", None, "affiliates.read"),
    ("PUT", "/api/admin/affiliate/commission", {"revenue_share_percent": 10}, "affiliates.manage"),
    ("GET", "/api/admin/affiliate/tree", None, "affiliates.read"),
    ("GET", "/api/admin/affiliate/commissions", None, "affiliates.read"),
]


def test_the_matrix_covers_every_affiliate_admin_route(app):
    covered = {(m, p.replace("{app}", "<int:application_id>")) for m, p, _b, _perm in MATRIX}
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/admin/affiliate")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == covered


@pytest.mark.parametrize("role", ["admin", "manager", "support", "agent", "player"])
@pytest.mark.parametrize(("method", "path", "body", "permission"), MATRIX, ids=str)
def test_affiliate_admin_role_matrix(
    client, factory, token_for, role, method, path, body, permission
):
    from app.identity.access import ROLES
    from tests.identity.test_identity_staff import ROLE_BY_NAME

    actor = factory.user(ROLE_BY_NAME[role])
    player = factory.player()
    application = client.post("/api/affiliate/apply", headers=token_for(player), json=APPLY)
    url = path.format(app=application.json["data"]["id"])
    if body and body.get("user_id") == "{uid}":
        body = {"user_id": factory.player().id}
    answer = client.open(url, method=method, headers=token_for(actor), json=body)
    granted = ROLES[ROLE_BY_NAME[role]][2]
    allowed = role != "player" and ("*" in granted or permission in granted)
    if allowed:
        assert answer.status_code in (200, 201), answer.json
    else:
        assert answer.status_code == 403, answer.json
        assert (
            db.session.get(AffiliateApplication, application.json["data"]["id"]).status == "pending"
        )


def test_the_demo_agent_has_a_plan_and_referred_players_with_activity(client, token_for, studio):  # noqa: F811
    from app.bonus.models import LoyaltyAccount
    from app.core.db import atomic
    from app.seed import seed_affiliates, seed_gateways, seed_users

    with atomic():
        seed_users()
        seed_gateways()
        first = seed_affiliates()
        again = seed_affiliates()  # idempotent
    # The agent's two referrals, and ref_cleo, referred by player1 (a player's referral reward).
    assert (len(first), again) == (3, [])
    assert first[2].startswith("ref_cleo: referred by player1")
    player1 = db.session.scalar(select(User).where(User.username == "player1"))
    assert db.session.get(LoyaltyAccount, player1.id).points == 500
    agent = db.session.scalar(select(User).where(User.username == "agent"))
    stats = client.get("/api/affiliate/stats", headers=token_for(agent)).json["data"]
    assert (stats["referrals"], stats["qualified_referrals"]) == (2, 2)
    assert stats["deposits"] == [{"currency": "EUR", "amount": "85.00"}]
    assert stats["wagered"] == [{"currency": "EUR", "amount": "27.00"}]
    assert stats["ggr"] == [{"currency": "EUR", "amount": "16.00"}]
    manager = token_for(db.session.scalar(select(User).where(User.username == "manager")))
    plan = client.get(f"/api/admin/affiliate/commission?agent_id={agent.id}", headers=manager)
    assert plan.json["data"]["effective"]["revenue_share_percent"] == "25.00"
    ana = db.session.scalar(select(User).where(User.username == "ref_ana"))
    assert db.session.get(LoyaltyAccount, ana.id).points == 20


def test_a_plan_keeps_its_cpa_currency_unless_both_amounts_move_with_it(client, factory, token_for):
    headers = token_for(factory.staff("manager"))
    url = "/api/admin/affiliate/commission"
    usd = {"cpa_amount": "30", "cpa_currency": "usd", "cpa_min_deposit": "20"}
    assert client.put(url, headers=headers, json=usd).json["data"]["cpa_currency"] == "USD"
    kept = client.put(url, headers=headers, json={"revenue_share_percent": 15}).json["data"]
    assert (kept["cpa_currency"], kept["cpa_amount"], kept["cpa_min_deposit"]) == (
        "USD",
        "30.00",
        "20.00",
    )
    half = client.put(url, headers=headers, json={"cpa_currency": "EUR", "cpa_amount": "5"})
    assert half.status_code == 400
    jpy = client.put(
        url,
        headers=headers,
        json={"cpa_currency": "JPY", "cpa_amount": "100.5", "cpa_min_deposit": "100"},
    )
    assert jpy.status_code == 400  # JPY has no minor unit
    shown = client.get(url, headers=headers).json["data"]["default"]
    assert (shown["cpa_currency"], shown["revenue_share_percent"]) == ("USD", "15.00")
