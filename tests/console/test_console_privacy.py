"""Erasure requests and e-mail verification on the console (issue 17): staff see the queue,
approve (pseudonymise) or reject with a reason, and re-send a player's verification mail."""

from __future__ import annotations

import sqlalchemy as sa

from app.core.extensions import db
from app.core.models import AuditLog, OutboxEmail
from app.identity import gdpr
from app.identity.models import ErasureRequest, User
from tests.moneykit import fund


def _audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(sa.select(AuditLog).where(AuditLog.action == action)))


def test_the_queue_approve_and_reject(signed_in, factory):
    leaving = factory.player(username="leaving_ada")
    staying = factory.player(username="staying_bo")
    first = gdpr.request_erasure(leaving, "moving on")
    second = gdpr.request_erasure(staying, "changed my mind")
    manager, staff = signed_in("manager")
    page = manager.get("/admin/erasure-requests").get_data(as_text=True)
    assert f'id="erasure-row-{first.id}"' in page
    assert "leaving_ada" in page
    assert "moving on" in page

    refused = manager.post(f"/admin/erasure-requests/{second.id}/reject", data={"note": " "})
    assert refused.status_code == 302
    db.session.expire_all()
    assert db.session.get(ErasureRequest, second.id).status == "pending"  # a reason is needed
    manager.post(f"/admin/erasure-requests/{second.id}/reject", data={"note": "Open dispute"})
    manager.post(f"/admin/erasure-requests/{first.id}/approve", data={"note": "ok"})
    db.session.expire_all()
    assert db.session.get(ErasureRequest, second.id).status == "rejected"
    assert db.session.get(ErasureRequest, first.id).status == "completed"
    assert db.session.get(User, leaving.id).username == f"erased-{leaving.id}"
    [erasure] = _audits("user.erasure")
    assert erasure.actor_id == staff.user.id
    done = manager.get("/admin/erasure-requests?status=completed").get_data(as_text=True)
    assert f'id="erasure-row-{first.id}"' in done


def test_an_erasure_refused_by_its_checks_says_why_and_changes_nothing(signed_in, factory):
    rich = factory.player()
    request = gdpr.request_erasure(rich, "bye")
    fund(rich.id, 25_00)  # money arrived after the request (a late win, a refund)
    manager, _ = signed_in("manager")
    answer = manager.post(f"/admin/erasure-requests/{request.id}/approve", data={})
    assert answer.status_code == 302
    db.session.expire_all()
    assert db.session.get(ErasureRequest, request.id).status == "pending"
    assert db.session.get(User, rich.id).erased_at is None
    page = manager.get("/admin/erasure-requests").get_data(as_text=True)
    assert "flash-error" in page


def test_support_sees_the_queue_but_cannot_decide(signed_in, factory):
    request = gdpr.request_erasure(factory.player(), None)
    support, _ = signed_in("support")
    page = support.get("/admin/erasure-requests").get_data(as_text=True)
    assert f'id="erasure-row-{request.id}"' in page
    assert "/approve" not in page
    assert support.post(f"/admin/erasure-requests/{request.id}/approve").status_code == 403
    assert support.post(f"/admin/erasure-requests/{request.id}/reject").status_code == 403
    assert db.session.get(ErasureRequest, request.id).status == "pending"


def test_staff_resend_a_players_verification_mail_within_its_limits(signed_in, factory):
    player = factory.player(email="unverified@casino.test", email_verified_at=None)
    manager, staff = signed_in("manager")
    profile = manager.get(f"/admin/players/{player.id}").get_data(as_text=True)
    assert 'id="resend-verification"' in profile

    def mails() -> int:
        return db.session.scalar(
            sa.select(sa.func.count(OutboxEmail.id)).where(
                OutboxEmail.to_address == "unverified@casino.test"
            )
        )

    before = mails()
    assert manager.post(f"/admin/players/{player.id}/resend-verification").status_code == 302
    assert mails() == before + 1
    [row] = _audits("staff.verification_resend")
    assert (row.actor_id, row.target_id) == (staff.user.id, str(player.id))
    # The player's own resend spacing applies to staff too: no mail flood.
    manager.post(f"/admin/players/{player.id}/resend-verification")
    assert mails() == before + 1
    assert len(_audits("staff.verification_resend")) == 1
    support, _ = signed_in("support")
    assert support.post(f"/admin/players/{player.id}/resend-verification").status_code == 403
