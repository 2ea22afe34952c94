"""Builders for console tests that need KYC submissions, withdrawals and ledger history.

They call the real services (uploads, payments, wallet), so the pages read real rows.
"""

from __future__ import annotations

from app.compliance import kyc
from app.compliance.models import KycSubmission
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.payments import withdrawals
from tests.moneykit import fund
from tests.payments_helpers import pdf_bytes, png_bytes


def kyc_submission(player: User, docs=("passport", "proof_of_address")) -> KycSubmission:
    doc = None
    for doc_type in docs:
        data = pdf_bytes() if doc_type == "proof_of_address" else png_bytes()
        name = "bill.pdf" if doc_type == "proof_of_address" else f"{doc_type}.png"
        doc = kyc.upload_document(
            player, doc_type=doc_type, data=data, filename=name, ip="10.0.0.9"
        )
    return db.session.get(KycSubmission, doc.submission_id)


def verified_player(factory, cash: int = 0, **kw) -> User:
    player = factory.player(**kw)
    with atomic():
        user = db.session.get(User, player.id)
        user.kyc_status, user.kyc_level = "approved", 1
    if cash:
        fund(player.id, cash)
    return db.session.get(User, player.id)


def withdrawal(player: User, amount: str):
    return withdrawals.request_withdrawal(
        db.session.get(User, player.id), amount=amount, currency="EUR", method="sandbox"
    )
