"""Affiliates page: the application queue with audited decisions, agents with their figures."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.affiliates import program as affiliates
from app.affiliates.models import AffiliateApplication
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import AGENT, User

HX = {"HX-Request": "true"}


def _apply(factory, **kw) -> AffiliateApplication:
    player = factory.player(**kw)
    return affiliates.apply(player, channel="website", website="https://casino-tips.example")


@pytest.mark.parametrize(
    ("role", "page", "decide"),
    [("admin", 200, 200), ("manager", 200, 200), ("support", 403, 403), ("agent", 403, 403)],
)
def test_who_may_see_and_decide(signed_in, factory, role, page, decide):
    application = _apply(factory)
    client, _staff = signed_in(role)
    assert client.get("/admin/affiliates").status_code == page
    url = f"/admin/affiliates/applications/{application.id}/approve"
    assert client.get(url).status_code == decide
    nav = client.get("/admin/").get_data(as_text=True)
    assert (">Affiliates</a>" in nav) == (page == 200)


def test_the_queue_lists_pending_applications_and_agents_with_figures(signed_in, factory):
    client, _manager = signed_in("manager")
    first = _apply(factory, username="first_applicant")
    _apply(factory, username="second_applicant")
    agent = factory.staff("agent", username="agent_smith")
    factory.player(agent_id=agent.id)
    html = client.get("/admin/affiliates").get_data(as_text=True)
    assert html.index("first_applicant") < html.index("second_applicant")
    assert f'id="aff-row-{first.id}"' in html
    assert f'id="agent-{agent.id}"' in html
    assert "agent_smith" in html
    assert "none (agents without a plan of their own are not paid)" in html
    assert "first_applicant" not in client.get("/admin/affiliates?status=approved").get_data(
        as_text=True
    )


def test_a_rejection_needs_a_reason_and_an_approval_makes_an_agent(signed_in, factory):
    client, _manager = signed_in("manager")
    rejected = _apply(factory, username="no_site")
    url = f"/admin/affiliates/applications/{rejected.id}/reject"
    empty = client.post(url, data={"reason": "", "context": "row"}, headers=HX)
    assert empty.headers["HX-Retarget"] == "#modal-root"
    assert db.session.get(AffiliateApplication, rejected.id).status == "pending"
    done = client.post(url, data={"reason": "Site not found", "context": "row"}, headers=HX)
    assert f'id="aff-row-{rejected.id}"' in done.get_data(as_text=True)
    assert "Site not found" in done.get_data(as_text=True)

    approved = _apply(factory, username="big_streamer")
    page = client.post(
        f"/admin/affiliates/applications/{approved.id}/approve", data={"context": "row"}
    )
    assert page.status_code == 302
    db.session.expire_all()
    assert db.session.get(AffiliateApplication, approved.id).status == "approved"
    assert db.session.get(User, approved.user_id).role_id == AGENT
    actions = set(
        db.session.scalars(select(AuditLog.action).where(AuditLog.action.like("affiliate.%"))).all()
    )
    assert actions >= {
        "affiliate.application_rejected",
        "affiliate.application_approved",
        "affiliate.agent_create",
    }
    again = client.post(
        f"/admin/affiliates/applications/{approved.id}/reject",
        data={"reason": "Changed my mind", "context": "row"},
        headers=HX,
    )
    assert "already approved" in again.get_data(as_text=True)
    assert (
        db.session.scalar(
            select(func.count(AuditLog.id)).where(
                AuditLog.action == "affiliate.application_rejected"
            )
        )
        == 1
    )
