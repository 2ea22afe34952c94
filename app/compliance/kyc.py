"""KYC: players upload identity documents; staff approve or reject a submission.

Invariants:
* A player has at most one ``pending`` submission (partial unique index); uploads join it.
* Files are validated and stored by ``app.compliance.uploads`` (type from bytes, decoded, random
  name outside the web root, sha256) before the row is written; a failed transaction removes the
  file it wrote.
* A decision changes the submission, the player's verification level and the history in one
  transaction, with an audit row; ``kyc.update`` goes to the player and to staff after commit.
* Only an identity document (passport, or the front of an ID card) can make a player verified;
  a proof of address on top raises the level to 2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from sqlalchemy import func, select

from app.compliance.models import (
    DOCUMENT_TYPES,
    SUBMISSION_STATES,
    KycDocument,
    KycEvent,
    KycSubmission,
)
from app.core import audit, events, uploads
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, lock_one
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.identity.models import User

MAX_DOCUMENTS_PER_SUBMISSION = 20
IDENTITY_DOCUMENTS = {"passport", "id_front"}


def decode_base64(value: str) -> bytes:
    """The guide's JSON upload: plain base64 or a ``data:<mime>;base64,`` URL."""
    if not isinstance(value, str) or not value:
        raise ValidationError.field("file", "A base64 encoded file is required")
    if value.startswith("data:"):
        _, _, value = value.partition(",")
    compact = "".join(value.split())
    # Refuse before decoding: base64 is 4/3 of the payload.
    uploads.check_size(len(compact) * 3 // 4 - compact.count("="))
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError.field("file", "The file is not valid base64") from None


def upload_document(
    user: User, *, doc_type: str, data: bytes, filename: str | None, ip: str | None
) -> KycDocument:
    if doc_type not in DOCUMENT_TYPES:
        raise ValidationError.field("type", f"Must be one of: {', '.join(DOCUMENT_TYPES)}")
    checked = uploads.inspect(data)
    stored = uploads.store(checked, f"kyc/{user.id}")
    try:
        with atomic():
            locked = lock_one(User, User.id == user.id)
            submission = db.session.scalar(
                select(KycSubmission).where(
                    KycSubmission.user_id == user.id, KycSubmission.status == "pending"
                )
            )
            created = submission is None
            if submission is None:
                submission = KycSubmission(user_id=user.id, status="pending", ip=ip)
                db.session.add(submission)
                db.session.flush()  # the document and history rows reference its id
            count = db.session.execute(
                select(func.count(KycDocument.id)).where(KycDocument.submission_id == submission.id)
            ).scalar_one()
            if count >= MAX_DOCUMENTS_PER_SUBMISSION:
                raise Conflict("Too many documents in this submission; wait for the review")
            doc = KycDocument(
                submission_id=submission.id,
                user_id=user.id,
                doc_type=doc_type,
                storage_name=stored,
                original_filename=(filename or "")[:255] or None,
                mime_type=checked.mime_type,
                size_bytes=checked.size,
                sha256=checked.sha256,
                width=checked.width,
                height=checked.height,
                ip=ip,
            )
            db.session.add(doc)
            db.session.flush()
            db.session.add(
                KycEvent(
                    submission_id=submission.id,
                    actor_id=user.id,
                    action="document_uploaded",
                    details={"document_id": doc.id, "type": doc_type, "sha256": checked.sha256},
                )
            )
            if locked is not None and locked.kyc_status != "approved":
                locked.kyc_status = "pending"
            audit.record(
                "kyc.upload",
                actor=user,
                target_type="kyc_submission",
                target_id=submission.id,
                after={"document_id": doc.id, "type": doc_type, "sha256": checked.sha256},
            )
            payload = {
                "user_id": user.id,
                "submission_id": submission.id,
                "status": "pending",
                "new_submission": created,
            }
            events.publish("kyc.update", payload, room="admin")
    except BaseException:
        uploads.remove(stored)
        raise
    return doc


def _status_payload(user: User) -> dict[str, Any]:
    latest = db.session.scalar(
        select(KycSubmission)
        .where(KycSubmission.user_id == user.id)
        .order_by(KycSubmission.id.desc())
        .limit(1)
    )
    return {
        "status": user.kyc_status,
        "level": user.kyc_level,
        "submission": None
        if latest is None
        else {
            "id": latest.id,
            "status": latest.status,
            "reason": latest.reason,
            "submitted_at": latest.submitted_at,
            "decided_at": latest.decided_at,
            "documents": len(latest.documents),
        },
        "required_documents": sorted(IDENTITY_DOCUMENTS | {"proof_of_address"}),
    }


def status(user: User) -> dict[str, Any]:
    return _status_payload(user)


def documents_of(user_id: int) -> list[KycDocument]:
    return list(
        db.session.scalars(
            select(KycDocument).where(KycDocument.user_id == user_id).order_by(KycDocument.id)
        )
    )


def pending_submissions(limit: int = 100) -> list[KycSubmission]:
    return list(
        db.session.scalars(
            select(KycSubmission)
            .where(KycSubmission.status == "pending")
            .order_by(KycSubmission.submitted_at)
            .limit(limit)
        )
    )


def get_submission(submission_id: int) -> KycSubmission:
    submission = db.session.get(KycSubmission, submission_id)
    if submission is None:
        raise NotFound("KYC submission not found")
    return submission


def _decide(submission_id: int, reviewer: User, *, approve: bool, reason: str | None) -> None:
    with atomic():
        submission = lock_one(KycSubmission, KycSubmission.id == submission_id)
        if submission is None:
            raise NotFound("KYC submission not found")
        decision = "approved" if approve else "rejected"
        if not SUBMISSION_STATES.allows(submission.status, decision):
            raise Conflict(f"This submission is already {submission.status}")
        if submission.user_id == reviewer.id:
            raise Conflict("Staff cannot review their own documents")
        player = lock_existing(User, User.id == submission.user_id)  # a foreign key
        before = {"status": player.kyc_status, "level": player.kyc_level}
        types = {d.doc_type for d in submission.documents}
        if approve:
            if not types & IDENTITY_DOCUMENTS:
                raise ValidationError(
                    "An identity document (passport or ID front) is needed to approve"
                )
            level = 2 if "proof_of_address" in types else 1
            submission.level = level
            player.kyc_level = max(player.kyc_level or 0, level)
            player.kyc_status = "approved"
        elif player.kyc_status != "approved":
            player.kyc_status = "rejected"
        SUBMISSION_STATES.move(submission, decision)
        submission.reviewer_id = reviewer.id
        submission.reason = reason
        submission.decided_at = utcnow()
        db.session.add(
            KycEvent(
                submission_id=submission.id,
                actor_id=reviewer.id,
                action=submission.status,
                details={"reason": reason, "level": submission.level},
            )
        )
        audit.record(
            f"kyc.{'approve' if approve else 'reject'}",
            actor=reviewer,
            target_type="kyc_submission",
            target_id=submission.id,
            before=before,
            after={"status": player.kyc_status, "level": player.kyc_level},
            reason=reason,
        )
        payload = {
            "user_id": player.id,
            "submission_id": submission.id,
            "status": submission.status,
            "kyc_status": player.kyc_status,
            "level": player.kyc_level,
            "reason": reason,
        }
        events.publish("kyc.update", payload, room=events.user_room(player.id))
        events.publish("kyc.update", payload, room="admin")


def approve(submission_id: int, reviewer: User, *, note: str | None = None) -> None:
    _decide(submission_id, reviewer, approve=True, reason=note)


def reject(submission_id: int, reviewer: User, *, reason: str) -> None:
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required to reject")
    _decide(submission_id, reviewer, approve=False, reason=reason.strip())


def open_document(document_id: int, viewer: User) -> tuple[KycDocument, bytes]:
    """Read a stored document for staff; the read itself is audited."""
    with atomic():
        doc = db.session.get(KycDocument, document_id)
        if doc is None:
            raise NotFound("Document not found")
        data = uploads.path_of(doc.storage_name).read_bytes()
        if hashlib.sha256(data).hexdigest() != doc.sha256:
            # Never hand out a file that changed on disk since it was uploaded.
            raise Conflict("The stored file does not match its recorded checksum")
        audit.record(
            "kyc.document.download",
            actor=viewer,
            target_type="kyc_document",
            target_id=doc.id,
            after={"user_id": doc.user_id, "sha256": doc.sha256},
        )
    return doc, data
