"""Replaying a logged callback through the same actions (idempotency makes it safe)."""

from __future__ import annotations

from typing import Any

from app.core import audit
from app.core.db import atomic
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.play.callbacks.actions import handle
from app.play.callbacks.adapters import request_from_log
from app.play.callbacks.protocol import (
    RETRYABLE_CODE,
    CallbackError,
    CallbackResult,
    provider_config,
)
from app.play.models import ProviderCallback


def replay(callback_id: int, *, actor: Any = None) -> tuple[ProviderCallback, CallbackResult]:
    """Re-run a logged callback through the same service (idempotency makes it safe).

    Useful after an INTERNAL_ERROR (deadlock victim, outage): the provider's request is
    applied once; a callback that was applied answers its first answer again. A callback
    that was refused (insufficient funds, limits, a blocked player...) is not run again: the
    provider took the refusal as final (the bet was never placed), so its replay answers the
    logged refusal and moves nothing. Audited.
    """
    row = db.session.get(ProviderCallback, callback_id)
    if row is None:
        raise NotFound("No such callback")
    if not row.signature_valid:
        raise ValidationError("A callback whose signature failed is never replayed")
    provider = provider_config(row.provider_code)
    if provider is None:
        raise NotFound("The provider no longer exists")
    try:
        req = request_from_log(provider, row.payload)
    except CallbackError as exc:
        raise ValidationError(exc.message) from None
    if row.verdict not in ("ok", RETRYABLE_CODE):
        result = CallbackResult(
            "error",
            code=row.verdict,
            message="This callback was refused; its replay gives the same answer",
            user_id=row.user_id,
        )
    else:
        result = handle(provider, req, replay_of=row.id)
    with atomic():
        audit.record(
            "callback.replay",
            actor=actor,
            target_type="provider_callback",
            target_id=row.id,
            before={"verdict": row.verdict},
            after={"verdict": "ok" if result.ok else result.code, "duplicate": result.duplicate},
        )
    return row, result
