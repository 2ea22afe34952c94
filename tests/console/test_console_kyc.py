"""KYC review queue: pending first, documents behind the permission check, audited decisions."""

from __future__ import annotations

from sqlalchemy import func, select

from app.compliance.models import KycSubmission
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from tests.console.seeding import kyc_submission
from tests.payments_helpers import pdf_bytes, png_bytes

HX = {"HX-Request": "true"}


def _audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_the_queue_shows_pending_submissions_oldest_first_and_hides_decided_ones(
    signed_in, factory
):
    client, manager = signed_in("manager")
    first = kyc_submission(factory.player(username="first_in"))
    second = kyc_submission(factory.player(username="second_in"))
    decided = kyc_submission(factory.player(username="already_done"))
    from app.compliance import kyc

    kyc.approve(decided.id, manager.user)
    html = client.get("/admin/kyc").get_data(as_text=True)
    assert html.index(f'id="kyc-row-{first.id}"') < html.index(f'id="kyc-row-{second.id}"')
    assert "already_done" not in html
    approved = client.get("/admin/kyc?status=approved").get_data(as_text=True)
    assert f'id="kyc-row-{decided.id}"' in approved
    assert "second_in" not in approved


def test_the_submission_page_previews_images_inline_and_offers_pdfs_for_download(
    signed_in, factory
):
    client, _ = signed_in("support")
    submission = kyc_submission(factory.player(username="doc_owner"))
    passport, bill = submission.documents
    html = client.get(f"/admin/kyc/{submission.id}").get_data(as_text=True)
    assert f'<img src="/admin/kyc/documents/{passport.id}"' in html
    assert f'href="/admin/kyc/documents/{bill.id}" download' in html
    assert "uploaded" in html  # history rows
    assert 'data-action="approve"' in html  # Support reviews KYC (the guide's role table)

    image = client.get(f"/admin/kyc/documents/{passport.id}")
    assert image.status_code == 200
    assert image.data == png_bytes()
    assert image.mimetype == "image/png"
    assert image.headers["Content-Disposition"].startswith("inline;")
    assert image.headers["Cache-Control"] == "no-store"
    pdf = client.get(f"/admin/kyc/documents/{bill.id}")
    assert pdf.data == pdf_bytes()
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    reads = _audits("kyc.document.download")
    assert sorted(int(r.target_id) for r in reads) == sorted([passport.id, bill.id])


def test_documents_are_refused_without_the_permission_and_nothing_is_read(
    signed_in, client, factory
):
    submission = kyc_submission(factory.player())
    doc = submission.documents[0]
    anonymous = client.get(f"/admin/kyc/documents/{doc.id}")
    assert anonymous.status_code == 302
    assert "/admin/login" in anonymous.headers["Location"]
    agent, _ = signed_in("agent")
    refused = agent.get(f"/admin/kyc/documents/{doc.id}")
    assert refused.status_code == 403
    assert png_bytes() != refused.data
    assert _audits("kyc.document.download") == []
    support, _ = signed_in("support")
    assert support.get("/admin/kyc/documents/999999").status_code == 404


def test_a_manager_approves_from_the_queue_and_the_row_is_swapped(signed_in, factory, events):
    client, manager = signed_in("manager")
    player = factory.player(username="verify_me")
    submission = kyc_submission(player)
    modal = client.get(f"/admin/kyc/{submission.id}/approve?context=row", headers=HX)
    assert modal.status_code == 200
    assert f'hx-target="#kyc-row-{submission.id}"' in modal.get_data(as_text=True)
    response = client.post(
        f"/admin/kyc/{submission.id}/approve",
        data={"note": "Documents match", "context": "row"},
        headers=HX,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<tr id="kyc-row-{submission.id}">' in html
    assert "badge-approved" in html
    assert 'id="modal-root" hx-swap-oob="true"' in html
    assert "verify_me approved" in html
    db.session.expire_all()
    user = db.session.get(User, player.id)
    assert (user.kyc_status, user.kyc_level) == ("approved", 2)
    (row,) = _audits("kyc.approve")
    assert row.actor_id == manager.user.id
    assert row.reason == "Documents match"
    assert ("kyc.update", "admin") in {(name, room) for name, _d, room in events}


def test_a_rejection_needs_a_reason_and_is_shown_again_in_the_modal_without_one(signed_in, factory):
    client, _manager = signed_in("manager")
    submission = kyc_submission(factory.player(username="blurry"))
    url = f"/admin/kyc/{submission.id}/reject"
    empty = client.post(url, data={"reason": "", "context": "panel"}, headers=HX)
    assert empty.headers["HX-Retarget"] == "#modal-root"
    assert "field-error" in empty.get_data(as_text=True)
    assert db.session.get(KycSubmission, submission.id).status == "pending"
    done = client.post(url, data={"reason": "Photo is blurred", "context": "panel"}, headers=HX)
    html = done.get_data(as_text=True)
    assert 'id="kyc-panel"' in html
    assert "Photo is blurred" in html
    db.session.expire_all()
    assert db.session.get(KycSubmission, submission.id).status == "rejected"
    assert len(_audits("kyc.reject")) == 1
    again = client.post(url, data={"reason": "Twice", "context": "panel"}, headers=HX)
    assert "already rejected" in again.get_data(as_text=True)
    assert len(_audits("kyc.reject")) == 1


def test_without_javascript_the_decision_is_a_page_that_redirects(signed_in, factory):
    client, _ = signed_in("admin")
    submission = kyc_submission(factory.player(), docs=("passport",))
    page = client.get(f"/admin/kyc/{submission.id}/approve")
    assert "<dialog" in page.get_data(as_text=True)
    done = client.post(f"/admin/kyc/{submission.id}/approve", data={"context": "panel"})
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"/admin/kyc/{submission.id}")
    db.session.expire_all()
    assert db.session.get(KycSubmission, submission.id).level == 1


def test_without_kyc_review_nobody_decides_and_nothing_is_recorded(signed_in, factory):
    from app.core.db import atomic
    from app.identity.models import SUPPORT, Role

    client, _ = signed_in("support")
    with atomic():  # roles are data: an operator may take the permission away
        role = db.session.get(Role, SUPPORT)
        role.permissions = [p for p in role.permissions if p != "kyc.review"]
    submission = kyc_submission(factory.player())
    before = db.session.scalar(select(func.count(AuditLog.id)))
    response = client.post(
        f"/admin/kyc/{submission.id}/approve", data={"context": "row"}, headers=HX
    )
    assert response.status_code == 403
    assert db.session.scalar(select(func.count(AuditLog.id))) == before
    assert db.session.get(KycSubmission, submission.id).status == "pending"
