"""KYC uploads are decided by their bytes; staff decide submissions; every read is audited."""

from __future__ import annotations

import base64
import os
from datetime import datetime

import pytest
from sqlalchemy import select

from app.compliance.models import KycDocument
from app.core.bus import subscribe
from app.core.extensions import db
from app.core.models import AuditLog
from tests.payments_helpers import elf_bytes, jpeg_bytes, pdf_bytes, png_bytes


@pytest.fixture
def events():
    seen = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


def upload(client, headers, data: bytes, doc_type="passport", name="doc.png"):
    import io

    return client.post(
        "/api/kyc/upload",
        headers=headers,
        data={"type": doc_type, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_png_upload_is_stored_outside_the_web_root_under_a_random_name(
    app, client, factory, token_for
):
    player = factory.player()
    data = png_bytes()
    response = upload(client, token_for(player), data, name="../../etc/passwd.png")
    assert response.status_code == 201, response.json
    body = response.json["data"]
    assert body["mime_type"] == "image/png"
    import hashlib

    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    doc = db.session.get(KycDocument, body["id"])
    assert "passwd" not in doc.storage_name
    assert ".." not in doc.storage_name
    path = os.path.join(app.config["UPLOAD_DIR"], doc.storage_name)
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert not os.path.abspath(path).startswith(os.path.abspath(app.static_folder))
    assert db.session.get(type(player), player.id).kyc_status == "pending"


def test_base64_json_upload_of_a_jpeg_is_accepted(client, factory, token_for):
    player = factory.player()
    encoded = base64.b64encode(jpeg_bytes()).decode()
    response = client.post(
        "/api/kyc/upload",
        headers=token_for(player),
        json={"type": "id_front", "file": f"data:image/jpeg;base64,{encoded}", "filename": "a.jpg"},
    )
    assert response.status_code == 201, response.json
    assert response.json["data"]["mime_type"] == "image/jpeg"
    assert response.json["data"]["type"] == "id_front"


def test_pdf_proof_of_address_is_accepted(client, factory, token_for):
    player = factory.player()
    response = upload(client, token_for(player), pdf_bytes(), "proof_of_address", "bill.pdf")
    assert response.status_code == 201, response.json
    assert response.json["data"]["mime_type"] == "application/pdf"


def test_executable_renamed_png_is_refused(client, factory, token_for):
    player = factory.player()
    response = upload(client, token_for(player), elf_bytes(), name="selfie.png")
    assert response.status_code == 415
    assert response.json["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert db.session.scalar(select(KycDocument).where(KycDocument.user_id == player.id)) is None


def test_oversize_file_is_refused(app, client, factory, token_for, monkeypatch):
    monkeypatch.setitem(app.config, "KYC_MAX_FILE_BYTES", 2048)
    player = factory.player()
    big = jpeg_bytes((800, 800))
    assert len(big) > 2048
    response = upload(client, token_for(player), big, name="big.jpg")
    assert response.status_code == 413
    assert response.json["code"] == "PAYLOAD_TOO_LARGE"
    encoded = base64.b64encode(big).decode()
    response = client.post(
        "/api/kyc/upload", headers=token_for(player), json={"type": "selfie", "file": encoded}
    )
    assert response.status_code == 413


def test_truncated_image_is_refused(client, factory, token_for):
    player = factory.player()
    data = jpeg_bytes()
    response = upload(client, token_for(player), data[: len(data) // 2], name="cut.jpg")
    assert response.status_code == 400
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["errors"][0]["field"] == "file"
    png = png_bytes((300, 300), "blue")
    assert upload(client, token_for(player), png[:-40], name="cut.png").status_code == 400


def test_truncated_pdf_and_unknown_type_and_bad_base64_are_refused(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    assert upload(client, headers, pdf_bytes()[:-8], name="x.pdf").status_code == 400
    bad_type = upload(client, headers, png_bytes(), doc_type="utility_bill")
    assert bad_type.status_code == 400
    not_b64 = client.post(
        "/api/kyc/upload", headers=headers, json={"type": "selfie", "file": "***not base64***"}
    )
    assert not_b64.status_code == 400
    assert not_b64.json["errors"][0]["field"] == "file"


def test_staff_approve_a_submission_and_the_player_becomes_verified(
    client, factory, token_for, events
):
    player = factory.player()
    support = factory.staff("support")
    manager = factory.staff("manager")
    headers = token_for(player)
    assert upload(client, headers, png_bytes(), "passport").status_code == 201
    assert upload(client, headers, pdf_bytes(), "proof_of_address", "b.pdf").status_code == 201

    pending = client.get("/api/admin/kyc/pending", headers=token_for(support))
    assert pending.status_code == 200
    mine = [s for s in pending.json["data"] if s["user_id"] == player.id]
    assert len(mine) == 1
    submission = mine[0]
    assert submission["username"] == player.username
    assert {d["type"] for d in submission["documents"]} == {"passport", "proof_of_address"}
    assert "submitted_at" in submission

    # Support reviews KYC (the platform guide's role table); an agent does not.
    agent = factory.staff("agent")
    denied = client.post(f"/api/admin/kyc/{submission['id']}/approve", headers=token_for(agent))
    assert denied.status_code == 403
    detail = client.get(f"/api/admin/kyc/{submission['id']}", headers=token_for(support)).json
    assert detail["data"]["history"][0]["action"] == "document_uploaded"
    assert manager.can("kyc.review")

    events.clear()
    approved = client.post(
        f"/api/admin/kyc/{submission['id']}/approve", headers=token_for(support), json={}
    )
    assert approved.status_code == 200, approved.json
    assert approved.json["data"]["status"] == "approved"
    status = client.get("/api/kyc/status", headers=headers).json["data"]
    assert status["status"] == "approved"
    assert status["level"] == 2
    # ISO-8601, as everywhere else (Flask's default would write RFC 1123 "Sun, 06 Dec ...").
    for key in ("submitted_at", "decided_at"):
        stamp = status["submission"][key]
        assert datetime.fromisoformat(stamp).tzinfo is not None, stamp
    rooms = {(e.name, e.room) for e in events}
    assert ("kyc.update", f"user:{player.id}") in rooms
    assert ("kyc.update", "admin") in rooms
    again = client.post(
        f"/api/admin/kyc/{submission['id']}/reject",
        headers=token_for(manager),
        json={"reason": "too late"},
    )
    assert again.status_code == 409


def test_reject_needs_a_reason_and_marks_the_player_rejected(client, factory, token_for):
    player = factory.player()
    manager = factory.staff("manager")
    upload(client, token_for(player), png_bytes(), "selfie")
    sub_id = client.get("/api/kyc/documents", headers=token_for(player)).json["data"][0][
        "submission_id"
    ]
    no_reason = client.post(f"/api/admin/kyc/{sub_id}/reject", headers=token_for(manager), json={})
    assert no_reason.status_code == 400
    rejected = client.post(
        f"/api/admin/kyc/{sub_id}/reject",
        headers=token_for(manager),
        json={"reason": "The selfie is blurred"},
    )
    assert rejected.status_code == 200
    status = client.get("/api/kyc/status", headers=token_for(player)).json["data"]
    assert status["status"] == "rejected"
    assert status["submission"]["reason"] == "The selfie is blurred"


def test_a_selfie_alone_cannot_verify_an_identity(client, factory, token_for):
    player = factory.player()
    manager = factory.staff("manager")
    upload(client, token_for(player), png_bytes(), "selfie")
    sub_id = client.get("/api/kyc/documents", headers=token_for(player)).json["data"][0][
        "submission_id"
    ]
    response = client.post(f"/api/admin/kyc/{sub_id}/approve", headers=token_for(manager))
    assert response.status_code == 400


def test_document_download_is_for_permitted_staff_and_audited(client, factory, token_for):
    player = factory.player()
    other = factory.player()
    agent = factory.staff("agent")
    support = factory.staff("support")
    data = png_bytes()
    doc_id = upload(client, token_for(player), data).json["data"]["id"]
    url = f"/api/admin/kyc/documents/{doc_id}/download"
    assert client.get(url, headers=token_for(other)).status_code == 403
    assert client.get(url, headers=token_for(agent)).status_code == 403
    response = client.get(url, headers=token_for(support))
    assert response.status_code == 200
    assert response.data == data
    assert response.headers["Content-Type"] == "image/png"
    assert "attachment" in response.headers["Content-Disposition"]
    audit = db.session.scalar(
        select(AuditLog).where(
            AuditLog.action == "kyc.document.download", AuditLog.target_id == str(doc_id)
        )
    )
    assert audit is not None
    assert audit.actor_id == support.id


def test_players_only_see_their_own_documents(client, factory, token_for):
    alice, bob = factory.player(), factory.player()
    upload(client, token_for(alice), png_bytes())
    assert client.get("/api/kyc/documents", headers=token_for(bob)).json["data"] == []
    assert len(client.get("/api/kyc/documents", headers=token_for(alice)).json["data"]) == 1


def test_support_rejects_kyc_but_makes_no_money_decision(client, factory, token_for):
    player = factory.player()
    support = token_for(factory.staff("support"))
    assert upload(client, token_for(player), png_bytes(), "passport").status_code == 201
    pending = client.get("/api/admin/kyc/pending", headers=support).json["data"]
    submission = next(s for s in pending if s["user_id"] == player.id)
    rejected = client.post(
        f"/api/admin/kyc/{submission['id']}/reject", headers=support, json={"reason": "Blurry"}
    )
    assert rejected.status_code == 200, rejected.json
    assert rejected.json["data"]["status"] == "rejected"
    # Money stays with Manager and Admin: adjustments and withdrawal decisions are refused.
    adjust = client.post(
        f"/api/admin/users/{player.id}/adjust-balance",
        headers=support,
        json={"amount": "10.00", "type": "credit", "reason": "goodwill"},
    )
    assert adjust.status_code == 403
    decide = client.post("/api/admin/payments/withdrawals/1/approve", headers=support)
    assert decide.status_code == 403
